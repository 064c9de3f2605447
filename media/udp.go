package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// ErrNoRemote is returned by WritePacket before the remote address is known.
var ErrNoRemote = errors.New("media: RTP remote address not known yet")

// UDPConfig configures a UDPSession.
type UDPConfig struct {
	// ListenIP is the local address to bind (default 0.0.0.0).
	ListenIP netip.Addr
	// AdvertiseIP is the address written into SDP (default ListenIP). It
	// must be set when ListenIP is unspecified.
	AdvertiseIP netip.Addr
	// Ports allocates the even RTP port; nil lets the kernel pick any port
	// (tests only: the port may be odd and RTCP gets no socket).
	Ports *PortAllocator
	// Remote is the peer's address from its SDP, if already known.
	Remote netip.AddrPort
	// ReadBuffer sets SO_RCVBUF in bytes; 0 keeps the system default.
	ReadBuffer int
}

// UDPSession is one call's RTP socket toward a SIP trunk. It implements
// PacketReader and PacketWriter with symmetric RTP (RFC 4961): packets go
// to the address from SDP until the first valid RTP packet arrives, then to
// that packet's source (latching), and packets from any other source are
// dropped. ReadPacket is for one goroutine; WritePacket may run on another.
type UDPSession struct {
	conn      *net.UDPConn
	rtcp      *net.UDPConn                // the RTCP port; read by an RTCPSession, if one is started
	rtcpMux   atomic.Pointer[RTCPSession] // takes RTCP arriving on the RTP port (rtcp-mux)
	ports     *PortAllocator
	local     netip.AddrPort
	advertise netip.AddrPort
	peer      atomic.Pointer[udpPeer]
	foreign   atomic.Uint64
	notRTP    atomic.Uint64
	closed    atomic.Bool
	once      sync.Once
	closeErr  error
}

type udpPeer struct {
	addr    netip.AddrPort
	latched bool
}

var (
	_ PacketReader = (*UDPSession)(nil)
	_ PacketWriter = (*UDPSession)(nil)
)

// NewUDPSession binds the RTP socket (an even port from cfg.Ports).
func NewUDPSession(cfg UDPConfig) (*UDPSession, error) {
	if !cfg.ListenIP.IsValid() {
		cfg.ListenIP = netip.IPv4Unspecified()
	}
	if !cfg.AdvertiseIP.IsValid() {
		if cfg.ListenIP.IsUnspecified() {
			return nil, errors.New("media: AdvertiseIP is required when listening on all addresses")
		}
		cfg.AdvertiseIP = cfg.ListenIP
	}
	s := &UDPSession{ports: cfg.Ports}
	var err error
	if cfg.Ports != nil {
		s.conn, s.rtcp, err = cfg.Ports.bindPair(cfg.ListenIP)
	} else {
		s.conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.ListenIP, 0)))
	}
	if err != nil {
		return nil, fmt.Errorf("media: bind RTP: %w", err)
	}
	if cfg.ReadBuffer > 0 {
		_ = s.conn.SetReadBuffer(cfg.ReadBuffer)
	}
	s.local = s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	s.advertise = netip.AddrPortFrom(cfg.AdvertiseIP, s.local.Port())
	if cfg.Remote.IsValid() {
		s.peer.Store(&udpPeer{addr: unmap(cfg.Remote)})
	}
	return s, nil
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// LocalAddr returns the bound address.
func (s *UDPSession) LocalAddr() netip.AddrPort { return s.local }

// AdvertisedAddr returns the address and port to put in SDP (c= and m=).
func (s *UDPSession) AdvertisedAddr() netip.AddrPort { return s.advertise }

// SetRemote sets the address from the peer's SDP (offer, answer or
// re-INVITE) and forgets any latched source, so the next valid packet
// latches again.
func (s *UDPSession) SetRemote(addr netip.AddrPort) {
	s.peer.Store(&udpPeer{addr: unmap(addr)})
}

// Remote returns where packets are sent and whether it was latched from
// received traffic.
func (s *UDPSession) Remote() (addr netip.AddrPort, latched bool) {
	if p := s.peer.Load(); p != nil {
		return p.addr, p.latched
	}
	return netip.AddrPort{}, false
}

// Foreign returns how many packets were dropped because they came from a
// source other than the latched one.
func (s *UDPSession) Foreign() uint64 { return s.foreign.Load() }

// NotRTP returns how many datagrams were dropped as not RTP (too short, wrong
// version, or RTCP; RTCP on the RTP port still reaches an RTCPSession).
func (s *UDPSession) NotRTP() uint64 { return s.notRTP.Load() }

// ReadPacket blocks until an RTP packet from the latched source (or, before
// latching, from anyone) arrives and copies it into buf. It returns
// net.ErrClosed after Close.
func (s *UDPSession) ReadPacket(buf []byte) (int, error) {
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if s.closed.Load() {
				return 0, net.ErrClosed
			}
			return 0, err
		}
		from = unmap(from)
		if n < rtpHeaderLen || buf[0]>>6 != 2 || (buf[1] >= 192 && buf[1] <= 223) {
			s.notRTP.Add(1)
			if m := s.rtcpMux.Load(); m != nil && n >= 8 && buf[1] >= 200 && buf[1] <= 204 {
				m.handleMux(buf[:n], from)
			}
			continue
		}
		p := s.peer.Load()
		if p != nil && p.latched {
			if from != p.addr {
				s.foreign.Add(1)
				continue
			}
			return n, nil
		}
		// First valid packet since the remote was set: latch onto it. This
		// allocates once per latch, not per packet.
		s.peer.CompareAndSwap(p, &udpPeer{addr: from, latched: true})
		return n, nil
	}
}

// WritePacket sends pkt to the latched source, or to the SDP address before
// latching. It returns ErrNoRemote while neither is known.
func (s *UDPSession) WritePacket(pkt []byte) error {
	p := s.peer.Load()
	if p == nil || !p.addr.IsValid() {
		return ErrNoRemote
	}
	_, err := s.conn.WriteToUDPAddrPort(pkt, p.addr)
	return err
}

// Close closes the sockets and returns the port pair to the allocator. It
// is idempotent.
func (s *UDPSession) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		err := s.conn.Close()
		if s.rtcp != nil {
			err = errors.Join(err, s.rtcp.Close())
		}
		if s.ports != nil {
			s.ports.release(int(s.local.Port()))
		}
		s.closeErr = err
	})
	return s.closeErr
}
