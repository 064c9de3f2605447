//go:build linux

package turn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestRelaySocketsClosedOnDeallocationAndExpiry: raw relay sockets leave
// the epoll loop and are closed when the client deallocates (Refresh with
// LIFETIME 0) and when the allocation expires.
func TestRelaySocketsClosedOnDeallocationAndExpiry(t *testing.T) {
	s := startServer(t, epollConfig())
	if s.loop == nil {
		t.Fatal("no epoll loop on Linux")
	}
	const n = 4
	clients := make([]*tclient, n)
	for i := range clients {
		clients[i] = restClient(t, s, "s3cret", "@alice:gw.test", time.Hour)
	}
	base := openFDs(t)
	for i, c := range clients {
		life := time.Hour
		if i >= n/2 {
			life = 2 * time.Second // these expire
		}
		relay, code := c.allocate(lifetime(life))
		if code != 0 {
			t.Fatalf("allocate: %d", code)
		}
		if rc := relayOf(t, s, relay); rc.raw == nil {
			t.Fatal("relay is not on the epoll loop")
		}
	}
	if got := openFDs(t); got != base+n {
		t.Fatalf("%d descriptors after %d allocations, want %d", got, n, base+n)
	}
	if got := s.loop.size(); got != n {
		t.Fatalf("loop serves %d relays, want %d", got, n)
	}
	for _, c := range clients[:n/2] {
		if _, code := c.request(stun.MethodRefresh, lifetime(0)); code != 0 {
			t.Fatalf("refresh 0: %d", code)
		}
	}
	// Deallocation is synchronous in pion: the sockets are closed already.
	if got := openFDs(t); got != base+n/2 {
		t.Errorf("%d descriptors after deallocating %d, want %d", got, n/2, base+n/2)
	}
	waitFor(t, "expiry", func() bool { return s.Allocations() == 0 })
	waitFor(t, "descriptors back to the baseline", func() bool { return openFDs(t) == base })
	if got := s.loop.size(); got != 0 {
		t.Errorf("loop still serves %d relays", got)
	}
}

// TestRawRelayCloseIsIdempotentAndEndsReadFrom: Close closes the socket
// once, pion's ReadFrom returns net.ErrClosed (so pion drops the
// allocation), later sends fail.
func TestRawRelayCloseIsIdempotentAndEndsReadFrom(t *testing.T) {
	s := startServer(t, epollConfig())
	_, peerAddr := udpPeer(t)
	_, relay := boundClient(t, s, peerAddr)
	rc := relayOf(t, s, relay)
	if rc.raw == nil {
		t.Fatal("relay is not on the epoll loop")
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("first close: %v", err)
	}
	if err := rc.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second close: %v, want net.ErrClosed", err)
	}
	if _, _, err := rc.ReadFrom(make([]byte, 1600)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrom after Close: %v", err)
	}
	if _, err := rc.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(peerAddr)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteTo after Close: %v", err)
	}
	waitFor(t, "pion to drop the allocation", func() bool { return s.Allocations() == 0 })
}

// TestRawRelayWriteToReachesPeer: pion's writes (Data for Send indications
// it handles itself) leave from the relayed address.
func TestRawRelayWriteToReachesPeer(t *testing.T) {
	s := startServer(t, epollConfig())
	peer, peerAddr := udpPeer(t)
	_, relay := boundClient(t, s, peerAddr)
	rc := relayOf(t, s, relay)
	if n, err := rc.WriteTo([]byte("from pion"), net.UDPAddrFromAddrPort(peerAddr)); err != nil || n != 9 {
		t.Fatalf("WriteTo: %d, %v", n, err)
	}
	buf := make([]byte, 1600)
	if n, from, ok := readFrom(peer, buf, 5*time.Second); !ok || from != relay || string(buf[:n]) != "from pion" {
		t.Errorf("peer got %q from %v (ok %v)", buf[:n], from, ok)
	}
}

// TestDataIndicationsThroughEpollLoop: a permitted peer without a channel
// reaches the client as pion's Data indications, many more than the slow
// queue holds, one after the other, in order and intact.
func TestDataIndicationsThroughEpollLoop(t *testing.T) {
	s := startServer(t, epollConfig())
	peer, peerAddr := udpPeer(t)
	c := restClient(t, s, "s3cret", "@alice:gw.test", time.Hour)
	relay, code := c.allocate()
	if code != 0 {
		t.Fatal(code)
	}
	if rc := relayOf(t, s, relay); rc.raw == nil {
		t.Fatal("relay is not on the epoll loop")
	}
	if _, code := c.request(stun.MethodCreatePermission, peerAttr(peerAddr)); code != 0 {
		t.Fatal(code)
	}
	buf := make([]byte, 1600)
	const count = 5 * slowBufs
	for i := range count {
		payload := bytes.Repeat([]byte{byte(i)}, 100+i)
		if _, err := peer.WriteToUDPAddrPort(payload, relay); err != nil {
			t.Fatal(err)
		}
		n, _, ok := readFrom(c.conn, buf, 5*time.Second)
		if !ok {
			t.Fatalf("packet %d: no Data indication", i)
		}
		m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if err := m.Decode(); err != nil || m.Type != stun.NewType(stun.MethodData, stun.ClassIndication) {
			t.Fatalf("packet %d: %v %v", i, m.Type, err)
		}
		var from stun.XORMappedAddress
		data, err := m.Get(stun.AttrData)
		if err != nil || from.GetFromAs(m, stun.AttrXORPeerAddress) != nil || from.Port != int(peerAddr.Port()) || !bytes.Equal(data, payload) {
			t.Fatalf("packet %d: data %d bytes from %v (%v)", i, len(data), from, err)
		}
	}
	waitStats(t, s, func(st Stats) bool { return st.ToClientPackets == count && st.FastToClientPackets == 0 })
}

// TestEpollLoopServesManyAllocationsWithoutLoss: one loop reads the relay
// sockets of many allocations; bursts to every client at once all arrive
// as ChannelData, and the clients' answers all reach the peer.
func TestEpollLoopServesManyAllocationsWithoutLoss(t *testing.T) {
	for _, thread := range []bool{false, true} {
		t.Run(map[bool]string{false: "netpoller", true: "locked_thread"}[thread], func(t *testing.T) {
			defer func(old bool) { relayLoopThread = old }(relayLoopThread)
			relayLoopThread = thread
			testManyAllocations(t)
		})
	}
}

func testManyAllocations(t *testing.T) {
	s := startServer(t, epollConfig())
	peer, peerAddr := udpPeer(t)
	_ = peer.SetReadBuffer(4 << 20)
	const allocs, burst = 100, 10
	clients := make([]*tclient, allocs)
	relays := make([]netip.AddrPort, allocs)
	for i := range clients {
		clients[i], relays[i] = boundClient(t, s, peerAddr)
	}
	if got := s.loop.size(); got != allocs {
		t.Fatalf("one loop serves %d relays, want %d", got, allocs)
	}
	for k := range burst {
		for i := range clients {
			payload := bytes.Repeat([]byte{byte(k)}, 160)
			payload[0] = byte(i)
			if _, err := peer.WriteToUDPAddrPort(payload, relays[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	buf := make([]byte, 1600)
	for i, c := range clients {
		for k := range burst {
			n, _, ok := readFrom(c.conn, buf, 5*time.Second)
			if !ok || n != 164 || binary.BigEndian.Uint16(buf) != 0x4000 || binary.BigEndian.Uint16(buf[2:]) != 160 ||
				buf[4] != byte(i) || !bytes.Equal(buf[5:164], bytes.Repeat([]byte{byte(k)}, 159)) {
				t.Fatalf("client %d packet %d: %d bytes %x (ok %v)", i, k, n, buf[:min(n, 8)], ok)
			}
		}
	}
	for k := range burst {
		for _, c := range clients {
			frame := append([]byte{0x40, 0x00, 0, 160}, bytes.Repeat([]byte{byte(k)}, 160)...)
			if _, err := c.conn.WriteToUDP(frame, c.server); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := map[netip.AddrPort]int{} // relay -> packets, each checked intact
	for range allocs * burst {
		n, from, ok := readFrom(peer, buf, 5*time.Second)
		if !ok || n != 160 || !bytes.Equal(buf[1:160], buf[:159]) {
			t.Fatalf("peer got %d bytes from %v (ok %v)", n, from, ok)
		}
		got[from]++
	}
	for _, r := range relays {
		if got[r] != burst {
			t.Errorf("relay %v: the peer got %d packets, want %d", r, got[r], burst)
		}
	}
	const total = allocs * burst
	waitStats(t, s, func(st Stats) bool {
		return st.FastToClientPackets == total && st.FastToPeerPackets == total && st.DroppedPackets == 0
	})
}

// TestEpollRelayZeroAllocationsPerPacket relays packets end to end (peer
// -> epoll loop -> client, client -> listener -> raw socket -> peer) and
// counts the process's allocations per round trip.
func TestEpollRelayZeroAllocationsPerPacket(t *testing.T) {
	s := startServer(t, epollConfig())
	peer, peerAddr := udpPeer(t)
	c, relay := boundClient(t, s, peerAddr)
	if rc := relayOf(t, s, relay); rc.raw == nil {
		t.Fatal("relay is not on the epoll loop")
	}
	deadline := time.Now().Add(30 * time.Second)
	_ = peer.SetReadDeadline(deadline)
	_ = c.conn.SetReadDeadline(deadline)
	payload := make([]byte, 172)
	frame := append([]byte{0x40, 0x00, 0, 172}, payload...)
	buf := make([]byte, 1600)
	server := c.server.AddrPort()
	const runs = 200
	if a := testing.AllocsPerRun(runs, func() {
		if _, err := peer.WriteToUDPAddrPort(payload, relay); err != nil {
			t.Fatal(err)
		}
		if n, _, err := c.conn.ReadFromUDPAddrPort(buf); err != nil || n != 176 {
			t.Fatalf("client read %d, %v", n, err)
		}
		if _, err := c.conn.WriteToUDPAddrPort(frame, server); err != nil {
			t.Fatal(err)
		}
		if n, _, err := peer.ReadFromUDPAddrPort(buf); err != nil || n != 172 {
			t.Fatalf("peer read %d, %v", n, err)
		}
	}); a != 0 {
		t.Errorf("%v allocations per relayed round trip", a)
	}
	if st := s.Stats(); st.FastToClientPackets != runs+1 || st.FastToPeerPackets != runs+1 {
		t.Errorf("stats %+v, want %d fast packets each way", st, runs+1)
	}
}

// epollConfig is testConfig, whose relays the epoll loop serves by default.
func epollConfig() Config { return testConfig() }

// TestEpollLoopDrainsMoreReadySocketsThanOneBatch: more relay sockets
// become ready while the loop cannot serve them than one epoll_wait
// returns (epollBatch), as when a load generator's clients all start
// sending after a long set-up; the loop must drain them batch by batch and
// go back to the netpoller re-armed: every datagram of two rounds arrives.
func TestEpollLoopDrainsMoreReadySocketsThanOneBatch(t *testing.T) {
	const allocs = 2*epollBatch + 20
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 3*allocs {
		t.Skipf("needs %d file descriptors (RLIMIT_NOFILE %d, %v)", 3*allocs, lim.Cur, err)
	}
	s := startServer(t, epollConfig())
	peer, peerAddr := udpPeer(t)
	_ = peer.SetWriteBuffer(4 << 20)
	clients := make([]*tclient, allocs)
	relays := make([]netip.AddrPort, allocs)
	for i := range clients {
		clients[i], relays[i] = boundClient(t, s, peerAddr)
	}
	if got := s.loop.size(); got != allocs {
		t.Fatalf("the loop serves %d relays, want %d", got, allocs)
	}
	buf := make([]byte, 1600)
	for round := range 2 {
		// Hold the loop out of serve while every relay socket gets a
		// datagram: afterwards all of them are ready at once.
		s.loop.mu.Lock()
		for i, r := range relays {
			payload := []byte{byte(round), byte(i), byte(i >> 8), 0xAB}
			if _, err := peer.WriteToUDPAddrPort(payload, r); err != nil {
				s.loop.mu.Unlock()
				t.Fatal(err)
			}
		}
		s.loop.mu.Unlock()
		for i, c := range clients {
			n, _, ok := readFrom(c.conn, buf, 10*time.Second)
			if !ok || n != 8 || binary.BigEndian.Uint16(buf) != 0x4000 || binary.BigEndian.Uint16(buf[2:]) != 4 ||
				!bytes.Equal(buf[4:8], []byte{byte(round), byte(i), byte(i >> 8), 0xAB}) {
				t.Fatalf("round %d, client %d: %d bytes %x (ok %v)", round, i, n, buf[:min(n, 8)], ok)
			}
		}
	}
	waitStats(t, s, func(st Stats) bool { return st.FastToClientPackets == 2*allocs && st.DroppedPackets == 0 })
}
