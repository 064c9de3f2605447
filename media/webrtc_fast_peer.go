package media

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// fastPeer is a Peer's side of the fast receive path (webrtc_fast.go).
type fastPeer struct {
	on     bool // set by startFast before the peer is used
	routes *routeTable
	enc    *fastRecv // SRTP from the shared socket
	plain  *fastRecv // packets pion delivered (a pair off the shared port), normalised; shares enc's wake

	mu      sync.Mutex // guards addr and stopped
	addr    netip.AddrPort
	stopped bool

	dtlsUp   chan struct{} // closed when the peer connection is connected (DTLS done)
	dtlsOnce sync.Once

	// Owned by the ReadPacket goroutine.
	ctx    *srtp.Context
	hdr    rtp.Header
	kinds  [128]ptKind
	codecs []webrtc.RTPCodecParameters

	fastPackets, pionPackets, authFailed, replayed atomic.Uint64
}

// ReceiveStats counts how a Peer's received RTP packets arrived.
type ReceiveStats struct {
	Fast       uint64 // read from the shared socket and decrypted by the gateway
	Pion       uint64 // through pion's receive pipeline
	AuthFailed uint64 // fast path: SRTP authentication failed (dropped)
	Replayed   uint64 // fast path: replayed or too old (dropped)
	Dropped    uint64 // fast path: the call's ring was full
}

// ReceiveStats reports how the peer's packets arrived.
func (p *Peer) ReceiveStats() ReceiveStats {
	f := &p.fast
	if !f.on {
		return ReceiveStats{}
	}
	return ReceiveStats{Fast: f.fastPackets.Load(), Pion: f.pionPackets.Load(), AuthFailed: f.authFailed.Load(),
		Replayed: f.replayed.Load(), Dropped: f.enc.dropped.Load() + f.plain.dropped.Load()}
}

// startFast arms the fast receive path: the selected ICE pair's remote
// address is routed to the peer's ring while the pair's local candidate is
// a host candidate (one of the shared port's sockets).
func (p *Peer) startFast(routes *routeTable) {
	f := &p.fast
	f.on, f.routes = true, routes
	f.enc = newFastRecv(fastSlots, nil)
	f.plain = newFastRecv(4, f.enc.wake)
	f.dtlsUp = make(chan struct{})
	p.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			f.dtlsOnce.Do(func() { close(f.dtlsUp) })
		}
	})
	p.pc.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(p.onPair)
	go p.forwardPion()
}

// onPair routes the new selected pair's remote address to the peer.
func (p *Peer) onPair(pair *webrtc.ICECandidatePair) {
	var ap netip.AddrPort
	if pair != nil && pair.Local != nil && pair.Remote != nil && pair.Local.Typ == webrtc.ICECandidateTypeHost &&
		pair.Remote.Protocol == webrtc.ICEProtocolUDP {
		if ip, err := netip.ParseAddr(pair.Remote.Address); err == nil {
			ap = netip.AddrPortFrom(ip.Unmap(), pair.Remote.Port)
		}
	}
	p.route(ap)
}

// route makes ap (invalid: none) the peer's routed address.
func (p *Peer) route(ap netip.AddrPort) {
	f := &p.fast
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped || f.addr == ap {
		return
	}
	if f.addr.IsValid() {
		f.routes.set(f.addr, nil, f.enc)
	}
	f.addr = ap
	if ap.IsValid() {
		f.routes.set(ap, f.enc, nil)
	}
}

// stopFast removes the peer's route for good.
func (p *Peer) stopFast() {
	if !p.fast.on {
		return
	}
	p.route(netip.AddrPort{})
	p.fast.mu.Lock()
	p.fast.stopped = true
	p.fast.mu.Unlock()
}

// forwardPion reads what still reaches pion's track (a selected pair off
// the shared port, packets in flight while the pair changes) into the
// plain ring.
func (p *Peer) forwardPion() {
	var t *webrtc.TrackRemote
	select {
	case t = <-p.track:
	case <-p.closed:
		return
	}
	var kinds [128]ptKind
	buf := make([]byte, MaxPacketSize)
	codec := func(uint8) webrtc.RTPCodecParameters { return t.Codec() }
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		normaliseRemote(buf[:n], &kinds, codec)
		p.fast.pionPackets.Add(1)
		p.fast.plain.push(buf[:n])
	}
}

// readFast is ReadPacket on the fast path.
func (p *Peer) readFast(buf []byte) (int, error) {
	f := &p.fast
	for {
		if pkt := f.enc.peek(); pkt != nil {
			n, err := p.decryptFast(buf, pkt)
			f.enc.pop()
			if err != nil {
				return 0, err
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if pkt := f.plain.peek(); pkt != nil {
			n := copy(buf, pkt)
			f.plain.pop()
			return n, nil
		}
		select {
		case <-f.enc.wake:
		case <-p.closed:
			return 0, io.EOF
		}
	}
}

// decryptFast decrypts pkt into buf and normalises it; 0 means dropped.
func (p *Peer) decryptFast(buf, pkt []byte) (int, error) {
	f := &p.fast
	if f.ctx == nil {
		select {
		case <-f.dtlsUp:
		case <-p.closed:
			return 0, io.EOF
		}
		ctx, err := p.fastContext()
		if err != nil {
			// Stay on pion's path: what is routed now is lost, the rest
			// reaches pion.
			p.stopFast()
			f.authFailed.Add(1)
			return 0, nil
		}
		f.ctx = ctx
	}
	out, err := f.ctx.DecryptRTP(buf, pkt, &f.hdr)
	if err != nil {
		if isReplay(err) {
			f.replayed.Add(1)
		} else {
			f.authFailed.Add(1)
		}
		return 0, nil
	}
	f.fastPackets.Add(1)
	normaliseRemote(out, &f.kinds, p.negotiatedCodec)
	return len(out), nil
}

// isReplay reports whether a decryption error is srtp's replay rejection
// (its error type is unexported).
func isReplay(err error) bool {
	return strings.Contains(err.Error(), "duplicated packet")
}

// fastContext keys the peer's SRTP context from its DTLS session.
func (p *Peer) fastContext() (*srtp.Context, error) {
	var local, remote string
	if d := p.pc.CurrentLocalDescription(); d != nil {
		local = d.SDP
	}
	if d := p.pc.CurrentRemoteDescription(); d != nil {
		remote = d.SDP
	}
	client, ok := dtlsClient(local, remote)
	if !ok {
		return nil, fmt.Errorf("%w: no DTLS role in the SDP", errNoFastPath)
	}
	return srtpRemoteContext(p.pc.SCTP().Transport(), client)
}

// negotiatedCodec returns the negotiated receive codec of payload type pt.
func (p *Peer) negotiatedCodec(pt uint8) webrtc.RTPCodecParameters {
	f := &p.fast
	if f.codecs == nil {
		for _, tr := range p.pc.GetTransceivers() {
			if tr.Kind() == webrtc.RTPCodecTypeAudio && tr.Receiver() != nil {
				f.codecs = tr.Receiver().GetParameters().Codecs
				break
			}
		}
	}
	for _, c := range f.codecs {
		if uint8(c.PayloadType) == pt {
			return c
		}
	}
	return webrtc.RTPCodecParameters{}
}

// trackCodec is the pion track's current codec (ReadPacket without the
// fast path).
func (p *Peer) trackCodec(uint8) webrtc.RTPCodecParameters { return p.remote.Codec() }
