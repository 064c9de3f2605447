// Package turn is the gateway's embedded TURN server (RFC 8656) on
// pion/turn, with the TURN REST shared-secret credentials Synapse and
// Dendrite hand to Matrix clients, per-user and total quotas, lifetime and
// bandwidth caps, a peer policy that keeps the relay out of private
// networks, several SO_REUSEPORT UDP read loops, TCP and TLS listeners, and
// Prometheus metrics.
package turn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/pion/logging"
	pturn "github.com/pion/turn/v5"

	"github.com/matrix-gateway/gateway/internal/pionlog"
)

// Server is a running TURN server. Close stops it.
type Server struct {
	cfg     Config
	auth    *authenticator
	peers   *peerPolicy
	track   *tracker
	metrics *metrics
	log     logging.LoggerFactory

	udp     *pturn.Server
	loop    *epollLoop // reads the relay sockets of UDP allocations; nil = pion's goroutines do
	udpAddr netip.AddrPort
	tcpLn   net.Listener
	tlsLn   net.Listener

	mu       sync.Mutex
	conns    map[*pturn.Server]struct{} // one per TCP/TLS connection
	closed   bool
	wg       sync.WaitGroup
	closeErr error
	once     sync.Once

	refusalsMu sync.Mutex
	refusals   map[string]map[string]int

	// chanTimeout and permTimeout override pion's channel binding and
	// permission lifetimes (10 and 5 min) when set; tests only.
	chanTimeout, permTimeout time.Duration
}

// New validates cfg, fills defaults, listens and starts serving.
func New(cfg Config) (*Server, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.listen(); err != nil {
		_ = s.Close()
		return nil, err
	}
	cfg = s.cfg
	cfg.Log.Info().Str("udp", s.udpAddr.String()).Int("udp_listeners", cfg.UDPListeners).
		Bool("tcp", s.tcpLn != nil).Bool("tls", s.tlsLn != nil).Str("relay", cfg.ExternalIP.String()).
		Str("relay_ports", strconv.Itoa(cfg.RelayPortMin)+"-"+strconv.Itoa(cfg.RelayPortMax)).
		Msg("TURN server listening")
	return s, nil
}

// newServer validates cfg and builds a server that does not listen yet.
func newServer(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		auth:     &authenticator{realm: cfg.Realm, secret: cfg.Secret, static: cfg.StaticUsers, now: cfg.Now},
		peers:    newPeerPolicy(cfg.AllowedPeers, cfg.DeniedPeers, ownAddresses(cfg.ListenIP, cfg.RelayIP, cfg.ExternalIP)),
		track:    newTracker(cfg.QuotaExempt),
		log:      pionlog.Discard, // pion logs per packet at debug level; the server reports through metrics
		conns:    map[*pturn.Server]struct{}{},
		refusals: map[string]map[string]int{},
	}
	s.metrics = newMetrics(s)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(s.metrics); err != nil {
			return nil, fmt.Errorf("turn: metrics: %w", err)
		}
	}
	return s, nil
}

// listen opens the listeners. With port 0 the kernel picks the UDP port
// and TCP must get the same number, which another socket may hold: then
// everything is closed and another port tried (a few times).
func (s *Server) listen() error {
	for attempt := 1; ; attempt++ {
		err := s.listenOnce()
		if err == nil || s.cfg.Port != 0 || attempt == 5 || !errors.Is(err, syscall.EADDRINUSE) {
			return err
		}
	}
}

func (s *Server) listenOnce() error {
	conns, err := listenUDP(netip.AddrPortFrom(s.cfg.ListenIP, uint16(s.cfg.Port)), s.cfg.UDPListeners, s.cfg.ReadBuffer) //nolint:gosec
	if err != nil {
		return fmt.Errorf("turn: listen udp: %w", err)
	}
	s.udpAddr = conns[0].LocalAddr().(*net.UDPAddr).AddrPort()
	if rawRelays && !s.cfg.GoroutineRelays {
		if s.loop, err = newEpollLoop(); err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			return err
		}
	}
	pcs := make([]pturn.PacketConnConfig, len(conns))
	for i, c := range conns {
		pcs[i] = s.packetConnConfig(c)
	}
	if s.udp, err = pturn.NewServer(s.serverConfig(pcs)); err != nil {
		for _, c := range conns {
			_ = c.Close()
		}
		return fmt.Errorf("turn: %w", err)
	}
	if s.cfg.TCP {
		port := int(s.udpAddr.Port())
		ln, err := net.Listen("tcp", netip.AddrPortFrom(s.cfg.ListenIP, uint16(port)).String()) //nolint:gosec
		if err != nil {
			_ = s.udp.Close() // closes the UDP listeners
			s.udp = nil
			if s.loop != nil {
				s.loop.close()
				s.loop = nil
			}
			return fmt.Errorf("turn: listen tcp: %w", err)
		}
		s.tcpLn = ln
		s.wg.Add(1)
		go s.accept(ln)
	}
	if s.cfg.TLSPort != 0 {
		ln, err := tls.Listen("tcp", netip.AddrPortFrom(s.cfg.ListenIP, uint16(s.cfg.TLSPort)).String(), s.cfg.TLS) //nolint:gosec
		if err != nil {
			return fmt.Errorf("turn: listen tls: %w", err)
		}
		s.tlsLn = ln
		s.wg.Add(1)
		go s.accept(ln)
	}
	return nil
}

func (s *Server) packetConnConfig(c net.PacketConn) pturn.PacketConnConfig {
	g := &guardConn{PacketConn: c, s: s}
	if u, ok := c.(*net.UDPConn); ok {
		g.udp, g.fast = u, map[netip.AddrPort]*relayConn{}
		g.initRawSend()
	}
	return pturn.PacketConnConfig{
		PacketConn:            g,
		RelayAddressGenerator: &relayGenerator{s: s, g: g},
		PermissionHandler:     func(_ net.Addr, ip net.IP) bool { return s.peers.allowsIP(ip) },
	}
}

func (s *Server) serverConfig(pcs []pturn.PacketConnConfig) pturn.ServerConfig {
	return pturn.ServerConfig{
		PacketConnConfigs: pcs,
		LoggerFactory:     s.log,
		Realm:             s.cfg.Realm,
		AuthHandler: func(ra *pturn.RequestAttributes) (string, []byte, bool) {
			key, _, why := s.auth.key(ra.Username, ra.Realm)
			return ra.Username, key, why == authOK
		},
		EventHandler: pturn.EventHandler{
			OnAllocationCreated: func(src, dst net.Addr, _, userID, _ string, relay net.Addr, _ int) {
				s.track.allocated(src, dst, userID, relay)
				s.onAllocationCreated(src, relay)
			},
			OnPermissionCreated: func(_, _ net.Addr, _, _, _ string, relay net.Addr, peer net.IP) {
				s.onPermission(relay, peer, true)
			},
			OnPermissionDeleted: func(_, _ net.Addr, _, _, _ string, relay net.Addr, peer net.IP) {
				s.onPermission(relay, peer, false)
			},
			OnChannelCreated: func(_, _ net.Addr, _, _, _ string, relay, peer net.Addr, num uint16) {
				s.onChannel(relay, peer, num, true)
			},
			OnChannelDeleted: func(_, _ net.Addr, _, _, _ string, relay, peer net.Addr, num uint16) {
				s.onChannel(relay, peer, num, false)
			},
		},
		AllocationLifetime: s.cfg.DefaultLifetime,
		ChannelBindTimeout: s.chanTimeout,
		PermissionTimeout:  s.permTimeout,
	}
}

// accept serves each TCP or TLS connection with its own pion server over
// the framed connection, behind the same guard, quotas and peer policy.
func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if tc, ok := conn.(*tls.Conn); ok {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := tc.HandshakeContext(ctx)
				cancel()
				if err != nil {
					_ = conn.Close()
					return
				}
			}
			done := make(chan struct{})
			pcc := s.packetConnConfig(pturn.NewSTUNConn(conn))
			pcc.PacketConn.(*guardConn).done = done
			srv, err := pturn.NewServer(s.serverConfig([]pturn.PacketConnConfig{pcc}))
			if err != nil {
				_ = conn.Close()
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				_ = srv.Close()
				return
			}
			s.conns[srv] = struct{}{}
			s.mu.Unlock()
			// The connection's read loop ends when the client goes away;
			// wait for that, then drop its allocations.
			<-done
			s.mu.Lock()
			delete(s.conns, srv)
			s.mu.Unlock()
			_ = srv.Close()
		}()
	}
}

// Close stops the listeners and every allocation. Idempotent.
func (s *Server) Close() error {
	s.once.Do(func() {
		var errs []error
		s.mu.Lock()
		s.closed = true
		conns := s.conns
		s.conns = map[*pturn.Server]struct{}{}
		s.mu.Unlock()
		for _, ln := range []net.Listener{s.tcpLn, s.tlsLn} {
			if ln != nil {
				errs = append(errs, ln.Close())
			}
		}
		for srv := range conns {
			_ = srv.Close()
		}
		if s.udp != nil {
			errs = append(errs, s.udp.Close())
		}
		if s.loop != nil {
			s.loop.close()
		}
		s.wg.Wait()
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// UDPAddr is the UDP (and TCP) listening address, with the port chosen.
func (s *Server) UDPAddr() netip.AddrPort { return s.udpAddr }

// TLSAddr is the TLS listening address; invalid when TLS is off.
func (s *Server) TLSAddr() netip.AddrPort {
	if s.tlsLn == nil {
		return netip.AddrPort{}
	}
	return s.tlsLn.Addr().(*net.TCPAddr).AddrPort()
}

// URIs returns the turn:/turns: URIs clients should use with host (a DNS
// name or IP that reaches this server), in the form homeservers publish.
func (s *Server) URIs(host string) []string {
	return URIs(host, int(s.udpAddr.Port()), s.tcpLn != nil, int(s.TLSAddr().Port()))
}

// URIs builds turn:/turns: URIs for a server at host on port (UDP, and TCP
// when tcp), with turns: on tlsPort when it is not 0.
func URIs(host string, port int, tcp bool, tlsPort int) []string {
	hp := net.JoinHostPort(host, strconv.Itoa(port))
	out := []string{"turn:" + hp + "?transport=udp"}
	if tcp {
		out = append(out, "turn:"+hp+"?transport=tcp")
	}
	if tlsPort != 0 {
		out = append(out, "turns:"+net.JoinHostPort(host, strconv.Itoa(tlsPort))+"?transport=tcp")
	}
	return out
}

// Allocations returns the number of allocations in use.
func (s *Server) Allocations() int {
	_, live, _ := s.track.totals()
	return live
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	t, live, created := s.track.totals()
	st := Stats{
		Allocations: live, AllocationsTotal: int(created), //nolint:gosec
		ToPeerPackets: t.toPeerPackets, ToPeerBytes: t.toPeerBytes,
		ToClientPackets: t.toClientPackets, ToClientBytes: t.toClientBytes,
		DroppedPackets: t.dropped, FastToPeerPackets: t.fastToPeer, FastToClientPackets: t.fastToClient,
		NoPermissionPackets: t.noPermission,
		AuthFailures:        map[string]int{}, QuotaRefusals: map[string]int{},
	}
	s.refusalsMu.Lock()
	defer s.refusalsMu.Unlock()
	for k, v := range s.refusals["auth"] {
		st.AuthFailures[k] = v
	}
	for k, v := range s.refusals["quota"] {
		st.QuotaRefusals[k] = v
	}
	st.PeerRefusals = s.refusals["peer"][""]
	return st
}

// count records a refusal in the metrics and the stats.
func (s *Server) count(kind, label string) {
	switch kind {
	case "auth":
		s.metrics.authFailures.WithLabelValues(label).Inc()
	case "quota":
		s.metrics.quotaRefusals.WithLabelValues(label).Inc()
	case "peer":
		s.metrics.peerRefusals.Inc()
	default:
		return
	}
	s.refusalsMu.Lock()
	if s.refusals[kind] == nil {
		s.refusals[kind] = map[string]int{}
	}
	s.refusals[kind][label]++
	s.refusalsMu.Unlock()
}
