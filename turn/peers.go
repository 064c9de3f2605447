package turn

import (
	"net"
	"net/netip"
)

// defaultDenied are the peer ranges a TURN server must not relay to unless
// told to: loopback, "this network", private (RFC 1918, ULA), shared CGNAT
// space, link-local, benchmarking, multicast, reserved and broadcast.
var defaultDenied = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
}

// DefaultDeniedPeers returns the peer ranges refused by default (the
// server's own addresses come on top).
func DefaultDeniedPeers() []netip.Prefix { return append([]netip.Prefix(nil), defaultDenied...) }

// peerPolicy decides which peer addresses allocations may relay to.
// Allowed ranges win over every denial, like coturn's allowed-peer-ip.
type peerPolicy struct {
	allowed []netip.Prefix
	denied  []netip.Prefix
	own     map[netip.Addr]bool
}

func newPeerPolicy(allowed, denied []netip.Prefix, own []netip.Addr) *peerPolicy {
	p := &peerPolicy{allowed: allowed, own: map[netip.Addr]bool{}}
	p.denied = append(append([]netip.Prefix(nil), defaultDenied...), denied...)
	for _, a := range own {
		if a.IsValid() && !a.IsUnspecified() {
			p.own[a.Unmap()] = true
		}
	}
	return p
}

// allows reports whether ip may be a peer.
func (p *peerPolicy) allows(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, n := range p.allowed {
		if n.Contains(ip) {
			return true
		}
	}
	if p.own[ip] {
		return false
	}
	for _, n := range p.denied {
		if n.Contains(ip) {
			return false
		}
	}
	return true
}

// allowsIP is allows for a net.IP.
func (p *peerPolicy) allowsIP(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	return ok && p.allows(a)
}

// ownAddresses lists the host's interface addresses, which are never peers
// unless explicitly allowed.
func ownAddresses(extra ...netip.Addr) []netip.Addr {
	out := append([]netip.Addr(nil), extra...)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}
