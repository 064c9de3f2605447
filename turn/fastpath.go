package turn

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
)

// The data plane's fast path. pion/turn keeps the control plane (Allocate,
// Refresh, CreatePermission, ChannelBind, auth, quotas); its lifecycle
// events (pturn.EventHandler) mirror each UDP allocation's client address,
// channel bindings and permissions into an immutable fastState published
// through an atomic pointer. With it the listener's read loop relays
// ChannelData and Send indications straight to the relay socket
// (guardConn.relayToPeer), and each relay socket's read loop frames a bound
// peer's datagram as ChannelData in a reused buffer and writes it to the
// client from the same goroutine (relayConn.relayToClient), without pion's
// per-packet FiveTuple, ChannelData buffer and debug-log calls. Everything
// else (a peer with a permission but no channel: Data indication; unknown
// clients and channels) still goes to pion. Both directions honour
// permissions (RFC 8656 section 9) and the per-allocation bandwidth cap.

// fastState is one allocation's data-plane view, replaced (never mutated)
// on every change, so readers need no lock.
type fastState struct {
	client netip.AddrPort // the allocation's client (unmapped)
	chans  []fastChan
	perms  []netip.Addr // permitted peer IPs (unmapped)
}

// fastChan is a channel binding.
type fastChan struct {
	num  uint16
	peer netip.AddrPort // unmapped
}

// permits reports whether ip has a permission.
func (st *fastState) permits(ip netip.Addr) bool {
	for _, p := range st.perms {
		if p == ip {
			return true
		}
	}
	return false
}

// peerOf returns the peer bound to channel num.
func (st *fastState) peerOf(num uint16) (netip.AddrPort, bool) {
	for i := range st.chans {
		if st.chans[i].num == num {
			return st.chans[i].peer, true
		}
	}
	return netip.AddrPort{}, false
}

// channelOf returns the channel bound to peer, 0 when none.
func (st *fastState) channelOf(peer netip.AddrPort) uint16 {
	for i := range st.chans {
		if st.chans[i].peer == peer {
			return st.chans[i].num
		}
	}
	return 0
}

// udpAddrPort converts a net.Addr from pion to an unmapped AddrPort.
func udpAddrPort(a net.Addr) (netip.AddrPort, bool) {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ip, ok := netip.AddrFromSlice(u.IP)
	if !ok {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(u.Port)), true //nolint:gosec // a UDP port
}

// unmap drops the IPv4-mapped IPv6 form of a dual-stack socket's address.
func unmap(ap netip.AddrPort) netip.AddrPort {
	if ap.Addr().Is4In6() {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return ap
}

// fastRelay returns the relay of a UDP allocation that can take the fast
// path, by its relayed address; nil for TCP/TLS listeners and unknown ports.
func (s *Server) fastRelay(relay net.Addr) *relayConn {
	c := s.track.relay(portOf(relay))
	if c == nil || c.g == nil || c.g.udp == nil {
		return nil
	}
	return c
}

// update applies edit to a copy of the relay's state and publishes it.
// Called from pion's request handling and timer goroutines, never per packet.
func (c *relayConn) update(edit func(st *fastState)) {
	c.fastMu.Lock()
	defer c.fastMu.Unlock()
	if c.closed {
		return
	}
	var st fastState
	if old := c.fast.Load(); old != nil {
		st = fastState{client: old.client, chans: slices.Clone(old.chans), perms: slices.Clone(old.perms)}
	}
	edit(&st)
	c.fast.Store(&st)
}

// onAllocationCreated registers a UDP allocation's client with its listener.
func (s *Server) onAllocationCreated(src, relay net.Addr) {
	c := s.fastRelay(relay)
	client, ok := udpAddrPort(src)
	if c == nil || !ok {
		return
	}
	c.update(func(st *fastState) { st.client = client })
	c.g.fastMu.Lock()
	if !c.isClosed() {
		c.g.fast[client] = c
	}
	c.g.fastMu.Unlock()
}

// onPermission mirrors a permission created or deleted for peer.
func (s *Server) onPermission(relay net.Addr, peer net.IP, add bool) {
	c := s.fastRelay(relay)
	ip, ok := netip.AddrFromSlice(peer)
	if c == nil || !ok {
		return
	}
	ip = ip.Unmap()
	if add && !s.peers.allows(ip) {
		return // never the case (the guard and pion refuse such peers): stay on pion's path
	}
	c.update(func(st *fastState) {
		st.perms = slices.DeleteFunc(st.perms, func(a netip.Addr) bool { return a == ip })
		if add {
			st.perms = append(st.perms, ip)
		}
	})
}

// onChannel mirrors a channel binding created or deleted.
func (s *Server) onChannel(relay, peer net.Addr, num uint16, add bool) {
	c := s.fastRelay(relay)
	ap, ok := udpAddrPort(peer)
	if c == nil || !ok {
		return
	}
	if add && !s.peers.allows(ap.Addr()) {
		return
	}
	c.update(func(st *fastState) {
		st.chans = slices.DeleteFunc(st.chans, func(b fastChan) bool { return b.num == num })
		if add {
			st.chans = append(st.chans, fastChan{num: num, peer: ap})
		}
	})
}

// forgetFast removes a closing relay from the fast path.
func (c *relayConn) forgetFast() {
	c.fastMu.Lock()
	c.closed = true
	st := c.fast.Swap(nil)
	c.fastMu.Unlock()
	if st == nil || c.g == nil {
		return
	}
	c.g.fastMu.Lock()
	if c.g.fast[st.client] == c {
		delete(c.g.fast, st.client)
	}
	c.g.fastMu.Unlock()
}

func (c *relayConn) isClosed() bool {
	c.fastMu.Lock()
	defer c.fastMu.Unlock()
	return c.closed
}

// lookup returns the relay and state of the client's allocation on this listener.
func (g *guardConn) lookup(client netip.AddrPort) (*relayConn, *fastState) {
	g.fastMu.RLock()
	c := g.fast[client]
	g.fastMu.RUnlock()
	if c == nil {
		return nil, nil
	}
	st := c.fast.Load()
	if st == nil {
		return nil, nil
	}
	return c, st
}

// relayToPeer relays b, read from client on this listener, to its peer when
// it is ChannelData on a bound channel or a Send indication to a permitted
// peer of a known allocation. It reports whether b was consumed (relayed,
// or dropped for a missing permission or the bandwidth cap); false leaves
// it to pion. Zero allocations.
func (g *guardConn) relayToPeer(b []byte, client netip.AddrPort) bool {
	if len(b) < 4 {
		return false
	}
	var data []byte
	var peer netip.AddrPort
	c, st := (*relayConn)(nil), (*fastState)(nil)
	switch num := binary.BigEndian.Uint16(b); {
	case num >= 0x4000 && num <= 0x7FFF: // ChannelData (RFC 8656 section 12.4)
		l := int(binary.BigEndian.Uint16(b[2:]))
		if l > len(b)-4 {
			return false
		}
		if c, st = g.lookup(client); st == nil {
			return false
		}
		var ok bool
		if peer, ok = st.peerOf(num); !ok {
			return false
		}
		data = b[4 : 4+l]
	case num == 0x0016: // Send indication (RFC 8656 section 11.4)
		var ok bool
		if peer, data, ok = parseSend(b); !ok {
			return false
		}
		if c, st = g.lookup(client); st == nil {
			return false
		}
	default:
		return false
	}
	if !st.permits(peer.Addr()) {
		c.stats.noPermission.Add(1)
		return true
	}
	if c.out != nil && !c.out.take(len(data)) {
		c.stats.dropped.Add(1)
		return true
	}
	// Counted before sending, so the counters are up to date by the time
	// an answer to the packet can come back; a failed send is taken back.
	c.stats.countToPeer(len(data), 1)
	if _, err := c.sendTo(data, peer); err != nil {
		c.stats.countToPeer(-len(data), -1)
	}
	return true
}

// parseSend extracts XOR-PEER-ADDRESS and DATA from a Send indication
// without allocating; ok is false for anything unusual (pion decides then).
func parseSend(b []byte) (peer netip.AddrPort, data []byte, ok bool) {
	const cookie = 0x2112A442
	if len(b) < 20 || binary.BigEndian.Uint32(b[4:8]) != cookie {
		return peer, nil, false
	}
	end := 20 + int(binary.BigEndian.Uint16(b[2:4]))
	if end > len(b) {
		return peer, nil, false
	}
	havePeer, haveData := false, false
	for off := 20; off+4 <= end; {
		t := binary.BigEndian.Uint16(b[off:])
		l := int(binary.BigEndian.Uint16(b[off+2:]))
		v := off + 4
		if v+l > end {
			return peer, nil, false
		}
		switch t {
		case 0x0012: // XOR-PEER-ADDRESS
			if havePeer || l < 8 {
				return peer, nil, false
			}
			port := binary.BigEndian.Uint16(b[v+2:]) ^ (cookie >> 16)
			switch {
			case b[v+1] == 0x01 && l == 8:
				var a [4]byte
				binary.BigEndian.PutUint32(a[:], binary.BigEndian.Uint32(b[v+4:])^cookie)
				peer = netip.AddrPortFrom(netip.AddrFrom4(a), port)
			case b[v+1] == 0x02 && l == 20:
				var a [16]byte
				for i := range a {
					a[i] = b[v+4+i] ^ b[4+i] // cookie then transaction ID
				}
				peer = netip.AddrPortFrom(netip.AddrFrom16(a).Unmap(), port)
			default:
				return peer, nil, false
			}
			havePeer = true
		case 0x0013: // DATA
			if haveData {
				return peer, nil, false
			}
			data, haveData = b[v:v+l], true
		}
		off = v + (l+3)&^3
	}
	return peer, data, havePeer && haveData
}

// Results of relayToClient.
const (
	toPion  = iota // not for the fast path: hand to pion
	relayed        // sent as ChannelData, or dropped for the bandwidth cap
	denied         // the peer has no permission: dropped
)

// relayToClient handles a datagram of n bytes from peer, read into
// c.rbuf[4:]: from a peer with a permission and a channel binding it is
// framed as ChannelData in place and written to the client on the
// allocation's listener. Zero allocations.
func (c *relayConn) relayToClient(n int, peer netip.AddrPort) int {
	st := c.fast.Load()
	if st == nil || !st.client.IsValid() {
		return toPion
	}
	if !st.permits(peer.Addr()) {
		c.stats.noPermission.Add(1)
		return denied
	}
	num := st.channelOf(peer)
	if num == 0 {
		return toPion // permitted, no channel: a Data indication
	}
	if c.in != nil && !c.in.take(n) {
		c.stats.dropped.Add(1)
		return relayed
	}
	buf := c.rbuf
	binary.BigEndian.PutUint16(buf[0:], num)
	binary.BigEndian.PutUint16(buf[2:], uint16(n)) //nolint:gosec // n <= relayMTU
	end := 4 + n
	for end&3 != 0 { // pad to 4 bytes like pion (RFC 8656 section 12.5)
		buf[end] = 0
		end++
	}
	c.stats.countToClient(n, 1) // before sending, as in relayToPeer
	if err := c.sendToClient(buf[:end], st.client); err != nil {
		c.stats.countToClient(-n, -1)
		c.stats.dropped.Add(1)
	}
	return relayed
}

// countToPeer adds packets (1, or -1 to take a failed send back) and their
// bytes to the fast path's client -> peer counters.
func (st *relayStats) countToPeer(bytes, packets int) {
	st.toPeerPackets.Add(uint64(packets)) //nolint:gosec // two's complement subtracts
	st.toPeerBytes.Add(uint64(bytes))     //nolint:gosec
	st.fastToPeer.Add(uint64(packets))    //nolint:gosec
}

// countToClient is countToPeer for peer -> client.
func (st *relayStats) countToClient(bytes, packets int) {
	st.toClientPackets.Add(uint64(packets)) //nolint:gosec
	st.toClientBytes.Add(uint64(bytes))     //nolint:gosec
	st.fastToClient.Add(uint64(packets))    //nolint:gosec
}
