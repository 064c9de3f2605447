// WebRTC fast path.
//
// pion hands a received SRTP packet through five goroutines before a track
// reader sees it (the ICE UDP mux reader, the candidate's receive loop, the
// DTLS/SRTP demultiplexer, the SRTP session, the track buffer), each a copy
// and a wake-up: about 27 us per packet, more than decoding the Opus frame.
// So the gateway reads the ICE sockets itself: pion opens them through
// fastNet (the shared port's, WebRTCConfig.UDPPort, or each call's own)
// and reads them through fastConn: an RTP packet from the
// remote address of a call's selected ICE pair is copied into that call's
// ring (fastRecv) and its reader (Peer.ReadPacket) is woken; it decrypts
// the packet with its own SRTP context, keyed from the call's DTLS session.
// Everything else (STUN, DTLS, RTCP, RTP from other addresses) goes to pion
// as before, so ICE consent, DTLS and RTCP reports work unchanged.
//
// A peer whose selected pair's local candidate is not one of these sockets
// (a TURN relay candidate) or whose keys cannot be taken stays on pion's
// path.

package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/pion/dtls/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/transport/v4"
	"github.com/pion/transport/v4/stdnet"
	"github.com/pion/webrtc/v4"
)

// routeTable maps a remote transport address to the ring of the call whose
// selected ICE pair it is. Readers (the mux sockets' read loops) load the
// map without locking; writers copy it (calls start and end rarely).
type routeTable struct {
	mu sync.Mutex
	m  atomic.Pointer[map[netip.AddrPort]*fastRecv]
}

func (t *routeTable) lookup(ap netip.AddrPort) *fastRecv {
	m := t.m.Load()
	if m == nil {
		return nil
	}
	return (*m)[ap]
}

// set routes ap to r (r nil: removes ap when it routes to old).
func (t *routeTable) set(ap netip.AddrPort, r, old *fastRecv) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var cur map[netip.AddrPort]*fastRecv
	if p := t.m.Load(); p != nil {
		cur = *p
	}
	if r == nil && cur[ap] != old {
		return
	}
	next := make(map[netip.AddrPort]*fastRecv, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	if r == nil {
		delete(next, ap)
	} else {
		next[ap] = r
	}
	t.m.Store(&next)
}

// size is the number of routes.
func (t *routeTable) size() int {
	m := t.m.Load()
	if m == nil {
		return 0
	}
	return len(*m)
}

// fastNet is pion's standard network whose UDP sockets are fastConns.
type fastNet struct {
	*stdnet.Net
	routes *routeTable
}

// ListenUDP opens an ICE socket (of the shared port, or a call's own).
func (n *fastNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return &fastConn{UDPConn: c, routes: n.routes}, nil
}

// fastConn is an ICE socket as pion reads it (its UDP mux or a candidate):
// RTP from a routed address goes to its call's ring and is not returned.
type fastConn struct {
	*net.UDPConn
	routes *routeTable
}

// ReadFromAddrPort returns the next datagram that is not taken by a call's
// fast path. pion's mux reads with it (allocation-free).
func (c *fastConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		n, ap, err := c.ReadFromUDPAddrPort(b)
		if err != nil {
			return n, ap, err
		}
		// RTP, not RTCP (RFC 5761 section 4: RTCP packet types 192-223).
		if n >= rtpHeaderLen && b[0]&0xC0 == 0x80 && (b[1] < 192 || b[1] > 223) {
			if r := c.routes.lookup(unmap(ap)); r != nil {
				if r.via.Load() != c {
					r.via.Store(c) // the call's packets come in here: its replies go out here
				}
				r.push(b[:n])
				continue
			}
		}
		return n, ap, nil
	}
}

// WriteToAddrPort sends b to ap (pion's mux writes with it).
func (c *fastConn) WriteToAddrPort(b []byte, ap netip.AddrPort) (int, error) {
	return c.WriteToUDPAddrPort(b, ap)
}

// ReadFrom is ReadFromAddrPort for callers that want a net.Addr.
func (c *fastConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, ap, err := c.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

// fastSlots is the depth of a call's receive ring: 1.28 s of 20 ms packets
// (96 KiB). A network that delivers a second of held-back packets at once
// (Wi-Fi, a mobile link) or a reader stalled as long (a loaded machine)
// loses nothing; pion's own buffers, which the fast path replaces, were
// larger still.
const fastSlots = 64

// fastRecv is a call's receive ring: single producer (the socket's read
// loop, or the fallback reader of pion's track), single consumer
// (Peer.ReadPacket). Its size is a power of two.
type fastRecv struct {
	head atomic.Uint32 // next slot to read; written by the consumer
	_    [60]byte
	tail atomic.Uint32 // next slot to write; written by the producer
	_    [60]byte
	wake chan struct{} // a token when the consumer may have packets (may be shared)

	dropped atomic.Uint64            // ring full
	via     atomic.Pointer[fastConn] // the socket the call's packets arrive on
	slots   []fastSlot
}

type fastSlot struct {
	n   int
	buf [MaxPacketSize]byte
}

// newFastRecv makes a ring of size slots (a power of two) that signals
// wake (nil: a new channel).
func newFastRecv(size int, wake chan struct{}) *fastRecv {
	if wake == nil {
		wake = make(chan struct{}, 1)
	}
	return &fastRecv{wake: wake, slots: make([]fastSlot, size)}
}

// push copies pkt into the ring and wakes the reader; a full ring drops it.
func (r *fastRecv) push(pkt []byte) {
	if !r.tryPush(pkt) {
		r.dropped.Add(1)
	}
}

// tryPush is push that leaves a full ring alone and reports false.
func (r *fastRecv) tryPush(pkt []byte) bool {
	t := r.tail.Load()
	if t-r.head.Load() >= uint32(len(r.slots)) { //nolint:gosec // small
		return false
	}
	s := &r.slots[t&uint32(len(r.slots)-1)] //nolint:gosec // small
	s.n = copy(s.buf[:], pkt)
	r.tail.Store(t + 1)
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return true
}

// peek returns the oldest packet, or nil when the ring is empty; pop
// releases it.
func (r *fastRecv) peek() []byte {
	h := r.head.Load()
	if h == r.tail.Load() {
		return nil
	}
	s := &r.slots[h&uint32(len(r.slots)-1)] //nolint:gosec // small
	return s.buf[:s.n]
}

func (r *fastRecv) pop() { r.head.Add(1) }

// errNoFastPath means a peer cannot use the fast path.
var errNoFastPath = errors.New("media: no fast path")

// dtlsConnField is pion's unexported DTLSTransport.conn (pinned pion
// version; TestDTLSClientRole fails if a pion upgrade moves it).
func dtlsConnField() (f reflect.StructField, ok bool) {
	f, ok = reflect.TypeFor[webrtc.DTLSTransport]().FieldByName("conn")
	return f, ok && f.Type == reflect.TypeFor[*dtls.Conn]()
}

// srtpContexts makes the SRTP contexts that decrypt what the remote peer
// sends and encrypt what we send, keyed like pion's own SRTP session from
// the DTLS session. isClient is our DTLS role. The transport must be
// connected.
func srtpContexts(dt *webrtc.DTLSTransport, isClient bool) (remote, local *srtp.Context, err error) {
	if dt == nil || dt.State() != webrtc.DTLSTransportStateConnected {
		return nil, nil, fmt.Errorf("%w: DTLS not connected", errNoFastPath)
	}
	f, ok := dtlsConnField()
	if !ok {
		return nil, nil, fmt.Errorf("%w: pion's DTLSTransport has no conn field", errNoFastPath)
	}
	// State() above took the transport's lock after the handshake stored conn.
	conn := *(**dtls.Conn)(unsafe.Add(unsafe.Pointer(dt), f.Offset))
	if conn == nil {
		return nil, nil, fmt.Errorf("%w: no DTLS connection", errNoFastPath)
	}
	profile, ok := conn.SelectedSRTPProtectionProfile()
	if !ok {
		return nil, nil, fmt.Errorf("%w: no SRTP profile", errNoFastPath)
	}
	state, ok := conn.ConnectionState()
	if !ok {
		return nil, nil, fmt.Errorf("%w: no DTLS state", errNoFastPath)
	}
	cfg := srtp.Config{Profile: srtp.ProtectionProfile(profile)}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, isClient); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errNoFastPath, err)
	}
	if remote, err = srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, cfg.Profile,
		srtp.SRTPReplayProtection(64)); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errNoFastPath, err)
	}
	if local, err = srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, cfg.Profile); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errNoFastPath, err)
	}
	return remote, local, nil
}

// dtlsClient reports whether we are the DTLS client of a negotiated
// session, from the a=setup attributes (RFC 5763): "active" is the client;
// an offer's "actpass" leaves it to the answer.
func dtlsClient(local, remote string) (bool, bool) {
	switch setupOf(local) {
	case "active":
		return true, true
	case "passive":
		return false, true
	}
	switch setupOf(remote) {
	case "active":
		return false, true
	case "passive":
		return true, true
	}
	return false, false
}

func setupOf(sdp string) string {
	i := strings.Index(sdp, "a=setup:")
	if i < 0 {
		return ""
	}
	v := sdp[i+len("a=setup:"):]
	if j := strings.IndexAny(v, "\r\n "); j >= 0 {
		v = v[:j]
	}
	return v
}
