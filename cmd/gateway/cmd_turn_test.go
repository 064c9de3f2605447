package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/turn"
)

func TestInitTurnsTURNOnWithAFreshSecret(t *testing.T) {
	var secrets []string
	for range 2 {
		dir := t.TempDir()
		code, stdout, stderr := initInto(t, dir, "--force")
		if code != 0 {
			t.Fatalf("init: %s", stderr)
		}
		cfg, err := configs.Load(filepath.Join(dir, "gateway.yaml"))
		if err != nil {
			t.Fatalf("init's config invalid: %v", err)
		}
		if !cfg.TURN.Enabled || len(cfg.TURN.SharedSecret.Reveal()) < 32 {
			t.Errorf("turn after init: enabled %v, secret length %d", cfg.TURN.Enabled, len(cfg.TURN.SharedSecret.Reveal()))
		}
		secrets = append(secrets, cfg.TURN.SharedSecret.Reveal())
		for _, want := range []string{"turn_shared_secret", "client_api", "turn_uris"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("init output lacks %q", want)
			}
		}
		if strings.Contains(stdout, cfg.TURN.SharedSecret.Reveal()) {
			t.Error("init printed the shared secret")
		}
	}
	if secrets[0] == secrets[1] {
		t.Error("two inits wrote the same secret")
	}
	dir := t.TempDir()
	if code, stdout, stderr := initInto(t, dir, "--no-turn"); code != 0 || strings.Contains(stdout, "turn_shared_secret") {
		t.Fatalf("init --no-turn: %d %s", code, stderr)
	}
	cfg, err := configs.Load(filepath.Join(dir, "gateway.yaml"))
	if err != nil || cfg.TURN.Enabled || cfg.TURN.SharedSecret != "" {
		t.Errorf("--no-turn: %v %+v", err, cfg.TURN)
	}
}

func TestTurnCredentialsCommand(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := initInto(t, dir); code != 0 {
		t.Fatal(stderr)
	}
	cfgPath := filepath.Join(dir, "gateway.yaml")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	data, err := configs.SetValue(raw, "turn.public_host", "turn.gw.test")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfgPath, string(data))
	cfg, err := configs.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI("turn-credentials", "-c", cfgPath, "--user", "@alice:gw.test", "--ttl", "1h")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	m := regexp.MustCompile(`(?m)^username: (\d+):(@alice:gw\.test)\npassword: (\S+)\nuris: (.+)\nttl: 3600$`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("output:\n%s", stdout)
	}
	exp, _ := strconv.ParseInt(m[1], 10, 64)
	if d := time.Until(time.Unix(exp, 0)); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("expiry in %v, want 1h", d)
	}
	if m[3] != turn.RESTPassword(cfg.TURN.SharedSecret.Reveal(), m[1]+":"+m[2]) {
		t.Error("password is not HMAC-SHA1(secret, username)")
	}
	if m[4] != "turn:turn.gw.test:3478?transport=udp turn:turn.gw.test:3478?transport=tcp" {
		t.Errorf("uris %q", m[4])
	}
	code, stdout, _ = runCLI("turn-credentials", "-c", cfgPath, "--user", "@bob:gw.test", "--json")
	var js struct {
		Username, Password string
		URIs               []string
		TTL                int
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &js) != nil || js.TTL != 86400 || !strings.HasSuffix(js.Username, ":@bob:gw.test") || len(js.URIs) != 2 {
		t.Errorf("--json: %d %s", code, stdout)
	}
	if code, _, _ := runCLI("turn-credentials", "-c", cfgPath, "--user", "alice"); code != 2 {
		t.Errorf("bad user ID: exit %d", code)
	}
}

func TestEmbeddedTURNWiring(t *testing.T) {
	cfg, err := configs.Parse([]byte(`homeserver: {url: "http://127.0.0.1:8008", domain: gw.test}
authorization: {users: ["@a:gw.test"], numbers: ["+1*"]}
sip: {trunks: [{name: t, host: 127.0.0.1}]}
media: {rtp_listen_ip: 127.0.0.1}
turn:
  enabled: true
  shared_secret: 0123456789abcdef0123
  listen_ip: 127.0.0.1
  port: 0
  relay_port_min: 62000
  relay_port_max: 62099
  allowed_peers: ["127.0.0.0/8"]
`), "")
	if err == nil || !strings.Contains(err.Error(), "turn.port") {
		t.Fatalf("port 0 accepted: %v", err)
	}
	cfg.TURN.Port = 0 // the test picks a free port through turn.Config
	e, err := newEmbeddedTURN(cfg, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.host != "127.0.0.1" || e.cfg.Realm != "gw.test" || e.cfg.RelayIP != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("embedded config %+v host %s", e.cfg, e.host)
	}
	ice := e.iceServers(nil)
	if len(ice) != 1 || ice[0].Username != e.self || ice[0].Credential != e.selfPW || !strings.HasPrefix(ice[0].URLs[0], "turn:127.0.0.1:") {
		t.Errorf("own ICE servers %+v", ice)
	}
	if err := e.start(); err != nil {
		t.Fatal(err)
	}
	defer e.close()
	if e.srv.UDPAddr().Port() == 0 {
		t.Error("not listening")
	}
	var off *embeddedTURN
	if off.iceServers(nil) != nil || off.start() != nil {
		t.Error("a nil embeddedTURN is not inert")
	}
	off.close()
}
