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
	ip := s.cfg.RelayIP
	if conf.RequestedPort != 0 {
		conn, err := s.bindRelay(conf.Network, ip, conf.RequestedPort)
		if err != nil {
			s.track.release(user)
			return nil, nil, err
		}
		return s.newRelayConn(conn, user, g.g), s.relayAddr(conn), nil
	}
	lo, hi := s.cfg.RelayPortMin, s.cfg.RelayPortMax
	tries := min(hi-lo+1, 64)
	for range tries {
		port := lo + rand.IntN(hi-lo+1) //nolint:gosec // port choice needs no crypto
		conn, err := s.bindRelay(conf.Network, ip, port)
		if err != nil {
			continue
		}
		return s.newRelayConn(conn, user, g.g), s.relayAddr(conn), nil
	}
	s.track.release(user)
	return nil, nil, ErrNoRelayPort
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

// relayAddr is the relayed transport address announced for conn: the
// external (1:1 NAT) address with the socket's port.
func (s *Server) relayAddr(conn *net.UDPConn) net.Addr {
	port := conn.LocalAddr().(*net.UDPAddr).Port
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

// relayConn is an allocation's relay socket.
type relayConn struct {
	*net.UDPConn
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
}

// relayMTU is the largest datagram a relay socket reads, as in pion.
const relayMTU = 1600

func (s *Server) newRelayConn(conn *net.UDPConn, user string, g *guardConn) *relayConn {
	c := &relayConn{UDPConn: conn, s: s, g: g, user: user, port: conn.LocalAddr().(*net.UDPAddr).Port}
	if g != nil && g.udp != nil {
		c.rbuf = make([]byte, 4+relayMTU+3)
	}
	if s.cfg.MaxBitrate > 0 {
		c.out, c.in = newBucket(s.cfg.MaxBitrate), newBucket(s.cfg.MaxBitrate)
	}
	s.track.addRelay(c)
	return c
}

// WriteTo relays a client's payload to a peer. Packets over the bandwidth
// cap are dropped and reported as sent.
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.out != nil && !c.out.take(len(p)) {
		c.stats.dropped.Add(1)
		return len(p), nil
	}
	n, err := c.UDPConn.WriteTo(p, addr)
	if err == nil {
		c.stats.toPeerPackets.Add(1)
		c.stats.toPeerBytes.Add(uint64(n)) //nolint:gosec
	}
	return n, err
}

// ReadFrom reads a peer's packet for pion. On a UDP listener's allocation,
// packets from bound peers are relayed to the client here (fast path) and
// packets from peers without a permission are dropped; ReadFrom returns the
// others. The source address is reused while the peer stays the same, so
// steady relaying does not allocate.
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		var n int
		var ap netip.AddrPort
		var err error
		if c.rbuf != nil {
			n, ap, err = c.UDPConn.ReadFromUDPAddrPort(c.rbuf[4 : 4+min(len(p), relayMTU)])
			if err != nil {
				return n, nil, err
			}
			ap = unmap(ap)
			if c.relayToClient(n, ap) != toPion {
				continue
			}
			copy(p, c.rbuf[4:4+n])
		} else if n, ap, err = c.UDPConn.ReadFromUDPAddrPort(p); err != nil {
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

// Close closes the socket and releases the allocation's quota. Idempotent.
func (c *relayConn) Close() error {
	c.forgetFast()
	err := c.UDPConn.Close()
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
