package turn

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/prometheus/client_golang/prometheus"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// testConfig is a server on loopback whose peers may be on loopback too
// (allowed only in tests).
func testConfig() Config {
	return Config{
		Realm: "gw.test", Secret: "s3cret", ListenIP: loopback, UDPListeners: 2, TCP: true,
		StaticUsers:  map[string]string{"static": "static-pw"},
		AllowedPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		RelayPortMin: 61000, RelayPortMax: 61999,
	}
}

func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func restClient(t *testing.T, s *Server, secret, user string, ttl time.Duration) *tclient {
	name, pass := RESTCredentials(secret, user, ttl, time.Now())
	return newClient(t, s, name, pass)
}

// udpPeer is a loopback UDP echo peer.
func udpPeer(t *testing.T) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestRelayThroughChannelWithRESTCredentials(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	cfg.Registerer = reg
	s := startServer(t, cfg)
	peer, peerAddr := udpPeer(t)
	c := restClient(t, s, "s3cret", "@alice:gw.test", time.Hour)
	relay, code := c.allocate()
	if code != 0 {
		t.Fatalf("allocate: %d", code)
	}
	if relay.Addr() != loopback || relay.Port() < 61000 || relay.Port() > 61999 {
		t.Errorf("relay %v outside 127.0.0.1:61000-61999", relay)
	}
	if _, code := c.request(stun.MethodChannelBind, channel(0x4000), peerAttr(peerAddr)); code != 0 {
		t.Fatalf("channel bind: %d", code)
	}
	// Client -> peer over ChannelData, peer -> client back.
	const n = 20
	payload := bytes.Repeat([]byte{0xab}, 160)
	frame := append([]byte{0x40, 0x00, 0, 160}, payload...)
	buf := make([]byte, 1600)
	for i := range n {
		if _, err := c.conn.WriteToUDP(frame, c.server); err != nil {
			t.Fatal(err)
		}
		_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, from, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("packet %d did not reach the peer: %v", i, err)
		}
		if from != relay || !bytes.Equal(buf[:k], payload) {
			t.Fatalf("peer got %d bytes from %v, want %d from %v", k, from, len(payload), relay)
		}
		if _, err := peer.WriteToUDPAddrPort(payload[:100], from); err != nil {
			t.Fatal(err)
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err = c.conn.Read(buf)
		if err != nil || k != 104 || buf[0] != 0x40 || buf[1] != 0 {
			t.Fatalf("no ChannelData back (%d bytes, %v)", k, err)
		}
	}
	st := s.Stats()
	if st.Allocations != 1 || st.ToPeerPackets != n || st.ToClientPackets != n || st.ToPeerBytes != n*160 || st.ToClientBytes != n*100 {
		t.Errorf("stats %+v", st)
	}
	if got := metricValue(t, reg, "gateway_turn_relayed_packets_total", "to_peer"); got != n {
		t.Errorf("metric to_peer packets = %v", got)
	}
	// Refresh with lifetime 0 deletes the allocation.
	if _, code := c.request(stun.MethodRefresh, lifetime(0)); code != 0 {
		t.Fatalf("refresh 0: %d", code)
	}
	if s.Allocations() != 0 {
		t.Errorf("%d allocations after delete", s.Allocations())
	}
}

// metricValue returns the value of one counter or gauge series of reg,
// picked by name and one label value ("" for none).
func metricValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				match = match || lp.GetValue() == label
			}
			if !match {
				continue
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

func TestBadCredentialsGet401AndNoAllocation(t *testing.T) {
	s := startServer(t, testConfig())
	cases := []struct {
		name   string
		c      *tclient
		reason string
	}{
		{"wrong secret", restClient(t, s, "not-the-secret", "@alice:gw.test", time.Hour), "bad_password"},
		{"expired", restClient(t, s, "s3cret", "@alice:gw.test", -time.Minute), "expired"},
		{"unknown user", newClient(t, s, "mallory", "pw"), "unknown_user"},
		{"static user wrong password", newClient(t, s, "static", "nope"), "bad_password"},
	}
	for _, c := range cases {
		res, code := c.c.allocate()
		if code != 401 {
			t.Errorf("%s: code %d, want 401", c.name, code)
			continue
		}
		_ = res
	}
	st := s.Stats()
	if st.AllocationsTotal != 0 || st.AuthFailures["bad_password"] != 2 || st.AuthFailures["expired"] != 1 || st.AuthFailures["unknown_user"] != 1 {
		t.Errorf("stats %+v", st)
	}
	if _, code := newClient(t, s, "static", "static-pw").allocate(); code != 0 {
		t.Errorf("static user refused: %d", code)
	}
}

func TestAnotherUsersCredentialsGet441(t *testing.T) {
	s := startServer(t, testConfig())
	alice := restClient(t, s, "s3cret", "@alice:gw.test", time.Hour)
	if _, code := alice.allocate(); code != 0 {
		t.Fatal(code)
	}
	// Same 5-tuple, other (valid) credentials.
	alice.user, alice.pass = RESTCredentials("s3cret", "@bob:gw.test", time.Hour, time.Now())
	if _, code := alice.request(stun.MethodRefresh, lifetime(time.Minute)); code != 441 {
		t.Errorf("refresh with other credentials: %d, want 441", code)
	}
	if s.Stats().AuthFailures["wrong_credentials"] != 1 {
		t.Errorf("stats %+v", s.Stats())
	}
}

func TestDeniedPeersGet403ByDefault(t *testing.T) {
	cfg := testConfig()
	cfg.AllowedPeers = nil // the default policy
	cfg.DeniedPeers = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	s := startServer(t, cfg)
	c := restClient(t, s, "s3cret", "@alice:gw.test", time.Hour)
	if _, code := c.allocate(); code != 0 {
		t.Fatal(code)
	}
	for _, peer := range []string{"127.0.0.1:5000", "10.0.0.1:5000", "192.168.1.1:5000", "172.16.0.1:5000", "169.254.0.1:5000", "224.0.0.1:5000", "198.51.100.1:5000"} {
		ap := netip.MustParseAddrPort(peer)
		if _, code := c.request(stun.MethodCreatePermission, peerAttr(ap)); code != 403 {
			t.Errorf("CreatePermission %s: %d, want 403", peer, code)
		}
		if _, code := c.request(stun.MethodChannelBind, channel(0x4001), peerAttr(ap)); code != 403 {
			t.Errorf("ChannelBind %s: %d, want 403", peer, code)
		}
	}
	// A public address is fine.
	if _, code := c.request(stun.MethodCreatePermission, peerAttr(netip.MustParseAddrPort("192.0.2.10:5000"))); code != 0 {
		t.Errorf("CreatePermission to a public address: %d", code)
	}
	if got := s.Stats().PeerRefusals; got != 14 {
		t.Errorf("peer refusals %d, want 14", got)
	}
}

func TestQuotas(t *testing.T) {
	cfg := testConfig()
	cfg.UserQuota, cfg.TotalQuota = 2, 3
	s := startServer(t, cfg)
	alice := []*tclient{}
	for range 3 {
		alice = append(alice, restClient(t, s, "s3cret", "@alice:gw.test", time.Hour))
	}
	for i, c := range alice[:2] {
		if _, code := c.allocate(); code != 0 {
			t.Fatalf("alice %d: %d", i, code)
		}
	}
	if _, code := alice[2].allocate(); code != 486 {
		t.Errorf("alice over her quota: %d, want 486", code)
	}
	// Alice exhausting her quota does not affect bob.
	bob := restClient(t, s, "s3cret", "@bob:gw.test", time.Hour)
	if _, code := bob.allocate(); code != 0 {
		t.Errorf("bob refused because of alice: %d", code)
	}
	carol := restClient(t, s, "s3cret", "@carol:gw.test", time.Hour)
	if _, code := carol.allocate(); code != 508 {
		t.Errorf("over the total quota: %d, want 508", code)
	}
	// Freeing one of alice's makes room again.
	if _, code := alice[0].request(stun.MethodRefresh, lifetime(0)); code != 0 {
		t.Fatal(code)
	}
	if _, code := carol.allocate(); code != 0 {
		t.Errorf("carol after a release: %d", code)
	}
	st := s.Stats()
	if st.QuotaRefusals["user"] != 1 || st.QuotaRefusals["total"] != 1 || st.Allocations != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestQuotaExemptUser(t *testing.T) {
	cfg := testConfig()
	cfg.UserQuota, cfg.QuotaExempt = 1, []string{"static"}
	s := startServer(t, cfg)
	for i := range 3 {
		if _, code := newClient(t, s, "static", "static-pw").allocate(); code != 0 {
			t.Fatalf("exempt user's allocation %d: %d", i, code)
		}
	}
	alice := []*tclient{restClient(t, s, "s3cret", "@alice:gw.test", time.Hour), restClient(t, s, "s3cret", "@alice:gw.test", time.Hour)}
	if _, code := alice[0].allocate(); code != 0 {
		t.Fatal(code)
	}
	if _, code := alice[1].allocate(); code != 486 {
		t.Errorf("second allocation over a quota of 1: %d", code)
	}
}

func TestLifetimeIsCapped(t *testing.T) {
	cfg := testConfig()
	cfg.DefaultLifetime, cfg.MaxLifetime = 2*time.Minute, 5*time.Minute
	s := startServer(t, cfg)
	c := restClient(t, s, "s3cret", "@alice:gw.test", time.Hour)
	res, code := c.request(stun.MethodAllocate, udpTransport(), lifetime(50*time.Minute))
	if code != 0 {
		t.Fatal(code)
	}
	if got := lifetimeOf(t, res); got != 5*time.Minute {
		t.Errorf("allocate lifetime %v, want the 5m cap", got)
	}
	res, code = c.request(stun.MethodRefresh, lifetime(40*time.Minute))
	if code != 0 {
		t.Fatal(code)
	}
	if got := lifetimeOf(t, res); got != 5*time.Minute {
		t.Errorf("refresh lifetime %v, want 5m", got)
	}
	res, code = c.request(stun.MethodRefresh)
	if code != 0 {
		t.Fatal(code)
	}
	if got := lifetimeOf(t, res); got != 2*time.Minute {
		t.Errorf("default lifetime %v, want 2m", got)
	}
}

func TestTCPRelayRefusedWith442(t *testing.T) {
	s := startServer(t, testConfig())
	c := restClient(t, s, "s3cret", "@alice:gw.test", time.Hour)
	tcp := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{6, 0, 0, 0}}
	if _, code := c.request(stun.MethodAllocate, tcp); code != 442 {
		t.Errorf("TCP relay: %d, want 442", code)
	}
}

func TestBandwidthCapDropsExcess(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBitrate = 64000 // 8 kB/s, burst 6000 bytes
	s := startServer(t, cfg)
	peer, peerAddr := udpPeer(t)
	c := restClient(t, s, "s3cret", "@alice:gw.test", time.Hour)
	if _, code := c.allocate(); code != 0 {
		t.Fatal(code)
	}
	if _, code := c.request(stun.MethodChannelBind, channel(0x4000), peerAttr(peerAddr)); code != 0 {
		t.Fatal(code)
	}
	// 100 packets of 1000 bytes at once: far above 6000 bytes of burst.
	frame := append([]byte{0x40, 0x00, 0x03, 0xe8}, make([]byte, 1000)...)
	for range 100 {
		if _, err := c.conn.WriteToUDP(frame, c.server); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	buf := make([]byte, 2000)
	for {
		_ = peer.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := peer.Read(buf); err != nil {
			break
		}
		got++
	}
	st := s.Stats()
	if got == 0 || got > 20 || st.DroppedPackets == 0 || int(st.DroppedPackets)+got != 100 {
		t.Errorf("peer got %d of 100, dropped %d: the cap did not hold", got, st.DroppedPackets)
	}
}

// streamAllocate makes an allocation over a TCP or TLS connection (RFC 6062
// framing is plain STUN back to back) and reports whether it succeeded.
func streamAllocate(t *testing.T, conn net.Conn) bool {
	t.Helper()
	name, pass := RESTCredentials("s3cret", "@alice:gw.test", time.Hour, time.Now())
	send := func(setters ...stun.Setter) *stun.Message {
		m := stun.MustBuild(setters...)
		if _, err := conn.Write(m.Raw); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		hdr := make([]byte, 20)
		if _, err := readFull(conn, hdr); err != nil {
			t.Fatal(err)
		}
		body := make([]byte, int(hdr[2])<<8|int(hdr[3]))
		if _, err := readFull(conn, body); err != nil {
			t.Fatal(err)
		}
		res := &stun.Message{Raw: append(hdr, body...)}
		if err := res.Decode(); err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := send(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udpTransport())
	var nonce stun.Nonce
	if err := nonce.GetFrom(res); err != nil {
		t.Fatalf("no nonce over a stream: %v", res)
	}
	res = send(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udpTransport(),
		stun.NewUsername(name), stun.NewRealm("gw.test"), nonce, stun.NewLongTermIntegrity(name, "gw.test", pass), stun.Fingerprint)
	return res.Type.Class == stun.ClassSuccessResponse
}

// waitAllocations waits (bounded) until s has n allocations.
func waitAllocations(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.Allocations() != n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.Allocations(); got != n {
		t.Fatalf("%d allocations, want %d", got, n)
	}
}

func TestTCPListener(t *testing.T) {
	s := startServer(t, testConfig())
	conn, err := net.Dial("tcp", s.UDPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !streamAllocate(t, conn) {
		t.Fatal("allocate over TCP failed")
	}
	waitAllocations(t, s, 1)
	conn.Close()
	waitAllocations(t, s, 0) // closing the connection ends its allocation
}

func TestTLSListener(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "turn.gw.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"turn.gw.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	cfg := testConfig()
	cfg.TLSPort = port
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	s := startServer(t, cfg)
	if s.TLSAddr().Port() != uint16(port) {
		t.Fatalf("TLS address %v", s.TLSAddr())
	}
	pool := x509.NewCertPool()
	leaf, _ := x509.ParseCertificate(der)
	pool.AddCert(leaf)
	conn, err := tls.Dial("tcp", s.TLSAddr().String(), &tls.Config{RootCAs: pool, ServerName: "turn.gw.test", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !streamAllocate(t, conn) {
		t.Fatal("allocate over TLS failed")
	}
	waitAllocations(t, s, 1)
	if uris := s.URIs("turn.gw.test"); len(uris) != 3 || uris[2] != "turns:turn.gw.test:"+strconv.Itoa(port)+"?transport=tcp" {
		t.Errorf("URIs %v", uris)
	}
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := c.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Realm = "" }, "realm"},
		{func(c *Config) { c.Secret, c.StaticUsers = "", nil }, "secret"},
		{func(c *Config) {
			c.ListenIP, c.RelayIP, c.ExternalIP = netip.IPv4Unspecified(), netip.Addr{}, netip.Addr{}
		}, "unspecified"},
		{func(c *Config) { c.RelayPortMin, c.RelayPortMax = 5000, 4000 }, "relay port"},
		{func(c *Config) { c.TLSPort = 5349 }, "certificate"},
		{func(c *Config) { c.MaxLifetime = 2 * time.Hour }, "1h"},
		{func(c *Config) { c.UserQuota = -1 }, "negative"},
	} {
		cfg := testConfig()
		c.mut(&cfg)
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one about %q", err, c.want)
		}
	}
}

func TestExternalIPIsAnnounced(t *testing.T) {
	cfg := testConfig()
	cfg.RelayIP = loopback
	cfg.ExternalIP = netip.MustParseAddr("203.0.113.9") // the public side of a 1:1 NAT
	s := startServer(t, cfg)
	relay, code := restClient(t, s, "s3cret", "@alice:gw.test", time.Hour).allocate()
	if code != 0 {
		t.Fatal(code)
	}
	if relay.Addr() != cfg.ExternalIP || relay.Port() < 61000 || relay.Port() > 61999 {
		t.Errorf("relayed address %v, want 203.0.113.9 with a port of the range", relay)
	}
	// The socket itself is bound on the relay IP.
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, relay.Port())))
	if err == nil {
		c.Close()
		t.Errorf("relay port %d is not bound on %v", relay.Port(), loopback)
	}
}
