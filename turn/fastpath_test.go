package turn

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// startServerWith starts a server whose channel binding and permission
// lifetimes are shortened (0 keeps pion's defaults).
func startServerWith(t *testing.T, cfg Config, chanTimeout, permTimeout time.Duration) *Server {
	t.Helper()
	s, err := newServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.chanTimeout, s.permTimeout = chanTimeout, permTimeout
	if err := s.listen(); err != nil {
		_ = s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// boundClient allocates and binds channel 0x4000 to peer.
func boundClient(t *testing.T, s *Server, peer netip.AddrPort) (*tclient, netip.AddrPort) {
	t.Helper()
	c := restClient(t, s, "s3cret", "@alice:gw.test", time.Hour)
	relay, code := c.allocate()
	if code != 0 {
		t.Fatalf("allocate: %d", code)
	}
	if _, code := c.request(stun.MethodChannelBind, channel(0x4000), peerAttr(peer)); code != 0 {
		t.Fatalf("channel bind: %d", code)
	}
	return c, relay
}

// readFrom reads one datagram or reports nothing within d.
func readFrom(c *net.UDPConn, buf []byte, d time.Duration) (int, netip.AddrPort, bool) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	return n, from, err == nil
}

func clientAddr(c *tclient) netip.AddrPort {
	return c.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func relayOf(t *testing.T, s *Server, relay netip.AddrPort) *relayConn {
	t.Helper()
	rc := s.track.relay(int(relay.Port()))
	if rc == nil || rc.g == nil || rc.g.udp == nil {
		t.Fatalf("no UDP relay on port %d", relay.Port())
	}
	return rc
}

// TestFastPathRelaysBothWaysWithoutLoss sends bursts of ChannelData each
// way and checks every packet arrives intact and went through the fast path.
func TestFastPathRelaysBothWaysWithoutLoss(t *testing.T) {
	testRelayBothWays(t, testConfig())
}

// TestFastPathDualStackSockets: a listener and relays on the wildcard
// address are dual-stack sockets that see IPv4 clients and peers as
// IPv4-mapped IPv6 addresses; the fast path must match them all the same.
func TestFastPathDualStackSockets(t *testing.T) {
	cfg := testConfig()
	cfg.ListenIP = netip.IPv4Unspecified()
	cfg.ExternalIP = loopback
	cfg.TCP = false
	testRelayBothWays(t, cfg)
}

func testRelayBothWays(t *testing.T, cfg Config) {
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	s := startServer(t, cfg)
	peer, peerAddr := udpPeer(t)
	c, relay := boundClient(t, s, peerAddr)
	const rounds, burst = 10, 20
	buf := make([]byte, 1600)
	for r := range rounds {
		for i := range burst {
			payload := bytes.Repeat([]byte{byte(r*burst + i)}, 170) // 170: padded to 172 on the way back
			frame := append([]byte{0x40, 0x00, 0, 170}, payload...)
			if _, err := c.conn.WriteToUDP(frame, c.server); err != nil {
				t.Fatal(err)
			}
		}
		for i := range burst {
			n, from, ok := readFrom(peer, buf, 5*time.Second)
			want := bytes.Repeat([]byte{byte(r*burst + i)}, 170)
			if !ok || from != relay || !bytes.Equal(buf[:n], want) {
				t.Fatalf("round %d packet %d: peer got %d bytes from %v (ok %v)", r, i, n, from, ok)
			}
		}
		for i := range burst {
			if _, err := peer.WriteToUDPAddrPort(bytes.Repeat([]byte{byte(i)}, 170), relay); err != nil {
				t.Fatal(err)
			}
		}
		for i := range burst {
			n, _, ok := readFrom(c.conn, buf, 5*time.Second)
			if !ok || n != 4+172 || binary.BigEndian.Uint16(buf) != 0x4000 || binary.BigEndian.Uint16(buf[2:]) != 170 ||
				!bytes.Equal(buf[4:174], bytes.Repeat([]byte{byte(i)}, 170)) || !bytes.Equal(buf[174:176], []byte{0, 0}) {
				t.Fatalf("round %d packet %d: client got %d bytes %x (ok %v)", r, i, n, buf[:min(n, 8)], ok)
			}
		}
	}
	const total = rounds * burst
	waitStats(t, s, func(st Stats) bool {
		return st.ToPeerPackets == total && st.ToClientPackets == total && st.FastToPeerPackets == total && st.FastToClientPackets == total &&
			st.ToPeerBytes == total*170 && st.ToClientBytes == total*170 && st.DroppedPackets == 0 && st.NoPermissionPackets == 0
	})
	if got := metricValue(t, reg, "gateway_turn_fast_path_packets_total", "to_client"); got != total {
		t.Errorf("metric fast to_client = %v", got)
	}
}

// TestSendIndicationFastPathAndDataIndicationFallback: a Send indication to
// a permitted peer is relayed by the fast path; the peer's answer, with no
// channel bound, comes back as pion's Data indication.
func TestSendIndicationFastPathAndDataIndicationFallback(t *testing.T) {
	s := startServer(t, testConfig())
	peer, peerAddr := udpPeer(t)
	c := restClient(t, s, "s3cret", "@alice:gw.test", time.Hour)
	relay, code := c.allocate()
	if code != 0 {
		t.Fatal(code)
	}
	if _, code := c.request(stun.MethodCreatePermission, peerAttr(peerAddr)); code != 0 {
		t.Fatal(code)
	}
	send := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication), peerAttr(peerAddr),
		stun.RawAttribute{Type: stun.AttrData, Value: []byte("hello peer")})
	if _, err := c.conn.WriteToUDP(send.Raw, c.server); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1600)
	n, from, ok := readFrom(peer, buf, 5*time.Second)
	if !ok || from != relay || string(buf[:n]) != "hello peer" {
		t.Fatalf("peer got %q from %v (ok %v)", buf[:n], from, ok)
	}
	if _, err := peer.WriteToUDPAddrPort([]byte("hello client"), relay); err != nil {
		t.Fatal(err)
	}
	n, _, ok = readFrom(c.conn, buf, 5*time.Second)
	m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
	if !ok || m.Decode() != nil || m.Type != stun.NewType(stun.MethodData, stun.ClassIndication) {
		t.Fatalf("client got %d bytes, not a Data indication (ok %v)", n, ok)
	}
	if data, err := m.Get(stun.AttrData); err != nil || string(data) != "hello client" {
		t.Errorf("DATA %q, %v", data, err)
	}
	waitStats(t, s, func(st Stats) bool {
		return st.FastToPeerPackets == 1 && st.ToPeerPackets == 1 && st.FastToClientPackets == 0 && st.ToClientPackets == 1
	})
}

// TestFastPathDropsPeersWithoutPermission: datagrams from a peer without a
// permission and Send indications to one are dropped and counted.
func TestFastPathDropsPeersWithoutPermission(t *testing.T) {
	s := startServer(t, testConfig())
	_, peerAddr := udpPeer(t)
	// The stranger is on another IP: permissions are per IP.
	stranger2, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Skipf("no 127.0.0.2: %v", err)
	}
	defer stranger2.Close()
	c, relay := boundClient(t, s, peerAddr)
	if _, err := stranger2.WriteToUDPAddrPort([]byte("spam"), relay); err != nil {
		t.Fatal(err)
	}
	stranger2Addr := stranger2.LocalAddr().(*net.UDPAddr).AddrPort()
	send := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication), peerAttr(stranger2Addr),
		stun.RawAttribute{Type: stun.AttrData, Value: []byte("leak")})
	if _, err := c.conn.WriteToUDP(send.Raw, c.server); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1600)
	if n, _, ok := readFrom(c.conn, buf, 300*time.Millisecond); ok {
		t.Errorf("client got %d bytes from a peer without permission", n)
	}
	if n, _, ok := readFrom(stranger2, buf, 300*time.Millisecond); ok {
		t.Errorf("peer without permission got %d bytes", n)
	}
	waitStats(t, s, func(st Stats) bool {
		return st.NoPermissionPackets == 2 && st.ToClientPackets == 0 && st.ToPeerPackets == 0
	})
}

// TestFastPathStopsWhenBindingExpires: once the channel binding expires the
// client's ChannelData is no longer relayed and the peer's packets come
// back as Data indications while the permission lasts, then not at all.
func TestFastPathStopsWhenBindingExpires(t *testing.T) {
	s := startServerWith(t, testConfig(), 300*time.Millisecond, 1500*time.Millisecond)
	peer, peerAddr := udpPeer(t)
	c, relay := boundClient(t, s, peerAddr)
	rc := relayOf(t, s, relay)
	frame := []byte{0x40, 0x00, 0, 4, 1, 2, 3, 4}
	if _, err := c.conn.WriteToUDP(frame, c.server); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1600)
	if _, _, ok := readFrom(peer, buf, 5*time.Second); !ok {
		t.Fatal("no packet before expiry")
	}
	waitFor(t, "channel expiry", func() bool { st := rc.fast.Load(); return st != nil && len(st.chans) == 0 })
	if _, err := c.conn.WriteToUDP(frame, c.server); err != nil {
		t.Fatal(err)
	}
	if n, _, ok := readFrom(peer, buf, 300*time.Millisecond); ok {
		t.Errorf("peer got %d bytes over an expired channel", n)
	}
	if _, err := peer.WriteToUDPAddrPort([]byte("back"), relay); err != nil {
		t.Fatal(err)
	}
	n, _, ok := readFrom(c.conn, buf, 5*time.Second)
	if !ok || n < 20 || binary.BigEndian.Uint16(buf) != 0x0017 {
		t.Fatalf("client got %d bytes %x, want a Data indication", n, buf[:min(n, 4)])
	}
	waitFor(t, "permission expiry", func() bool { st := rc.fast.Load(); return st != nil && len(st.perms) == 0 })
	if _, err := peer.WriteToUDPAddrPort([]byte("late"), relay); err != nil {
		t.Fatal(err)
	}
	if n, _, ok := readFrom(c.conn, buf, 300*time.Millisecond); ok {
		t.Errorf("client got %d bytes after the permission expired", n)
	}
	waitStats(t, s, func(st Stats) bool {
		return st.FastToPeerPackets == 1 && st.ToPeerPackets == 1 && st.FastToClientPackets == 0 && st.ToClientPackets == 1 && st.NoPermissionPackets == 1
	})
}

// waitStats polls the stats until ok (a relaying goroutine counts a packet
// just after its write, so a reader may see it first), up to 10 s.
func waitStats(t *testing.T, s *Server, ok func(Stats) bool) {
	t.Helper()
	for range 500 {
		if ok(s.Stats()) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("stats %+v", s.Stats())
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestFastPathBandwidthCapBothWays: the per-allocation cap holds on the fast
// path in each direction.
func TestFastPathBandwidthCapBothWays(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBitrate = 64000 // 8 kB/s, burst 6000 bytes
	s := startServer(t, cfg)
	peer, peerAddr := udpPeer(t)
	c, relay := boundClient(t, s, peerAddr)
	frame := append([]byte{0x40, 0x00, 0x03, 0xe8}, make([]byte, 1000)...)
	for range 100 {
		if _, err := c.conn.WriteToUDP(frame, c.server); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.WriteToUDPAddrPort(frame[4:], relay); err != nil {
			t.Fatal(err)
		}
	}
	count := func(conn *net.UDPConn) int {
		got := 0
		buf := make([]byte, 2000)
		for {
			if _, _, ok := readFrom(conn, buf, time.Second); !ok {
				return got
			}
			got++
		}
	}
	toPeer, toClient := count(peer), count(c.conn)
	if toPeer == 0 || toPeer > 20 || toClient == 0 || toClient > 20 {
		t.Errorf("peer got %d, client got %d of 100 each: the cap did not hold", toPeer, toClient)
	}
	waitStats(t, s, func(st Stats) bool {
		return int(st.DroppedPackets)+toPeer+toClient == 200 && int(st.FastToPeerPackets) == toPeer && int(st.FastToClientPackets) == toClient
	})
}

// TestFastPathZeroAllocations runs the hot functions on a live allocation.
func TestFastPathZeroAllocations(t *testing.T) {
	s := startServer(t, testConfig())
	peer, peerAddr := udpPeer(t)
	c, relay := boundClient(t, s, peerAddr)
	rc := relayOf(t, s, relay)
	waitFor(t, "the binding", func() bool { st := rc.fast.Load(); return st != nil && len(st.chans) == 1 })
	from := clientAddr(c)
	frame := append([]byte{0x40, 0x00, 0, 172}, make([]byte, 172)...)
	send := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication), peerAttr(peerAddr),
		stun.RawAttribute{Type: stun.AttrData, Value: make([]byte, 172)}).Raw
	const runs = 100
	if a := testing.AllocsPerRun(runs, func() {
		if !rc.g.relayToPeer(frame, from) {
			t.Fatal("ChannelData not relayed")
		}
	}); a != 0 {
		t.Errorf("relayToPeer (ChannelData): %v allocations per packet", a)
	}
	if a := testing.AllocsPerRun(runs, func() {
		if !rc.g.relayToPeer(send, from) {
			t.Fatal("Send indication not relayed")
		}
	}); a != 0 {
		t.Errorf("relayToPeer (Send): %v allocations per packet", a)
	}
	if a := testing.AllocsPerRun(runs, func() {
		if rc.relayToClient(172, peerAddr) != relayed {
			t.Fatal("peer data not relayed")
		}
	}); a != 0 {
		t.Errorf("relayToClient: %v allocations per packet", a)
	}
	// AllocsPerRun runs each once more to warm up.
	if st := s.Stats(); st.FastToPeerPackets != 2*(runs+1) || st.FastToClientPackets != runs+1 {
		t.Errorf("stats %+v, want %d and %d fast packets", st, 2*(runs+1), runs+1)
	}
	// The packets did leave: the peer reads the first one.
	buf := make([]byte, 1600)
	if n, from, ok := readFrom(peer, buf, 5*time.Second); !ok || n != 172 || from != relay {
		t.Errorf("peer got %d bytes from %v (ok %v)", n, from, ok)
	}
}

func TestParseSend(t *testing.T) {
	build := func(attrs ...stun.Setter) []byte {
		return stun.MustBuild(append([]stun.Setter{stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication)}, attrs...)...).Raw
	}
	data := stun.RawAttribute{Type: stun.AttrData, Value: []byte("abc")}
	v4 := netip.MustParseAddrPort("192.0.2.7:5004")
	v6 := netip.MustParseAddrPort("[2001:db8::7]:5006")
	cases := []struct {
		name string
		b    []byte
		peer netip.AddrPort
		ok   bool
	}{
		{"v4", build(peerAttr(v4), data, stun.Fingerprint), v4, true},
		{"v6", build(peerAttr(v6), data), v6, true},
		{"no data", build(peerAttr(v4)), netip.AddrPort{}, false},
		{"no peer", build(data), netip.AddrPort{}, false},
		{"two peers", build(peerAttr(v4), peerAttr(v6), data), netip.AddrPort{}, false},
		{"truncated", build(peerAttr(v4), data)[:30], netip.AddrPort{}, false},
		{"short", []byte{0, 0x16, 0, 0}, netip.AddrPort{}, false},
	}
	for _, c := range cases {
		peer, got, ok := parseSend(c.b)
		if ok != c.ok || (ok && (peer != c.peer || string(got) != "abc")) {
			t.Errorf("%s: %v %q %v", c.name, peer, got, ok)
		}
	}
}

// FuzzParseSend: the allocation-free Send parser never panics, and what it
// accepts pion's decoder reads the same way.
func FuzzParseSend(f *testing.F) {
	f.Add(stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
		peerAttr(netip.MustParseAddrPort("192.0.2.7:5004")), stun.RawAttribute{Type: stun.AttrData, Value: []byte("abc")}).Raw)
	f.Add([]byte{0, 0x16, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		peer, data, ok := parseSend(b)
		if !ok {
			return
		}
		m := &stun.Message{Raw: append([]byte(nil), b...)}
		if m.Decode() != nil {
			return // parseSend is laxer about the header; the peer policy and permissions still apply
		}
		var x stun.XORMappedAddress
		if err := x.GetFromAs(m, stun.AttrXORPeerAddress); err != nil {
			return
		}
		ip, _ := netip.AddrFromSlice(x.IP)
		if got := netip.AddrPortFrom(ip.Unmap(), uint16(x.Port)); got != peer {
			t.Errorf("peer %v, pion reads %v", peer, got)
		}
		if d, err := m.Get(stun.AttrData); err != nil || !bytes.Equal(d, data) {
			t.Errorf("data %x, pion reads %x (%v)", data, d, err)
		}
	})
}
