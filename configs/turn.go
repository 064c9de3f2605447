package configs

import (
	"net/netip"
	"time"
)

// TURNConfig configures the embedded TURN server that Matrix clients (and
// the gateway's own WebRTC peers) relay media through. Credentials follow
// the TURN REST scheme of the homeserver's turn_shared_secret.
type TURNConfig struct {
	// Enabled runs the TURN server inside `gateway run`.
	Enabled bool `yaml:"enabled"`
	// Realm is the credential realm; empty means homeserver.domain.
	Realm string `yaml:"realm"`
	// SharedSecret is the homeserver's turn_shared_secret (TURN REST
	// scheme), at least 16 characters; it is never printed.
	SharedSecret Secret `yaml:"shared_secret"`
	// ListenIP is where the UDP and TCP listeners bind.
	ListenIP string `yaml:"listen_ip"`
	// Port is the UDP and TCP port (turn:).
	Port int `yaml:"port"`
	// UDPListeners is how many UDP sockets share Port (SO_REUSEPORT), each
	// with its own read loop; 0 means one per CPU.
	UDPListeners int `yaml:"udp_listeners"`
	// TCP also accepts TURN over TCP on Port.
	TCP bool `yaml:"tcp"`
	// TLSPort is the TURN-over-TLS port (turns:); 0 means none.
	TLSPort int `yaml:"tls_port"`
	// TLSCert and TLSKey are PEM files for TLSPort.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// RelayIP is the local IP relay sockets bind to; empty means listen_ip,
	// or the host's first public address when listen_ip is unspecified.
	RelayIP string `yaml:"relay_ip"`
	// ExternalIP is the public IP of a 1:1 NAT in front of the server,
	// announced as the relay address; empty means relay_ip.
	ExternalIP string `yaml:"external_ip"`
	// RelayPortMin and RelayPortMax bound the relay ports (UDP).
	RelayPortMin int `yaml:"relay_port_min"`
	RelayPortMax int `yaml:"relay_port_max"`
	// PublicHost is the host name or IP in the turn: URIs the gateway hands
	// out; empty means the relay address.
	PublicHost string `yaml:"public_host"`
	// CredentialTTL is the lifetime of credentials made by the gateway (for
	// its own peers and `gateway turn-credentials`).
	CredentialTTL time.Duration `yaml:"credential_ttl"`
	// DefaultLifetime is an allocation's lifetime when the client asks none.
	DefaultLifetime time.Duration `yaml:"default_lifetime"`
	// MaxLifetime caps the lifetime a client may ask for (at most 1h).
	MaxLifetime time.Duration `yaml:"max_lifetime"`
	// UserQuota caps concurrent allocations per user; 0 means no cap.
	UserQuota int `yaml:"user_quota"`
	// TotalQuota caps concurrent allocations in total; 0 means no cap.
	TotalQuota int `yaml:"total_quota"`
	// MaxBitrate caps each allocation's traffic per direction, bit/s; 0 = none.
	MaxBitrate int `yaml:"max_bitrate"`
	// AllowedPeers are CIDRs always relayed to, overriding every denial.
	AllowedPeers []string `yaml:"allowed_peers"`
	// DeniedPeers are CIDRs refused besides the default private ranges.
	DeniedPeers []string `yaml:"denied_peers"`
	// StaticUsers maps user names to passwords, for tests only.
	StaticUsers map[string]string `yaml:"static_users"`
}

// TURNDefaults returns the defaults of the turn section.
func TURNDefaults() TURNConfig {
	return TURNConfig{
		ListenIP:        "0.0.0.0",
		Port:            3478,
		TCP:             true,
		RelayPortMin:    61000,
		RelayPortMax:    65535,
		CredentialTTL:   24 * time.Hour,
		DefaultLifetime: 10 * time.Minute,
		MaxLifetime:     time.Hour,
		UserQuota:       10,
		TotalQuota:      1000,
		MaxBitrate:      5_000_000,
	}
}

// TURNRealm is the realm in use: turn.realm, else homeserver.domain.
func (c *Config) TURNRealm() string {
	if c.TURN.Realm != "" {
		return c.TURN.Realm
	}
	return c.Homeserver.Domain
}

func (c *Config) validateTURN(v *validator) {
	t := c.TURN
	if !t.Enabled {
		return
	}
	const p = "turn."
	if t.SharedSecret == "" && len(t.StaticUsers) == 0 {
		v.bad(p+"shared_secret", "required when turn is enabled: the homeserver's turn_shared_secret")
	} else if t.SharedSecret != "" && len(t.SharedSecret) < 16 {
		v.bad(p+"shared_secret", "too short: use at least 16 random characters")
	}
	if ip, err := netip.ParseAddr(t.ListenIP); err != nil || ip.Zone() != "" {
		v.bad(p+"listen_ip", "must be an IP address, got %q", t.ListenIP)
	}
	v.port(p+"port", t.Port)
	if t.UDPListeners < 0 || t.UDPListeners > 256 {
		v.bad(p+"udp_listeners", "must be between 0 (one per CPU) and 256, got %d", t.UDPListeners)
	}
	if t.TLSPort != 0 {
		if v.port(p+"tls_port", t.TLSPort); t.TLSPort == t.Port && t.TCP {
			v.bad(p+"tls_port", "must differ from port (%d), which serves TCP", t.Port)
		}
		if t.TLSCert == "" || t.TLSKey == "" {
			v.bad(p+"tls_cert", "tls_cert and tls_key are required when tls_port is set")
		}
	} else if t.TLSCert != "" || t.TLSKey != "" {
		v.bad(p+"tls_port", "required when tls_cert or tls_key is set")
	}
	for _, k := range []struct{ key, val string }{{"relay_ip", t.RelayIP}, {"external_ip", t.ExternalIP}} {
		if k.val == "" {
			continue
		}
		if ip, err := netip.ParseAddr(k.val); err != nil || ip.IsUnspecified() || ip.Zone() != "" {
			v.bad(p+k.key, "must be empty or a specific IP address, got %q", k.val)
		}
	}
	minOK := v.portRange(p+"relay_port_min", t.RelayPortMin, 1024)
	maxOK := v.portRange(p+"relay_port_max", t.RelayPortMax, 1024)
	if minOK && maxOK {
		m, w := c.Media, c.WebRTC
		switch {
		case t.RelayPortMin > t.RelayPortMax:
			v.bad(p+"relay_port_max", "must not be less than relay_port_min (%d), got %d", t.RelayPortMin, t.RelayPortMax)
		case t.RelayPortMin <= m.RTPPortMax && m.RTPPortMin <= t.RelayPortMax:
			v.bad(p+"relay_port_min", "range %d-%d overlaps media.rtp_port_min..rtp_port_max (%d-%d)", t.RelayPortMin, t.RelayPortMax, m.RTPPortMin, m.RTPPortMax)
		case w.UDPPortMin != 0 && t.RelayPortMin <= w.UDPPortMax && w.UDPPortMin <= t.RelayPortMax:
			v.bad(p+"relay_port_min", "range %d-%d overlaps webrtc.udp_port_min..udp_port_max (%d-%d)", t.RelayPortMin, t.RelayPortMax, w.UDPPortMin, w.UDPPortMax)
		}
	}
	if t.PublicHost != "" && !validHost(t.PublicHost) {
		v.bad(p+"public_host", "must be empty, a host name or an IP address, got %q", t.PublicHost)
	}
	if t.CredentialTTL < time.Minute {
		v.bad(p+"credential_ttl", "must be at least 1m, got %s", t.CredentialTTL)
	}
	if t.DefaultLifetime < time.Minute {
		v.bad(p+"default_lifetime", "must be at least 1m, got %s", t.DefaultLifetime)
	}
	if t.MaxLifetime > time.Hour || t.MaxLifetime < t.DefaultLifetime {
		v.bad(p+"max_lifetime", "must be between default_lifetime (%s) and 1h, got %s", t.DefaultLifetime, t.MaxLifetime)
	}
	for _, k := range []struct {
		key string
		val int
	}{{"user_quota", t.UserQuota}, {"total_quota", t.TotalQuota}, {"max_bitrate", t.MaxBitrate}} {
		if k.val < 0 {
			v.bad(p+k.key, "must not be negative (0 means no limit), got %d", k.val)
		}
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{"allowed_peers", t.AllowedPeers}, {"denied_peers", t.DeniedPeers}} {
		for i, s := range l.list {
			if _, err := netip.ParsePrefix(s); err != nil {
				v.bad(indexPath(p+l.key, i), "must be a CIDR like 192.0.2.0/24, got %q", s)
			}
		}
	}
}

// TURNPeerPrefixes parses turn.allowed_peers and turn.denied_peers (valid
// after Validate).
func (c *Config) TURNPeerPrefixes() (allowed, denied []netip.Prefix) {
	parse := func(list []string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range list {
			if p, err := netip.ParsePrefix(s); err == nil {
				out = append(out, p.Masked())
			}
		}
		return out
	}
	return parse(c.TURN.AllowedPeers), parse(c.TURN.DeniedPeers)
}
