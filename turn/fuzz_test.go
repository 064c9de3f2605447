package turn

import (
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pturn "github.com/pion/turn/v5"
)

// feedConn is a PacketConn whose reads come from a channel, so a fuzz
// target can push bytes into the server's real read loop and know when the
// previous packet has been handled (the loop asks for the next one).
type feedConn struct {
	in     chan []byte
	ready  chan struct{}
	closed chan struct{}
}

var feedFrom = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

func (f *feedConn) ReadFrom(p []byte) (int, net.Addr, error) {
	f.ready <- struct{}{}
	select {
	case b := <-f.in:
		return copy(p, b), feedFrom, nil
	case <-f.closed:
		return 0, nil, net.ErrClosed
	}
}

func (f *feedConn) WriteTo(p []byte, _ net.Addr) (int, error) { return len(p), nil }
func (f *feedConn) Close() error {
	select {
	case <-f.closed:
	default:
		close(f.closed)
	}
	return nil
}
func (f *feedConn) LocalAddr() net.Addr              { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3478} }
func (f *feedConn) SetDeadline(time.Time) error      { return nil }
func (f *feedConn) SetReadDeadline(time.Time) error  { return nil }
func (f *feedConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzServerInput feeds arbitrary datagrams to the server's entry point:
// the guard, then pion's STUN/TURN/ChannelData handling, with REST
// credentials, quotas and the peer policy on. It must never panic or hang.
func FuzzServerInput(f *testing.F) {
	now := time.Unix(2_000_000_000, 0)
	name, pass := RESTCredentials("s3cret", "@alice:gw.test", time.Hour, now)
	auth := []stun.Setter{stun.NewUsername(name), stun.NewRealm("gw.test"), stun.NewNonce("nonce"),
		stun.NewLongTermIntegrity(name, "gw.test", pass), stun.Fingerprint}
	build := func(method stun.Method, class stun.MessageClass, attrs ...stun.Setter) []byte {
		setters := append([]stun.Setter{stun.TransactionID, stun.NewType(method, class)}, attrs...)
		return stun.MustBuild(setters...).Raw
	}
	peer := peerAttr(netip.MustParseAddrPort("192.0.2.1:5000"))
	f.Add(build(stun.MethodAllocate, stun.ClassRequest, udpTransport()))
	f.Add(build(stun.MethodAllocate, stun.ClassRequest, append([]stun.Setter{udpTransport(), lifetime(3 * time.Hour)}, auth...)...))
	f.Add(build(stun.MethodAllocate, stun.ClassRequest, append([]stun.Setter{udpTransport(),
		stun.RawAttribute{Type: stun.AttrReservationToken, Value: []byte("abcdefgh")}}, auth...)...))
	f.Add(build(stun.MethodCreatePermission, stun.ClassRequest, append([]stun.Setter{peer}, auth...)...))
	f.Add(build(stun.MethodChannelBind, stun.ClassRequest, append([]stun.Setter{channel(0x4000), peerAttr(netip.MustParseAddrPort("10.0.0.1:1"))}, auth...)...))
	f.Add(build(stun.MethodRefresh, stun.ClassRequest, append([]stun.Setter{lifetime(0)}, auth...)...))
	f.Add(build(stun.MethodSend, stun.ClassIndication, peer, stun.RawAttribute{Type: stun.AttrData, Value: []byte("hi")}))
	f.Add(build(stun.MethodBinding, stun.ClassRequest))
	f.Add([]byte{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4})
	f.Add([]byte{0x00, 0x03, 0xff, 0xff, 0x21, 0x12, 0xa4, 0x42})
	f.Add([]byte{})

	s, err := newServer(Config{Realm: "gw.test", Secret: "s3cret", ListenIP: loopback, UserQuota: 2, TotalQuota: 5,
		MaxBitrate: 1_000_000, RelayPortMin: 62000, RelayPortMax: 62999, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	feed := &feedConn{in: make(chan []byte), ready: make(chan struct{}, 1), closed: make(chan struct{})}
	s.udp, err = pturn.NewServer(s.serverConfig([]pturn.PacketConnConfig{s.packetConnConfig(feed)}))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close() })
	<-feed.ready // the read loop is waiting for its first packet
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1500 {
			return
		}
		select {
		case feed.in <- data:
		case <-time.After(10 * time.Second):
			t.Fatalf("the server is not reading\n%s", stacks())
		}
		select {
		case <-feed.ready:
		case <-time.After(10 * time.Second):
			t.Fatalf("the server did not come back for the next packet\n%s", stacks())
		}
	})
}

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

func TestRewriteResigns(t *testing.T) {
	name, realm, pass := "u", "r", "p"
	key := longTermKey(name, realm, pass)
	m := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udpTransport(),
		lifetime(2*time.Hour), stun.RawAttribute{Type: stun.AttrReservationToken, Value: []byte("abcdefgh")},
		stun.NewUsername(name), stun.NewRealm(realm), stun.NewLongTermIntegrity(name, realm, pass), stun.Fingerprint)
	raw := append([]byte(nil), m.Raw...)
	rewrite(raw, key, 600, true)
	got := &stun.Message{Raw: raw}
	if err := got.Decode(); err != nil {
		t.Fatal(err)
	}
	if err := stun.MessageIntegrity(key).Check(got); err != nil {
		t.Errorf("integrity after rewrite: %v", err)
	}
	if err := stun.Fingerprint.Check(got); err != nil {
		t.Errorf("fingerprint after rewrite: %v", err)
	}
	if lifetimeOf(t, got) != 10*time.Minute || got.Contains(stun.AttrReservationToken) {
		t.Errorf("rewrite did not apply: %v", got)
	}
	// Nothing to change: the message stays byte for byte.
	same := append([]byte(nil), m.Raw...)
	rewrite(same, key, 3*3600, false)
	if string(same) != string(m.Raw) {
		t.Error("rewrite changed a message within limits")
	}
}
