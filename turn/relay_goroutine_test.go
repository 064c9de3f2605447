package turn

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// TestFastPathOnGoroutineRelays: with relay sockets read by pion's
// goroutines (the path off Linux), the fast path still relays both ways.
func TestFastPathOnGoroutineRelays(t *testing.T) {
	cfg := testConfig()
	cfg.GoroutineRelays = true
	s := startServer(t, cfg)
	if s.loop != nil {
		t.Fatal("epoll loop started")
	}
	peer, peerAddr := udpPeer(t)
	c, relay := boundClient(t, s, peerAddr)
	if rc := relayOf(t, s, relay); rc.raw != nil || rc.udp == nil {
		t.Fatal("relay is not a net.UDPConn")
	}
	const count = 20
	buf := make([]byte, 1600)
	for i := range count {
		if _, err := peer.WriteToUDPAddrPort(bytes.Repeat([]byte{byte(i)}, 100), relay); err != nil {
			t.Fatal(err)
		}
		n, _, ok := readFrom(c.conn, buf, 5*time.Second)
		if !ok || n != 104 || binary.BigEndian.Uint16(buf) != 0x4000 || !bytes.Equal(buf[4:104], bytes.Repeat([]byte{byte(i)}, 100)) {
			t.Fatalf("client packet %d: %d bytes (ok %v)", i, n, ok)
		}
		frame := append([]byte{0x40, 0x00, 0, 100}, bytes.Repeat([]byte{byte(i)}, 100)...)
		if _, err := c.conn.WriteToUDP(frame, c.server); err != nil {
			t.Fatal(err)
		}
		if n, from, ok := readFrom(peer, buf, 5*time.Second); !ok || n != 100 || from != relay || buf[0] != byte(i) {
			t.Fatalf("peer packet %d: %d bytes from %v (ok %v)", i, n, from, ok)
		}
	}
	waitStats(t, s, func(st Stats) bool { return st.FastToClientPackets == count && st.FastToPeerPackets == count })
}
