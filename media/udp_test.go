package media

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/codecs"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// Test port range, kept out of the kernel's ephemeral range.
const testPortMin, testPortMax = 21000, 21999

func newTestPorts(t *testing.T) *PortAllocator {
	t.Helper()
	p, err := NewPortAllocator(testPortMin, testPortMax)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newSession(t *testing.T, ports *PortAllocator) *UDPSession {
	t.Helper()
	s, err := NewUDPSession(UDPConfig{ListenIP: loopback, Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Two UDP sessions on loopback exchange a 440 Hz and a 1000 Hz tone through
// each G.711 law; Goertzel checks what arrives.
func TestUDPToneExchange(t *testing.T) {
	ports := newTestPorts(t)
	for _, c := range []codecs.Codec{codecs.PCMU, codecs.PCMA} {
		t.Run(c.Name, func(t *testing.T) {
			sa, sb := newSession(t, ports), newSession(t, ports)
			sa.SetRemote(sb.AdvertisedAddr())
			sb.SetRemote(sa.AdvertisedAddr())
			ea, err := NewRTPEndpoint(RTPConfig{Codec: c, Reader: sa, Writer: sa})
			if err != nil {
				t.Fatal(err)
			}
			eb, err := NewRTPEndpoint(RTPConfig{Codec: c, Reader: sb, Writer: sb})
			if err != nil {
				t.Fatal(err)
			}
			atB, atA := NewToneDetector(440, 8000), NewToneDetector(1000, 8000)
			_ = ea.SetSink(8000, atA)
			_ = eb.SetSink(8000, atB)
			wa, _ := ea.Writer(8000)
			wb, _ := eb.Writer(8000)
			ga, gb := NewToneGenerator(440, 8000), NewToneGenerator(1000, 8000)
			frame := make([]int16, 160)
			for range 50 { // 1 s, paced lightly so the socket buffers never overflow
				ga.Fill(frame)
				if err := wa.WritePCM(frame); err != nil {
					t.Fatal(err)
				}
				gb.Fill(frame)
				if err := wb.WritePCM(frame); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Millisecond)
			}
			deadline := time.Now().Add(3 * time.Second)
			for (atA.Blocks() < 10 || atB.Blocks() < 10) && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if atB.Blocks() != 10 || atB.Hits() != 10 {
				t.Errorf("440 Hz at B: %d of %d blocks (last fraction %.3f)", atB.Hits(), atB.Blocks(), atB.Last())
			}
			if atA.Blocks() != 10 || atA.Hits() != 10 {
				t.Errorf("1000 Hz at A: %d of %d blocks (last fraction %.3f)", atA.Hits(), atA.Blocks(), atA.Last())
			}
			if err := ea.Close(); err != nil {
				t.Fatal(err)
			}
			if err := eb.Close(); err != nil {
				t.Fatal(err)
			}
			sa2, sb2 := ea.Stats(), eb.Stats()
			if sa2.PacketsOut != 50 || sb2.PacketsIn != 50 || sb2.Lost != 0 || sa2.PacketsIn != 50 {
				t.Errorf("counters A %+v B %+v", sa2, sb2)
			}
			if _, latched := sa.Remote(); !latched {
				t.Error("A did not latch onto B")
			}
		})
	}
}

func TestUDPSymmetricLatching(t *testing.T) {
	s := newSession(t, nil)
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		return c
	}
	peer, intruder, other := listen(), listen(), listen()
	addrOf := func(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }
	send := func(c *net.UDPConn, p []byte) {
		t.Helper()
		if _, err := c.WriteToUDPAddrPort(p, s.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, MaxPacketSize)
	readID := func() byte {
		t.Helper()
		n, err := s.ReadPacket(buf)
		if err != nil {
			t.Fatal(err)
		}
		return buf[n-1]
	}

	if err := s.WritePacket([]byte{1}); !errors.Is(err, ErrNoRemote) {
		t.Fatalf("write with no remote: %v", err)
	}
	// SDP says "other"; the real media comes from "peer" (NAT).
	s.SetRemote(addrOf(other))
	if a, latched := s.Remote(); a != addrOf(other) || latched {
		t.Fatalf("remote %v latched %v", a, latched)
	}
	send(peer, []byte("not rtp"))
	send(peer, rtpPacket(0, 1, 0, 1, []byte{1}))
	if id := readID(); id != 1 {
		t.Fatalf("first packet id %d", id)
	}
	if a, latched := s.Remote(); a != addrOf(peer) || !latched {
		t.Fatalf("after first packet: remote %v latched %v", a, latched)
	}
	// Our packets now go to peer.
	if err := s.WritePacket([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 100)
	n, err := peer.Read(got)
	if err != nil || string(got[:n]) != "hello" {
		t.Fatalf("peer read %q %v", got[:n], err)
	}
	// An intruder's packets are dropped.
	send(intruder, rtpPacket(0, 2, 160, 1, []byte{66}))
	send(peer, rtpPacket(0, 2, 160, 1, []byte{2}))
	if id := readID(); id != 2 {
		t.Fatalf("read id %d, want the peer's 2", id)
	}
	if s.Foreign() != 1 || s.NotRTP() != 1 {
		t.Errorf("foreign %d notRTP %d", s.Foreign(), s.NotRTP())
	}
	// A re-INVITE resets the latch: the next source wins.
	s.SetRemote(addrOf(other))
	send(intruder, rtpPacket(0, 3, 320, 1, []byte{3}))
	if id := readID(); id != 3 {
		t.Fatalf("read id %d after SetRemote", id)
	}
	if a, latched := s.Remote(); a != addrOf(intruder) || !latched {
		t.Errorf("after SetRemote: remote %v latched %v", a, latched)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := s.ReadPacket(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
}

func TestPortAllocator(t *testing.T) {
	if _, err := NewPortAllocator(30000, 30000); err == nil {
		t.Error("a range without a pair was accepted")
	}
	if _, err := NewPortAllocator(80, 100); err == nil {
		t.Error("privileged ports were accepted")
	}
	// 21101..21108: even ports 21102, 21104, 21106 (21108 has no 21109).
	p, err := NewPortAllocator(21101, 21108)
	if err != nil {
		t.Fatal(err)
	}
	if p.Size() != 3 {
		t.Fatalf("size %d, want 3", p.Size())
	}
	var sessions []*UDPSession
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			s, err := NewUDPSession(UDPConfig{ListenIP: loopback, Ports: p})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			sessions = append(sessions, s)
			mu.Unlock()
		})
	}
	wg.Wait()
	seen := map[uint16]bool{}
	for _, s := range sessions {
		port := s.LocalAddr().Port()
		if port%2 != 0 || port < 21102 || port > 21106 || seen[port] {
			t.Errorf("bad or repeated port %d", port)
		}
		seen[port] = true
	}
	if _, err := NewUDPSession(UDPConfig{ListenIP: loopback, Ports: p}); !errors.Is(err, ErrNoPorts) {
		t.Errorf("fourth session: %v, want ErrNoPorts", err)
	}
	freed := sessions[0].LocalAddr().Port()
	_ = sessions[0].Close()
	s, err := NewUDPSession(UDPConfig{ListenIP: loopback, Ports: p})
	if err != nil {
		t.Fatal(err)
	}
	if s.LocalAddr().Port() != freed || p.InUse() != 3 {
		t.Errorf("reused port %d (freed %d), in use %d", s.LocalAddr().Port(), freed, p.InUse())
	}
	for _, s := range append(sessions[1:], s) {
		_ = s.Close()
	}
	if p.InUse() != 0 {
		t.Errorf("in use after closing all: %d", p.InUse())
	}
	// A port held by someone else is skipped.
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 21202})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p2, _ := NewPortAllocator(21202, 21205)
	s2, err := NewUDPSession(UDPConfig{ListenIP: loopback, Ports: p2})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.LocalAddr().Port() != 21204 {
		t.Errorf("got port %d, want 21204 past the busy one", s2.LocalAddr().Port())
	}
}

func TestUDPConfig(t *testing.T) {
	if _, err := NewUDPSession(UDPConfig{}); err == nil {
		t.Error("listening on 0.0.0.0 without AdvertiseIP was accepted")
	}
	adv := netip.MustParseAddr("192.0.2.10")
	s, err := NewUDPSession(UDPConfig{ListenIP: loopback, AdvertiseIP: adv})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if a := s.AdvertisedAddr(); a.Addr() != adv || a.Port() != s.LocalAddr().Port() {
		t.Errorf("advertised %v, local %v", a, s.LocalAddr())
	}
}

// A packet through the UDP socket pair allocates nothing.
func TestUDPNoAllocs(t *testing.T) {
	a, b := newSession(t, nil), newSession(t, nil)
	a.SetRemote(b.LocalAddr())
	b.SetRemote(a.LocalAddr())
	pkt := rtpPacket(0, 1, 0, 1, make([]byte, 160))
	buf := make([]byte, MaxPacketSize)
	// Latch first: latching allocates once.
	_ = a.WritePacket(pkt)
	_, _ = b.ReadPacket(buf)
	if n := testing.AllocsPerRun(100, func() {
		if err := a.WritePacket(pkt); err != nil {
			t.Fatal(err)
		}
		if _, err := b.ReadPacket(buf); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%.1f allocations per packet, want 0", n)
	}
}
