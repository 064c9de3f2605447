package turn

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // MESSAGE-INTEGRITY is HMAC-SHA1 (RFC 8489 section 14.5).
	"encoding/binary"
	"hash/crc32"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/pion/stun/v4"
)

// guardConn sits between a listener socket and pion's read loop. It lets
// ChannelData and indications through untouched and checks every
// authenticated request before pion sees it, answering with the codes
// pion does not give: 401 for wrong or expired credentials (pion says 400),
// 441 for another user's allocation, 403 for denied peers (pion says 401 on
// ChannelBind), 486/508 for the user/total quotas, 442 for TCP relays. It
// also caps requested lifetimes at Config.MaxLifetime.
type guardConn struct {
	net.PacketConn
	s    *Server
	done chan struct{} // closed when reading fails (the connection ended); may be nil
	once sync.Once

	// tokens are the RESERVATION-TOKENs this listener handed out (EVEN-PORT):
	// pion keeps reservations per listener, and SO_REUSEPORT may send the
	// client's next Allocate to another one.
	tokensMu sync.Mutex
	tokens   map[string]time.Time

	// udp is the listener socket when it is a UDP socket: then the fast
	// path (fastpath.go) relays ChannelData and Send indications of the
	// allocations in fast, by client address (unmapped), before pion.
	udp    *net.UDPConn
	fastMu sync.RWMutex
	fast   map[netip.AddrPort]*relayConn

	// rc and v6 let the relay side send to clients without waiting
	// (clientsend_linux.go); rc is nil where that is not available.
	rc syscall.RawConn
	v6 bool // the listener is an AF_INET6 socket
}

// WriteTo sends a packet, noting reservation tokens in Allocate answers.
func (g *guardConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if len(b) >= 20 && b[0] == 0x01 && b[1] == 0x03 { // Allocate success response
		g.noteToken(b)
	}
	return g.PacketConn.WriteTo(b, addr)
}

func (g *guardConn) noteToken(b []byte) {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil {
		return
	}
	tok, err := m.Get(stun.AttrReservationToken)
	if err != nil {
		return
	}
	now := time.Now()
	g.tokensMu.Lock()
	defer g.tokensMu.Unlock()
	if g.tokens == nil {
		g.tokens = map[string]time.Time{}
	}
	for k, t := range g.tokens {
		if now.Sub(t) > time.Minute {
			delete(g.tokens, k)
		}
	}
	g.tokens[string(tok)] = now
}

// knowsToken reports whether this listener issued a reservation token.
func (g *guardConn) knowsToken(tok []byte) bool {
	g.tokensMu.Lock()
	defer g.tokensMu.Unlock()
	_, ok := g.tokens[string(tok)]
	return ok
}

// ReadFrom returns the next packet pion should handle.
func (g *guardConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if g.udp != nil {
		return g.readUDP(p)
	}
	for {
		n, addr, err := g.PacketConn.ReadFrom(p)
		if err != nil && g.done != nil {
			g.once.Do(func() { close(g.done) })
		}
		if err != nil || g.s.admit(g, p[:n], addr) {
			return n, addr, err
		}
	}
}

// readUDP is ReadFrom on a UDP listener: data for known channel bindings
// and permissions is relayed here without allocating; only the rest gets a
// net.Addr and goes to pion.
func (g *guardConn) readUDP(p []byte) (int, net.Addr, error) {
	for {
		n, ap, err := g.udp.ReadFromUDPAddrPort(p)
		if err != nil {
			return n, nil, err
		}
		if n < len(p) && g.relayToPeer(p[:n], unmap(ap)) {
			continue
		}
		addr := net.UDPAddrFromAddrPort(ap)
		if g.s.admit(g, p[:n], addr) {
			return n, addr, nil
		}
	}
}

// stunRequest reports whether b starts like a STUN request other than
// Binding: the two top bits zero, class bits zero, the magic cookie.
func stunRequest(b []byte) bool {
	if len(b) < 20 || b[0]&0xC0 != 0 || binary.BigEndian.Uint32(b[4:8]) != 0x2112A442 {
		return false
	}
	t := binary.BigEndian.Uint16(b[0:2])
	const classMask = 0x0110
	return t&classMask == 0 && t != 0x0001
}

// admit inspects one packet; false means it was answered (or must be
// dropped) here and pion must not see it.
func (s *Server) admit(conn *guardConn, b []byte, addr net.Addr) bool {
	if !stunRequest(b) {
		return true // ChannelData, indications, Binding: the hot path stays untouched
	}
	m := &stun.Message{Raw: append(make([]byte, 0, len(b)), b...)}
	if m.Decode() != nil || !m.Contains(stun.AttrMessageIntegrity) {
		return true // pion answers 401 with a nonce, or drops garbage
	}
	var user stun.Username
	var realm stun.Realm
	var nonce stun.Nonce
	if user.GetFrom(m) != nil || realm.GetFrom(m) != nil || nonce.GetFrom(m) != nil {
		return true // pion answers 400
	}
	key, quotaUser, why := s.auth.key(user.String(), realm.String())
	if why == authOK && stun.MessageIntegrity(key).Check(m) != nil {
		why = authBadPassword
	}
	if why != authOK {
		s.refuse(conn, addr, m, stun.CodeUnauthorized, nil, &nonce, "auth", string(why))
		return false
	}
	local := conn.LocalAddr()
	owner, hasAlloc := s.track.owner(addr, local)
	if hasAlloc && owner != user.String() {
		s.refuse(conn, addr, m, stun.CodeWrongCredentials, key, nil, "auth", "wrong_credentials")
		return false
	}
	switch m.Type.Method {
	case stun.MethodAllocate:
		if hasAlloc {
			return true // a retransmission or a 437, pion's call
		}
		if v, err := m.Get(stun.AttrRequestedTransport); err == nil && len(v) > 0 && v[0] != 17 {
			s.refuse(conn, addr, m, stun.CodeUnsupportedTransProto, key, nil, "", "")
			return false
		}
		userOK, totalOK := s.track.admits(quotaUser, s.cfg.UserQuota, s.cfg.TotalQuota)
		switch {
		case !userOK:
			s.refuse(conn, addr, m, stun.CodeAllocQuotaReached, key, nil, "quota", "user")
			return false
		case !totalOK:
			s.refuse(conn, addr, m, stun.CodeInsufficientCapacity, key, nil, "quota", "total")
			return false
		}
		// A reservation made on another listener is unknown here: turn the
		// token into an ignored attribute, so the client gets a fresh port
		// instead of a 508.
		tok, err := m.Get(stun.AttrReservationToken)
		dropToken := err == nil && !conn.knowsToken(tok)
		rewrite(b, key, uint32(s.cfg.MaxLifetime/time.Second), dropToken)
	case stun.MethodRefresh:
		rewrite(b, key, uint32(s.cfg.MaxLifetime/time.Second), false)
	case stun.MethodCreatePermission, stun.MethodChannelBind, stun.MethodConnect:
		denied := false
		_ = m.ForEach(stun.AttrXORPeerAddress, func(m *stun.Message) error {
			var peer stun.XORMappedAddress
			if peer.GetFromAs(m, stun.AttrXORPeerAddress) == nil && !s.peers.allowsIP(peer.IP) {
				denied = true
			}
			return nil
		})
		if denied {
			s.refuse(conn, addr, m, stun.CodeForbidden, key, nil, "peer", "")
			return false
		}
	}
	return true
}

// refuse answers req with an error code and counts it. 401 carries the
// realm and the request's nonce so the client may retry; answers to
// authenticated requests carry MESSAGE-INTEGRITY.
func (s *Server) refuse(conn *guardConn, addr net.Addr, req *stun.Message, code stun.ErrorCode, key []byte, nonce *stun.Nonce, kind, label string) {
	s.count(kind, label)
	setters := []stun.Setter{
		&stun.Message{TransactionID: req.TransactionID},
		stun.NewType(req.Type.Method, stun.ClassErrorResponse),
		&stun.ErrorCodeAttribute{Code: code},
	}
	if nonce != nil {
		setters = append(setters, stun.NewRealm(s.cfg.Realm), *nonce)
	}
	if key != nil {
		setters = append(setters, stun.MessageIntegrity(key))
	}
	setters = append(setters, stun.Fingerprint)
	msg, err := stun.Build(setters...)
	if err != nil {
		return
	}
	_, _ = conn.WriteTo(msg.Raw, addr)
}

// rewrite edits a raw request in place: it lowers a LIFETIME above max
// seconds to max and, with dropToken, retypes RESERVATION-TOKEN as SOFTWARE
// (same length, ignored); after an edit it re-signs MESSAGE-INTEGRITY and
// FINGERPRINT with key.
func rewrite(raw, key []byte, max uint32, dropToken bool) {
	end := 20 + int(binary.BigEndian.Uint16(raw[2:4]))
	if end > len(raw) {
		return
	}
	life, mi, fp, tok := -1, -1, -1, -1
	for off := 20; off+4 <= end; {
		t := binary.BigEndian.Uint16(raw[off:])
		l := int(binary.BigEndian.Uint16(raw[off+2:]))
		if off+4+l > end {
			return
		}
		switch {
		case t == uint16(stun.AttrLifetime) && l == 4 && life < 0 && mi < 0:
			life = off + 4
		case t == uint16(stun.AttrMessageIntegrity) && l == 20 && mi < 0:
			mi = off
		case t == uint16(stun.AttrReservationToken) && mi < 0:
			tok = off
		case t == uint16(stun.AttrFingerprint) && l == 4:
			fp = off
		}
		off += 4 + (l+3)&^3
	}
	edited := false
	if life >= 0 && binary.BigEndian.Uint32(raw[life:]) > max {
		binary.BigEndian.PutUint32(raw[life:], max)
		edited = true
	}
	if dropToken && tok >= 0 {
		binary.BigEndian.PutUint16(raw[tok:], uint16(stun.AttrSoftware))
		edited = true
	}
	if !edited {
		return
	}
	if mi >= 0 {
		length := binary.BigEndian.Uint16(raw[2:4])
		binary.BigEndian.PutUint16(raw[2:4], uint16(mi+24-20)) //nolint:gosec
		mac := hmac.New(sha1.New, key)
		mac.Write(raw[:mi])
		copy(raw[mi+4:mi+24], mac.Sum(nil))
		binary.BigEndian.PutUint16(raw[2:4], length)
	}
	if fp > mi && fp >= 0 {
		binary.BigEndian.PutUint32(raw[fp+4:], crc32.ChecksumIEEE(raw[:fp])^0x5354554e)
	}
}
