package turn

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// tclient is a minimal TURN client speaking raw STUN over UDP, so tests see
// every error code the server sends.
type tclient struct {
	t            *testing.T
	conn         *net.UDPConn
	server       *net.UDPAddr
	user, pass   string
	realm, nonce string
}

func newClient(t *testing.T, s *Server, user, pass string) *tclient {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ap := s.UDPAddr()
	if ap.Addr().IsUnspecified() {
		ap = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port())
	}
	return &tclient{t: t, conn: conn, server: net.UDPAddrFromAddrPort(ap), user: user, pass: pass}
}

// xorPeer adds an XOR-PEER-ADDRESS.
type xorPeer struct{ stun.XORMappedAddress }

func (x xorPeer) AddTo(m *stun.Message) error { return x.AddToAs(m, stun.AttrXORPeerAddress) }

func peerAttr(ap netip.AddrPort) stun.Setter {
	return xorPeer{stun.XORMappedAddress{IP: ap.Addr().AsSlice(), Port: int(ap.Port())}}
}

func udpTransport() stun.Setter {
	return stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
}

func lifetime(d time.Duration) stun.Setter {
	v := make([]byte, 4)
	binary.BigEndian.PutUint32(v, uint32(d/time.Second))
	return stun.RawAttribute{Type: stun.AttrLifetime, Value: v}
}

func channel(n uint16) stun.Setter {
	return stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{byte(n >> 8), byte(n), 0, 0}}
}

// request sends an authenticated request (learning realm and nonce from a
// first 401 when needed) and returns the response and its error code (0
// for success).
func (c *tclient) request(method stun.Method, attrs ...stun.Setter) (*stun.Message, int) {
	c.t.Helper()
	for range 3 {
		setters := []stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}
		setters = append(setters, attrs...)
		if c.nonce != "" {
			setters = append(setters, stun.NewUsername(c.user), stun.NewRealm(c.realm), stun.NewNonce(c.nonce),
				stun.NewLongTermIntegrity(c.user, c.realm, c.pass))
		}
		setters = append(setters, stun.Fingerprint)
		res := c.roundTrip(stun.MustBuild(setters...))
		code := 0
		if res.Type.Class == stun.ClassErrorResponse {
			var ec stun.ErrorCodeAttribute
			if err := ec.GetFrom(res); err != nil {
				c.t.Fatalf("error response without ERROR-CODE: %v", res)
			}
			code = int(ec.Code)
		}
		if (code == 401 && c.nonce == "") || code == 438 {
			var realm stun.Realm
			var nonce stun.Nonce
			if realm.GetFrom(res) != nil || nonce.GetFrom(res) != nil {
				c.t.Fatalf("%d without realm or nonce", code)
			}
			c.realm, c.nonce = realm.String(), nonce.String()
			continue
		}
		return res, code
	}
	c.t.Fatal("no answer after learning the nonce")
	return nil, 0
}

func (c *tclient) roundTrip(m *stun.Message) *stun.Message {
	c.t.Helper()
	if _, err := c.conn.WriteToUDP(m.Raw, c.server); err != nil {
		c.t.Fatal(err)
	}
	buf := make([]byte, 1600)
	for range 10 {
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.conn.Read(buf)
		if err != nil {
			c.t.Fatalf("no answer to %v: %v", m.Type, err)
		}
		res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if res.Decode() == nil && res.TransactionID == m.TransactionID {
			return res
		}
	}
	c.t.Fatal("no matching answer")
	return nil
}

// allocate makes an allocation and returns its relayed address, or the error code.
func (c *tclient) allocate(attrs ...stun.Setter) (netip.AddrPort, int) {
	c.t.Helper()
	res, code := c.request(stun.MethodAllocate, append([]stun.Setter{udpTransport()}, attrs...)...)
	if code != 0 {
		return netip.AddrPort{}, code
	}
	if err := stun.NewLongTermIntegrity(c.user, c.realm, c.pass).Check(res); err != nil {
		c.t.Errorf("allocate success response integrity: %v", err)
	}
	var relay stun.XORMappedAddress
	if err := relay.GetFromAs(res, stun.AttrXORRelayedAddress); err != nil {
		c.t.Fatalf("no relayed address: %v", err)
	}
	ip, _ := netip.AddrFromSlice(relay.IP)
	return netip.AddrPortFrom(ip.Unmap(), uint16(relay.Port)), 0
}

// lifetimeOf returns the LIFETIME of a response.
func lifetimeOf(t *testing.T, m *stun.Message) time.Duration {
	t.Helper()
	v, err := m.Get(stun.AttrLifetime)
	if err != nil || len(v) != 4 {
		t.Fatalf("no lifetime: %v", err)
	}
	return time.Duration(binary.BigEndian.Uint32(v)) * time.Second
}
