package configs

import (
	"net/netip"
	"strings"
	"time"
)

// InboundConfig routes calls from the phone network to Matrix users.
type InboundConfig struct {
	// Routes map dialled numbers to Matrix users; the first match wins.
	Routes []InboundRoute `yaml:"routes"`
	// DefaultUser receives calls to numbers no route matches; empty means
	// such calls get 404.
	DefaultUser string `yaml:"default_user"`
	// RingTimeout is the m.call.invite lifetime: how long the Matrix user's
	// clients ring.
	RingTimeout time.Duration `yaml:"ring_timeout"`
}

// InboundRoute sends calls for some numbers to one Matrix user.
type InboundRoute struct {
	// Numbers are patterns on the dialled number in E.164 (globs or re:).
	Numbers []string `yaml:"numbers"`
	// User is the Matrix user ID whose clients ring.
	User string `yaml:"user"`
}

// InboundUserFor returns the Matrix user a dialled E.164 number rings, or
// "" when nothing routes it.
func (c *Config) InboundUserFor(e164 string) string {
	for _, r := range c.Inbound.Routes {
		if matchAny(r.Numbers, e164) {
			return r.User
		}
	}
	return c.Inbound.DefaultUser
}

// InboundSources returns the networks a trunk's INVITEs may come from:
// inbound_sources, or the trunk host itself when that is an IP address.
func (t *Trunk) InboundSources() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range t.InboundSourceCIDRs {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	if len(t.InboundSourceCIDRs) == 0 {
		if ip, err := netip.ParseAddr(t.Host); err == nil {
			out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
		}
	}
	return out
}

// parsePrefix accepts a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	return p.Masked(), err
}

func (c *Config) validateInbound(v *validator) {
	s := c.SIP
	v.oneOf("sip.untrusted", s.Untrusted, "reject", "ignore")
	if s.InviteRate < 0 {
		v.bad("sip.invite_rate", "must be 0 (off) or positive, got %d", s.InviteRate)
	}
	if s.InviteBurst < 1 {
		v.bad("sip.invite_burst", "must be at least 1, got %d", s.InviteBurst)
	}
	for i, t := range s.Trunks {
		p := indexPath("sip.trunks", i)
		for j, cidr := range t.InboundSourceCIDRs {
			if _, err := parsePrefix(cidr); err != nil {
				v.bad(indexPath(p+".inbound_sources", j), "must be an IP address or CIDR, got %q", cidr)
			}
		}
		if t.InboundPassword != "" && t.InboundUsername == "" {
			v.bad(p+".inbound_username", "required when inbound_password is set")
		}
		if t.InboundUsername != "" && t.InboundPassword == "" {
			v.bad(p+".inbound_password", "required when inbound_username is set")
		}
		if t.Register && t.Username == "" && t.RegisterUser == "" {
			v.bad(p+".register_user", "required (or username) when register is true")
		}
		if t.Register && (t.RegisterExpires < time.Minute || t.RegisterExpires > 24*time.Hour) {
			v.bad(p+".register_expires", "must be between 1m and 24h, got %s", t.RegisterExpires)
		}
	}
	in := c.Inbound
	for i, r := range in.Routes {
		p := indexPath("inbound.routes", i)
		if len(r.Numbers) == 0 {
			v.bad(p+".numbers", "at least one pattern is required")
		}
		for j, pat := range r.Numbers {
			v.pattern(indexPath(p+".numbers", j), pat)
		}
		if !validUserID(r.User) {
			v.bad(p+".user", "must be a Matrix user ID like @alice:example.org, got %q", r.User)
		}
	}
	if in.DefaultUser != "" && !validUserID(in.DefaultUser) {
		v.bad("inbound.default_user", "must be empty or a Matrix user ID, got %q", in.DefaultUser)
	}
	if in.RingTimeout < 5*time.Second || in.RingTimeout > 5*time.Minute {
		v.bad("inbound.ring_timeout", "must be between 5s and 5m, got %s", in.RingTimeout)
	}
}

// RegistrationUser is the address-of-record user the gateway registers as.
func (t *Trunk) RegistrationUser() string {
	if t.RegisterUser != "" {
		return t.RegisterUser
	}
	return t.Username
}
