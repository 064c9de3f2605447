package configs

import (
	"strings"
	"testing"
	"time"
)

func TestTURNDefaultsAndOff(t *testing.T) {
	cfg := mustValid(t)
	if cfg.TURN.Enabled || cfg.TURN.Port != 3478 || !cfg.TURN.TCP || cfg.TURN.RelayPortMin != 61000 ||
		cfg.TURN.MaxLifetime != time.Hour || cfg.TURN.UserQuota != 10 {
		t.Errorf("turn defaults %+v", cfg.TURN)
	}
	if cfg.TURNRealm() != "gateway.test" {
		t.Errorf("realm %q, want the homeserver domain", cfg.TURNRealm())
	}
	// Off: nothing of the section is checked.
	if _, err := Parse([]byte(withKeys("turn:\n  shared_secret: short\n  port: 0\n")), ""); err != nil {
		t.Errorf("disabled turn section checked: %v", err)
	}
}

func TestTURNEnabledValid(t *testing.T) {
	cfg, err := Parse([]byte(withKeys(`turn:
  enabled: true
  realm: turn.gateway.test
  shared_secret: 0123456789abcdef0123
  external_ip: 203.0.113.5
  allowed_peers: ["127.0.0.0/8"]
  denied_peers: ["198.51.100.0/24"]
`)), "")
	if err != nil {
		t.Fatal(err)
	}
	allowed, denied := cfg.TURNPeerPrefixes()
	if len(allowed) != 1 || allowed[0].String() != "127.0.0.0/8" || len(denied) != 1 || cfg.TURNRealm() != "turn.gateway.test" {
		t.Errorf("peers %v %v realm %q", allowed, denied, cfg.TURNRealm())
	}
	if s := cfg.TURN.SharedSecret.String(); strings.Contains(s, "0123") {
		t.Errorf("secret printed: %s", s)
	}
}

func TestTURNProblems(t *testing.T) {
	cases := []struct {
		yaml, path, msg string
	}{
		{"turn:\n  enabled: true\n", "turn.shared_secret", "required"},
		{"turn:\n  enabled: true\n  shared_secret: short\n", "turn.shared_secret", "too short"},
		{"turn:\n  enabled: true\n  shared_secret: 0123456789abcdef\n  listen_ip: nope\n", "turn.listen_ip", "IP address"},
		{"turn:\n  enabled: true\n  shared_secret: 0123456789abcdef\n  port: 0\n", "turn.port", "between"},
		{"turn:\n  enabled: true\n  shared_secret: 0123456789abcdef\n  tls_port: 5349\n", "turn.tls_cert", "required"},
		{"turn:\n  enabled: true\n  shared_secret: 0123456789abcdef\n  tls_cert: /c.pem\n", "turn.tls_port", "required"},
		{"turn:\n  enabled: true\n  shared_secret: 0123456789abcdef\n  external_ip: 0.0.0.0\n", "turn.external_ip", "specific"},
		{"turn:\n  enabled: true\n  shared_secret: 0123456789abcdef\n  relay_port_min: 20000\n  relay_port_max: 20100\n", "turn.relay_port_min", "overlaps media"},
		{"turn:\n  enabled: true\n  shared_secret: 0123456789abcdef\n  relay_port_min: 64000\n  relay_port_max: 63000\n", "turn.relay_port_max", "less than"},
		{"turn:\n  enabled: true\n  shared_secret: 0123456789abcdef\n  max_lifetime: 2h\n", "turn.max_lifetime", "1h"},
		{"turn:\n  enabled: true\n  shared_secret: 0123456789abcdef\n  user_quota: -1\n", "turn.user_quota", "negative"},
		{"turn:\n  enabled: true\n  shared_secret: 0123456789abcdef\n  allowed_peers: [\"10.0.0.0/33\"]\n", "turn.allowed_peers[0]", "CIDR"},
		{"turn:\n  enabled: true\n  shared_secret: 0123456789abcdef\n  public_host: \"bad host\"\n", "turn.public_host", "host"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(withKeys(c.yaml)), "")
		problems := problemsOf(t, err)
		if _, ok := findProblem(problems, c.path, c.msg); !ok {
			t.Errorf("%q: no problem at %s containing %q: %v", c.yaml, c.path, c.msg, problems)
		}
	}
}

func TestExampleDocumentsTURN(t *testing.T) {
	cfg, err := Decode(Example(), "")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(Example()), "\n")
	for _, key := range []string{"enabled", "realm", "shared_secret", "listen_ip", "port", "udp_listeners", "tcp", "tls_port",
		"tls_cert", "tls_key", "relay_ip", "external_ip", "relay_port_min", "relay_port_max", "public_host", "credential_ttl",
		"default_lifetime", "max_lifetime", "user_quota", "total_quota", "max_bitrate", "allowed_peers", "denied_peers", "static_users"} {
		line, ok := cfg.lines["turn."+key]
		if !ok {
			t.Errorf("example lacks turn.%s", key)
			continue
		}
		if prev := strings.TrimSpace(lines[line-2]); key != "relay_port_max" && !strings.HasPrefix(prev, "#") {
			t.Errorf("turn.%s has no comment above it", key)
		}
	}
	def := TURNDefaults()
	if cfg.TURN.Port != def.Port || cfg.TURN.RelayPortMax != def.RelayPortMax || cfg.TURN.MaxBitrate != def.MaxBitrate || cfg.TURN.Enabled {
		t.Errorf("example turn values differ from the defaults: %+v", cfg.TURN)
	}
}
