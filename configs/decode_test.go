package configs

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseMinimalAppliesDefaults(t *testing.T) {
	cfg := mustValid(t)
	d := Defaults()
	if cfg.AppService.Listen != d.AppService.Listen || cfg.AppService.BotLocalpart != "pstn" {
		t.Errorf("appservice defaults not applied: %+v", cfg.AppService)
	}
	if cfg.Phone.DefaultCountryCode != "1" || cfg.Authorization.MaxCallsPerUser != 2 || cfg.Authorization.MaxCalls != 100 {
		t.Errorf("defaults not applied: %+v %+v", cfg.Phone, cfg.Authorization)
	}
	if got := cfg.Media.Codecs; len(got) != 2 || got[0] != "PCMU" || got[1] != "PCMA" {
		t.Errorf("codecs = %v", got)
	}
	if cfg.WebRTC.ICEGatherTimeout != 2*time.Second || cfg.Logging.Level != "info" || cfg.Logging.Format != "console" {
		t.Errorf("webrtc/logging defaults not applied")
	}
	tr := cfg.SIP.Trunks[0]
	want := TrunkDefaults()
	want.Name, want.Host = "main", "127.0.0.1"
	if fmt.Sprint(tr) != fmt.Sprint(want) {
		t.Errorf("trunk = %+v, want %+v", tr, want)
	}
}

func TestEveryTrunkStartsFromDefaults(t *testing.T) {
	data := strings.Replace(validYAML, "      host: 127.0.0.1\n",
		"      host: 127.0.0.1\n      port: 5080\n      ring_timeout: 30s\n    - name: second\n      host: 127.0.0.2\n", 1)
	cfg, err := Parse([]byte(data), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SIP.Trunks[0].Port != 5080 || cfg.SIP.Trunks[0].RingTimeout != 30*time.Second {
		t.Errorf("first trunk values lost: %+v", cfg.SIP.Trunks[0])
	}
	second := cfg.SIP.Trunks[1]
	if second.Port != 5060 || second.RingTimeout != 60*time.Second || second.Transport != "udp" || second.SetupTimeout != 8*time.Second {
		t.Errorf("second trunk has no defaults: %+v", second)
	}
}

func TestNullKeepsDefault(t *testing.T) {
	cfg, err := Parse([]byte(validYAML+"logging:\n  level:\n  format: ~\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logging.Level != "info" || cfg.Logging.Format != "console" {
		t.Errorf("null values did not keep defaults: %+v", cfg.Logging)
	}
}

func TestDurationsAreGoDurationStrings(t *testing.T) {
	data := validYAML + "webrtc:\n  ice_gather_timeout: 1500ms\n"
	cfg, err := Parse([]byte(data), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.WebRTC.ICEGatherTimeout != 1500*time.Millisecond {
		t.Errorf("ice_gather_timeout = %s", cfg.WebRTC.ICEGatherTimeout)
	}
}

func TestRelativeRegistrationPath(t *testing.T) {
	cfg := mustValid(t)
	if want := filepath.Join("/etc/gateway", "registration.yaml"); cfg.AppService.Registration != want {
		t.Errorf("registration = %q, want %q", cfg.AppService.Registration, want)
	}
	abs := strings.Replace(validYAML, "registration: registration.yaml", "registration: /srv/reg.yaml", 1)
	cfg, err := Parse([]byte(abs), "/etc/gateway")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AppService.Registration != "/srv/reg.yaml" {
		t.Errorf("absolute path changed to %q", cfg.AppService.Registration)
	}
	cfg, err = Parse([]byte(validYAML), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AppService.Registration != "registration.yaml" {
		t.Errorf("empty baseDir changed the path to %q", cfg.AppService.Registration)
	}
}

func TestLoadResolvesAgainstFileDir(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "gateway.yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(validYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "sub", "registration.yaml"); cfg.AppService.Registration != want {
		t.Errorf("registration = %q, want %q", cfg.AppService.Registration, want)
	}
}

func TestLoadErrors(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil || !strings.HasPrefix(err.Error(), "configs: ") {
		t.Errorf("missing file error = %v", err)
	}
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte(validYAML+"bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	problems := problemsOf(t, err)
	if cfg == nil {
		t.Error("Load returned no Config alongside the problems")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error does not name the file: %v", err)
	}
	if _, ok := findProblem(problems, "bogus", "unknown key"); !ok {
		t.Errorf("unknown key not reported: %v", problems)
	}
}

func TestUnknownKeysReportedWithPathAndLine(t *testing.T) {
	data := validYAML + "sip_typo: 1\nlogging:\n  levle: debug\n"
	data = strings.Replace(data, "      host: 127.0.0.1\n", "      host: 127.0.0.1\n      hots: x\n", 1)
	_, err := Parse([]byte(data), "")
	problems := problemsOf(t, err)
	lines := strings.Split(data, "\n")
	lineOf := func(prefix string) int {
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return i + 1
			}
		}
		t.Fatalf("no line %q", prefix)
		return 0
	}
	cases := []struct {
		path, msg string
		line      int
	}{
		{"sip.trunks[0].hots", `did you mean "host"`, lineOf("      hots:")},
		{"sip_typo", "unknown key", lineOf("sip_typo")},
		{"logging.levle", `did you mean "level"`, lineOf("  levle")},
	}
	for _, c := range cases {
		p, ok := findProblem(problems, c.path, c.msg)
		if !ok {
			t.Errorf("%s: %q not reported in %v", c.path, c.msg, problems)
			continue
		}
		if p.Line != c.line {
			t.Errorf("%s: line %d, want %d", c.path, p.Line, c.line)
		}
	}
	if len(problems) != len(cases) {
		t.Errorf("got %d problems, want %d: %v", len(problems), len(cases), problems)
	}
}

func TestTypeErrorsReportedWithPath(t *testing.T) {
	cases := []struct {
		name, extra, path, msg string
	}{
		{"string for int", "media:\n  rtp_port_min: lots\n", "media.rtp_port_min", `must be an integer, got a string "lots"`},
		{"float for int", "media:\n  opus_bitrate: 1.5\n", "media.opus_bitrate", "must be an integer"},
		{"quoted int", "authorization:\n  max_calls: \"5\"\n", "authorization.max_calls", "must be an integer"},
		{"no unit", "webrtc:\n  ice_gather_timeout: 60\n", "webrtc.ice_gather_timeout", "must be a duration with a unit"},
		{"bad duration", "webrtc:\n  ice_gather_timeout: soon\n", "webrtc.ice_gather_timeout", "duration"},
		{"string for bool", "webrtc:\n  include_loopback_candidates: maybe\n", "webrtc.include_loopback_candidates", "must be true or false"},
		{"scalar for list", "media:\n  codecs: PCMU\n", "media.codecs", "must be a list"},
		{"scalar for section", "metrics: on\n", "metrics", "must be a mapping"},
		{"list for string", "logging:\n  level: [debug]\n", "logging.level", "must be a string, got a list"},
		{"scalar for map", "webrtc:\n  ice_servers: [{urls: stun:x}]\n", "webrtc.ice_servers[0].urls", "must be a list"},
		{"list for map", "authorization:\n  caller_ids: [a]\n", "authorization.caller_ids", "must be a mapping"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(withKeys(c.extra)), "")
			problems := problemsOf(t, err)
			p, ok := findProblem(problems, c.path, c.msg)
			if !ok {
				t.Fatalf("%q at %s not reported: %v", c.msg, c.path, problems)
			}
			if p.Line == 0 {
				t.Errorf("no line number: %v", p)
			}
		})
	}
}

func TestTypeErrorInListEntry(t *testing.T) {
	data := strings.Replace(validYAML, "      host: 127.0.0.1\n", "      host: 127.0.0.1\n      port: abc\n", 1)
	_, err := Parse([]byte(data), "")
	problems := problemsOf(t, err)
	if _, ok := findProblem(problems, "sip.trunks[0].port", "must be an integer"); !ok || len(problems) != 1 {
		t.Errorf("want exactly the port type error, got %v", problems)
	}
}

func TestMultipleProblemsAtOnce(t *testing.T) {
	data := `homeserver:
  url: ftp://hs
  domian: x
sip:
  trunks:
    - name: Main
      port: 70000
      transport: tls
logging:
  level: loud
`
	_, err := Parse([]byte(data), "")
	problems := problemsOf(t, err)
	want := []string{
		"homeserver.url", "homeserver.domian", "homeserver.domain",
		"sip.trunks[0].name", "sip.trunks[0].host", "sip.trunks[0].port", "sip.trunks[0].transport",
		"logging.level",
	}
	for _, w := range want {
		found := false
		for _, p := range problems {
			found = found || p.Path == w
		}
		if !found {
			t.Errorf("no problem at %s in %v", w, problems)
		}
	}
	for i := 1; i < len(problems); i++ {
		a, b := problems[i-1].Line, problems[i].Line
		if b != 0 && (a == 0 || a > b) {
			t.Errorf("problems not in line order: %v then %v", problems[i-1], problems[i])
		}
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, fmt.Sprintf("configs: %d problems:", len(problems))) || strings.Count(msg, "\n") != len(problems) {
		t.Errorf("error text does not list every problem on its own line:\n%s", msg)
	}
	if p, _ := findProblem(problems, "sip.trunks[0].port", ""); p.String() != "sip.trunks[0].port: must be between 1 and 65535, got 70000 (line 7)" {
		t.Errorf("port problem = %q", p.String())
	}
}

func TestDuplicateKey(t *testing.T) {
	_, err := Parse([]byte(validYAML+"logging:\n  level: info\n  level: debug\n"), "")
	problems := problemsOf(t, err)
	if _, ok := findProblem(problems, "logging.level", "duplicate key"); !ok {
		t.Errorf("duplicate key not reported: %v", problems)
	}
}

func TestSyntaxError(t *testing.T) {
	cfg, err := Parse([]byte("homeserver:\n  url: [unclosed\n  domain: x\n"), "")
	problems := problemsOf(t, err)
	if cfg != nil {
		t.Error("config returned for unreadable YAML")
	}
	if len(problems) != 1 || problems[0].Line == 0 || !strings.Contains(problems[0].Message, "YAML syntax error") {
		t.Errorf("syntax error = %v", problems)
	}
}

func TestEmptyFileReportsRequiredKeys(t *testing.T) {
	_, err := Parse(nil, "")
	problems := problemsOf(t, err)
	for _, path := range []string{"homeserver.url", "homeserver.domain", "sip.trunks"} {
		if _, ok := findProblem(problems, path, "required"); !ok {
			t.Errorf("%s not reported as required: %v", path, problems)
		}
	}
}

func TestDecodeSkipsValidation(t *testing.T) {
	cfg, err := Decode(Example(), "")
	if err != nil {
		t.Fatalf("the example does not decode: %v", err)
	}
	if cfg.Homeserver.Domain != "example.org" || len(cfg.SIP.Trunks) != 1 {
		t.Errorf("example decoded wrongly: %+v", cfg.Homeserver)
	}
	_, err = Decode([]byte("bogus: 1\n"), "")
	if _, ok := findProblem(problemsOf(t, err), "bogus", "unknown key"); !ok {
		t.Error("Decode did not report an unknown key")
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	const pw = "hunter2-very-secret"
	data := strings.Replace(validYAML, "      host: 127.0.0.1\n",
		"      host: 127.0.0.1\n      username: gw\n      password: "+pw+"\n", 1) +
		"webrtc:\n  ice_servers:\n    - urls: [\"turn:127.0.0.1:3478\"]\n      username: u\n      credential: " + pw + "\n"
	cfg, err := Parse([]byte(data), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SIP.Trunks[0].Password.Reveal() != pw || string(cfg.WebRTC.ICEServers[0].Credential) != pw {
		t.Fatal("secret not decoded")
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg.SIP), fmt.Sprintf("%#v", cfg.SIP.Trunks[0]), fmt.Sprintf("%v", cfg.WebRTC), string(js)} {
		if strings.Contains(out, pw) {
			t.Errorf("secret printed: %s", out)
		}
	}
	// A placeholder password and a wrongly typed one are reported without the value.
	bad := strings.Replace(data, "password: "+pw, "password: CHANGE_ME_"+pw, 1)
	_, err = Parse([]byte(bad), "")
	if strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), "sip.trunks[0].password") {
		t.Errorf("placeholder password problem: %v", err)
	}
	if Secret("").String() != "" || Secret("x").String() != "***" {
		t.Error("Secret.String")
	}
}
