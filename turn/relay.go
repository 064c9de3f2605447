package turn

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	pturn "github.com/pion/turn/v5"
)

// relayGenerator binds relay sockets in the configured port range and wraps
// them in relayConns that count traffic, cap bandwidth and enforce quotas.
type relayGenerator struct {
	s *Server
	g *guardConn // the listener whose allocations these are
}

var _ pturn.RelayAddressGenerator = (*relayGenerator)(nil)

func (g *relayGenerator) Validate() error { return nil }

// AllocatePacketConn binds a UDP relay socket on a random free port of the
// range. Errors make pion answer 508 (Insufficient Capacity).
func (g *relayGenerator) AllocatePacketConn(conf pturn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	s := g.s
	user := s.auth.quotaUser(conf.UserID)
	if !s.track.reserve(user, s.cfg.UserQuota, s.cfg.TotalQuota) {
		return nil, nil, fmt.Errorf("turn: quota reached for %s", user)
	}
	if conf.RequestedPort != 0 {
		c, err := s.openRelay(conf.Network, conf.RequestedPort, user, g.g)
		if err != nil {
			s.track.release(user)
			return nil, nil, err
		}
		return c, s.relayAddr(c.port), nil
	}
	lo, hi := s.cfg.RelayPortMin, s.cfg.RelayPortMax
	tries := min(hi-lo+1, 64)
	for range tries {
		port := lo + rand.IntN(hi-lo+1) //nolint:gosec // port choice needs no crypto
		c, err := s.openRelay(conf.Network, port, user, g.g)
		if err != nil {
			continue
		}
		return c, s.relayAddr(c.port), nil
	}
	s.track.release(user)
	return nil, nil, ErrNoRelayPort
}

// openRelay binds a relay socket on port: a raw socket served by the epoll
// loop for an allocation of a UDP listener when the loop runs, a
// net.UDPConn read by pion's goroutine otherwise.
func (s *Server) openRelay(network string, port int, user string, g *guardConn) (*relayConn, error) {
	if s.loop != nil && g != nil && g.udp != nil {
		raw, err := openRawSock(network, s.cfg.RelayIP, port, s.cfg.RelayReadBuffer)
		if err != nil {
			return nil, err
		}
		c := s.newRelayConn(nil, raw, user, g)
		if err := s.loop.add(c); err != nil {
			_ = raw.close()
			return nil, err
		}
		s.track.addRelay(c)
		return c, nil
	}
	conn, err := s.bindRelay(network, s.cfg.RelayIP, port)
	if err != nil {
		return nil, err
	}
	c := s.newRelayConn(conn, nil, user, g)
	s.track.addRelay(c)
	return c, nil
}

// AllocateListener refuses TCP relays (RFC 6062): browsers do not use them.
func (g *relayGenerator) AllocateListener(pturn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, ErrTCPRelay
}

// AllocateConn refuses TCP relay connections (RFC 6062).
func (g *relayGenerator) AllocateConn(pturn.AllocateConnConfig) (net.Conn, error) {
	return nil, ErrTCPRelay
}

func (s *Server) bindRelay(network string, ip netip.Addr, port int) (*net.UDPConn, error) {
	if network == "" {
		network = "udp"
	}
	laddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))) //nolint:gosec // port is in 1-65535
	conn, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadBuffer(s.cfg.RelayReadBuffer)
	return conn, nil
}

// relayAddr is the relayed transport address announced for a relay on
// port: the external (1:1 NAT) address with that port.
func (s *Server) relayAddr(port int) net.Addr {
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(s.cfg.ExternalIP, uint16(port))) //nolint:gosec
}

// relayStats are one allocation's counters; each direction is written by
// one goroutine, so the atomics are uncontended.
type relayStats struct {
	toPeerPackets, toPeerBytes atomic.Uint64
	_                          [48]byte // keep the directions on separate cache lines
	toClientPackets            atomic.Uint64
	toClientBytes              atomic.Uint64
	_                          [48]byte
	dropped                    atomic.Uint64
	// fastToPeer and fastToClient count packets relayed by the fast path
	// (fastpath.go); noPermission counts packets dropped there for want of
	// a permission.
	fastToPeer, fastToClient, noPermission atomic.Uint64
}

// relayConn is an allocation's relay socket: a net.UDPConn that pion's
// goroutine reads (TCP/TLS listeners, other systems), or a raw socket that
// the server's epoll loop reads (epoll_linux.go), handing pion only what
// the fast path leaves to it through slow.
type relayConn struct {
	udp      *net.UDPConn // nil when raw
	raw      *rawSock     // nil when udp
	local    *net.UDPAddr
	s        *Server
	g        *guardConn // listener of the allocation; fast path only when g.udp is set
	user     string
	port     int
	stats    relayStats
	out, in  *bucket
	lastAP   netip.AddrPort
	lastAddr *net.UDPAddr
	once     sync.Once

	// fast is the allocation's data-plane state (fastpath.go), nil until
	// pion reports the allocation and after Close; fastMu serialises its
	// writers and guards closed.
	fast   atomic.Pointer[fastState]
	fastMu sync.Mutex
	closed bool
	rbuf   []byte // a peer's datagram at [4:], framed as ChannelData in place

	// The epoll path: loopID is the relay's ID in the loop; slow carries
	// the datagrams pion must see (Data indications) to ReadFrom, which
	// returns their buffers to free; nbufs counts buffers made (loop only);
	// done is closed by Close.
	loopID     int32
	slow, free chan *slowBuf
	nbufs      int
	done       chan struct{}
	doneOnce   sync.Once

	// sendToClient's arguments and result, for sendFn (built once by
	// initClientSend; nil: send through the net.UDPConn). One goroutine
	// relays to the client at a time (the loop, or the relay's reader).
	sendFn  func(fd uintptr) bool
	sendBuf []byte
	sendAP  netip.AddrPort
	sendErr error
}

// slowBuf is a datagram on its way from the epoll loop to pion.
type slowBuf struct {
	n    int
	from netip.AddrPort
	data [relayMTU]byte
}

// slowBufs is the number of datagrams a relay queues for pion at most;
// more are dropped until pion catches up.
const slowBufs = 8

// relayMTU is the largest datagram a relay socket reads, as in pion.
const relayMTU = 1600

func (s *Server) newRelayConn(conn *net.UDPConn, raw *rawSock, user string, g *guardConn) *relayConn {
	c := &relayConn{udp: conn, raw: raw, s: s, g: g, user: user}
	if raw != nil {
		c.local = raw.local
		c.slow, c.free, c.done = make(chan *slowBuf, slowBufs), make(chan *slowBuf, slowBufs), make(chan struct{})
	} else {
		c.local = conn.LocalAddr().(*net.UDPAddr)
	}
	c.port = c.local.Port
	if g != nil && g.udp != nil {
		c.rbuf = make([]byte, 4+relayMTU+3)
		c.initClientSend()
	}
	if s.cfg.MaxBitrate > 0 {
		c.out, c.in = newBucket(s.cfg.MaxBitrate), newBucket(s.cfg.MaxBitrate)
	}
	return c
}

// WriteTo relays a client's payload to a peer. Packets over the bandwidth
// cap are dropped and reported as sent.
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.out != nil && !c.out.take(len(p)) {
		c.stats.dropped.Add(1)
		return len(p), nil
	}
	var n int
	var err error
	if c.raw != nil {
		ap, ok := udpAddrPort(addr)
		if !ok {
			return 0, fmt.Errorf("turn: relay to %v: not a UDP address", addr)
		}
		n, err = c.raw.sendTo(p, ap)
	} else {
		n, err = c.udp.WriteTo(p, addr)
	}
	if err == nil {
		c.stats.toPeerPackets.Add(1)
		c.stats.toPeerBytes.Add(uint64(n)) //nolint:gosec
	}
	return n, err
}

// ReadFrom reads a peer's packet for pion. On a raw socket it waits for
// what the epoll loop leaves to pion (toSlow) and returns net.ErrClosed
// after Close. On a UDP listener's allocation with a net.UDPConn, packets
// from bound peers are relayed to the client here (fast path) and packets
// from peers without a permission are dropped; ReadFrom returns the
// others. The source address is reused while the peer stays the same, so
// steady relaying does not allocate.
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		var n int
		var ap netip.AddrPort
		var err error
		if c.raw != nil {
			select {
			case b := <-c.slow:
				n, ap = copy(p, b.data[:b.n]), b.from
				c.free <- b // never blocks: at most slowBufs exist
			case <-c.done:
				return 0, nil, net.ErrClosed
			}
		} else if c.rbuf != nil {
			n, ap, err = c.udp.ReadFromUDPAddrPort(c.rbuf[4 : 4+min(len(p), relayMTU)])
			if err != nil {
				return n, nil, err
			}
			ap = unmap(ap)
			if c.relayToClient(n, ap) != toPion {
				continue
			}
			copy(p, c.rbuf[4:4+n])
		} else if n, ap, err = c.udp.ReadFromUDPAddrPort(p); err != nil {
			return n, nil, err
		}
		if c.in != nil && !c.in.take(n) {
			c.stats.dropped.Add(1)
			continue
		}
		c.stats.toClientPackets.Add(1)
		c.stats.toClientBytes.Add(uint64(n)) //nolint:gosec
		if ap != c.lastAP || c.lastAddr == nil {
			c.lastAP = ap
			c.lastAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
		return n, c.lastAddr, nil
	}
}

// sendToClient sends b to the client at ap on the allocation's UDP
// listener; a full send buffer drops it (an error) instead of waiting.
func (c *relayConn) sendToClient(b []byte, ap netip.AddrPort) error {
	if c.sendFn == nil {
		_, err := c.g.udp.WriteToUDPAddrPort(b, ap)
		return err
	}
	c.sendBuf, c.sendAP = b, ap
	err := c.g.rc.Write(c.sendFn)
	c.sendBuf = nil
	if err != nil {
		return err
	}
	return c.sendErr
}

// toSlow queues a datagram of n bytes at c.rbuf[4:] from peer for pion
// (ReadFrom); dropped when pion is slot-full behind. Epoll loop only.
func (c *relayConn) toSlow(n int, peer netip.AddrPort) {
	var b *slowBuf
	select {
	case b = <-c.free:
	default:
		if c.nbufs == slowBufs {
			c.stats.dropped.Add(1)
			return
		}
		c.nbufs++
		b = new(slowBuf)
	}
	b.n, b.from = copy(b.data[:], c.rbuf[4:4+n]), peer
	c.slow <- b // never blocks: at most slowBufs exist
}

// sendTo sends a client's payload to peer (fast path).
func (c *relayConn) sendTo(b []byte, peer netip.AddrPort) (int, error) {
	if c.raw != nil {
		return c.raw.sendTo(b, peer)
	}
	return c.udp.WriteToUDPAddrPort(b, peer)
}

// LocalAddr is the relay socket's local address.
func (c *relayConn) LocalAddr() net.Addr { return c.local }

// SetDeadline sets the socket's deadlines; raw sockets have none (pion
// sets none on relay sockets).
func (c *relayConn) SetDeadline(t time.Time) error {
	if c.raw != nil {
		return nil
	}
	return c.udp.SetDeadline(t)
}

// SetReadDeadline is SetDeadline for reads.
func (c *relayConn) SetReadDeadline(t time.Time) error {
	if c.raw != nil {
		return nil
	}
	return c.udp.SetReadDeadline(t)
}

// SetWriteDeadline is SetDeadline for writes.
func (c *relayConn) SetWriteDeadline(t time.Time) error {
	if c.raw != nil {
		return nil
	}
	return c.udp.SetWriteDeadline(t)
}

// Close closes the socket and releases the allocation's quota. Idempotent:
// a raw socket leaves the epoll loop, then is closed exactly once, and
// ReadFrom returns net.ErrClosed.
func (c *relayConn) Close() error {
	c.forgetFast()
	var err error
	if c.raw != nil {
		c.s.loop.remove(c)
		err = c.raw.close()
		c.doneOnce.Do(func() { close(c.done) })
	} else {
		err = c.udp.Close()
	}
	c.once.Do(func() { c.s.track.removeRelay(c) })
	return err
}

// bucket is a token bucket in bytes; take is called by one goroutine at a
// time in practice, the mutex is there for safety and stays uncontended.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // bytes per nanosecond
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(bitsPerSecond int) *bucket {
	rate := float64(bitsPerSecond) / 8 / 1e9
	burst := max(float64(bitsPerSecond)/8/5, 6000) // 200 ms, at least four full packets
	return &bucket{rate: rate, burst: burst, tokens: burst, last: time.Now()}
}

func (b *bucket) take(n int) bool {
	b.mu.Lock()
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+float64(now.Sub(b.last))*b.rate)
	b.last = now
	ok := b.tokens >= float64(n)
	if ok {
		b.tokens -= float64(n)
	}
	b.mu.Unlock()
	return ok
}

// fiveTupleKey identifies an allocation by client and server transport
// addresses (the protocol is implied by the listener).
func fiveTupleKey(src, dst net.Addr) string {
	return src.String() + "|" + dst.String()
}

// portOf returns the port of a UDP or TCP address.
func portOf(a net.Addr) int {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.Port
	case *net.TCPAddr:
		return a.Port
	}
	if _, p, err := net.SplitHostPort(a.String()); err == nil {
		n, _ := strconv.Atoi(p)
		return n
	}
	return 0
}
