package turn

import (
	"net/netip"
	"testing"
)

func TestPeerPolicy(t *testing.T) {
	own := netip.MustParseAddr("203.0.113.7")
	def := newPeerPolicy(nil, nil, []netip.Addr{own})
	custom := newPeerPolicy(
		[]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.9.0.0/16")},
		[]netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
		[]netip.Addr{own})
	cases := []struct {
		ip          string
		def, custom bool
	}{
		{"8.8.8.8", true, true},
		{"2001:4860:4860::8888", true, true},
		{"127.0.0.1", false, true},
		{"::ffff:127.0.0.1", false, true},
		{"::1", false, false},
		{"10.1.2.3", false, false},
		{"10.9.1.1", false, true},
		{"172.16.5.5", false, false},
		{"172.32.0.1", true, true},
		{"192.168.1.1", false, false},
		{"100.64.0.1", false, false},
		{"169.254.1.1", false, false},
		{"fe80::1", false, false},
		{"fd00::1", false, false},
		{"224.0.0.251", false, false},
		{"ff02::1", false, false},
		{"255.255.255.255", false, false},
		{"0.0.0.0", false, false},
		{"203.0.113.7", false, false},
		{"203.0.113.8", true, true},
		{"198.51.100.9", true, false},
	}
	for _, c := range cases {
		ip := netip.MustParseAddr(c.ip)
		if got := def.allows(ip); got != c.def {
			t.Errorf("default policy allows(%s) = %v, want %v", c.ip, got, c.def)
		}
		if got := custom.allows(ip); got != c.custom {
			t.Errorf("custom policy allows(%s) = %v, want %v", c.ip, got, c.custom)
		}
	}
	if def.allows(netip.Addr{}) || def.allowsIP(nil) {
		t.Error("invalid address allowed")
	}
}
