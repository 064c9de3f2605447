package configs

import (
	"slices"
	"strings"
	"testing"
)

func TestExampleParsesButPlaceholdersAreProblems(t *testing.T) {
	cfg, err := Parse(Example(), "/etc/gateway")
	problems := problemsOf(t, err)
	if cfg == nil {
		t.Fatal("no config for the example")
	}
	var paths []string
	for _, p := range problems {
		if !strings.Contains(p.Message, "placeholder") {
			t.Errorf("example has a problem besides placeholders: %v", p)
		}
		if p.Line == 0 {
			t.Errorf("placeholder problem without line: %v", p)
		}
		paths = append(paths, p.Path)
	}
	want := []string{
		"homeserver.url", "homeserver.domain", "authorization.users[0]",
		`authorization.caller_ids["@alice:example.org"]`,
		"sip.trunks[0].host", "sip.trunks[0].username", "sip.trunks[0].password",
	}
	if !slices.Equal(paths, want) {
		t.Errorf("placeholder paths = %v, want %v", paths, want)
	}
	if p, ok := findProblem(problems, "sip.trunks[0].password", "placeholder"); !ok || strings.Contains(p.Message, "CHANGE_ME") {
		t.Errorf("password placeholder problem missing or shows the value: %v", p)
	}
	if p, _ := findProblem(problems, "sip.trunks[0].username", ""); !strings.Contains(p.Message, "CHANGE_ME") {
		t.Errorf("username placeholder problem does not show the value: %v", p)
	}
}

func TestExampleDocumentsEveryKey(t *testing.T) {
	// Every key of the schema appears in the example, preceded by a comment.
	lines := strings.Split(string(Example()), "\n")
	keys := []string{}
	cfg, err := Decode(Example(), "")
	if err != nil {
		t.Fatal(err)
	}
	for path := range cfg.lines {
		keys = append(keys, path)
	}
	for _, want := range []string{
		"homeserver.url", "homeserver.domain", "appservice.registration", "appservice.listen",
		"appservice.bot_localpart", "appservice.bot_displayname", "appservice.ghost_localpart_template",
		"appservice.ghost_displayname_template", "phone.default_country_code", "authorization.users",
		"authorization.numbers", "authorization.deny_numbers", "authorization.max_calls_per_user",
		"authorization.max_calls", "authorization.caller_ids", "authorization.default_caller_id",
		"sip.listen", "sip.user_agent", "sip.trunks", "sip.trunks[0].name", "sip.trunks[0].host",
		"sip.trunks[0].port", "sip.trunks[0].transport", "sip.trunks[0].username", "sip.trunks[0].password",
		"sip.trunks[0].from_user", "sip.trunks[0].from_domain", "sip.trunks[0].number_format",
		"sip.trunks[0].national_prefix", "sip.trunks[0].numbers", "sip.trunks[0].setup_timeout",
		"sip.trunks[0].ring_timeout", "media.rtp_listen_ip", "media.rtp_advertise_ip", "media.rtp_port_min",
		"media.rtp_port_max", "media.codecs", "media.opus_complexity", "media.opus_bitrate",
		"webrtc.ice_servers", "webrtc.udp_port_min", "webrtc.udp_port_max", "webrtc.nat_1to1_ips",
		"webrtc.include_loopback_candidates", "webrtc.ice_gather_timeout", "logging.level",
		"logging.format", "metrics.listen",
	} {
		line, ok := cfg.lines[want]
		if !ok {
			t.Errorf("example lacks %s", want)
			continue
		}
		// The max ports share the comment above the min ports.
		prev := strings.TrimSpace(lines[line-2])
		if want != "media.rtp_port_max" && want != "webrtc.udp_port_max" && !strings.HasPrefix(prev, "#") && !strings.HasPrefix(prev, "- #") {
			t.Errorf("%s (line %d) has no comment above it", want, line)
		}
	}
	if len(keys) < 48 {
		t.Errorf("only %d keys recorded", len(keys))
	}
}

func TestExampleIsACopy(t *testing.T) {
	a := Example()
	a[0] = 'X'
	if Example()[0] == 'X' {
		t.Error("Example returns the embedded slice itself")
	}
}

func TestSetValueKeepsEverythingElse(t *testing.T) {
	doc := "# head\na:\n  b: old   # comment b\n  c: [x, \"y, z\"]  # comment c\n  d: 'it''s'\n  e: \"q\\\"x\" # e\nlist:\n  - k: v # first\n"
	cases := []struct {
		path  string
		value any
		line  int
		want  string
	}{
		{"a.b", "new", 3, "  b: new   # comment b"},
		{"a.b", "longer-value", 3, "  b: longer-value # comment b"},
		{"a.c", []string{"@*:gw.test", "plain"}, 4, `  c: ["@*:gw.test", plain] # comment c`},
		{"a.c", []string{}, 4, "  c: []           # comment c"},
		{"a.d", 42, 5, "  d: 42"},
		{"a.e", true, 6, "  e: true   # e"},
		{"list[0].k", map[string]string{"@a:gw.test": "+1555"}, 8, `  - k: {"@a:gw.test": "+1555"} # first`},
		{"a.b", "", 3, `  b: ""    # comment b`},
		{"a.b", "1", 3, `  b: "1"   # comment b`},
	}
	orig := strings.Split(doc, "\n")
	for _, c := range cases {
		out, err := SetValue([]byte(doc), c.path, c.value)
		if err != nil {
			t.Fatalf("SetValue(%s): %v", c.path, err)
		}
		got := strings.Split(string(out), "\n")
		if len(got) != len(orig) {
			t.Fatalf("%s: line count changed:\n%s", c.path, out)
		}
		for i := range got {
			switch {
			case i == c.line-1 && got[i] != c.want:
				t.Errorf("%s: line %d = %q, want %q", c.path, c.line, got[i], c.want)
			case i != c.line-1 && got[i] != orig[i]:
				t.Errorf("%s: line %d changed to %q", c.path, i+1, got[i])
			}
		}
	}
}

func TestSetValueErrors(t *testing.T) {
	doc := []byte("a:\n  b:\n    - x\n  c: 1\n")
	for _, path := range []string{"a.b", "a.z", "a.c.d", "a.b[5]", "a[0]"} {
		if _, err := SetValue(doc, path, "v"); err == nil {
			t.Errorf("SetValue(%s) did not fail", path)
		}
	}
	if _, err := SetValue(doc, "a.c", 1.5); err == nil {
		t.Error("unsupported value type accepted")
	}
}

func TestSetValueOnExampleDecodes(t *testing.T) {
	doc := Example()
	var err error
	for _, e := range []struct {
		path  string
		value any
	}{
		{"homeserver.url", "https://hs.gw.test"},
		{"homeserver.domain", "gw.test"},
		{"authorization.users", []string{"@alice:gw.test", "@*:staff.gw.test"}},
		{"authorization.caller_ids", map[string]string{"@alice:gw.test": "+15550100100"}},
		{"sip.trunks[0].host", "10.0.0.1"},
		{"sip.trunks[0].port", 5080},
		{"sip.trunks[0].username", ""},
		{"sip.trunks[0].password", ""},
	} {
		if doc, err = SetValue(doc, e.path, e.value); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := Parse(doc, "")
	if err != nil {
		t.Fatalf("edited example invalid: %v", err)
	}
	if cfg.Homeserver.URL != "https://hs.gw.test" || cfg.SIP.Trunks[0].Port != 5080 ||
		!slices.Equal(cfg.Authorization.Users, []string{"@alice:gw.test", "@*:staff.gw.test"}) ||
		cfg.Authorization.CallerIDs["@alice:gw.test"] != "+15550100100" {
		t.Errorf("edited values not decoded: %+v", cfg)
	}
	if n := strings.Count(string(doc), "\n#") + strings.Count(string(doc), "  #"); n != strings.Count(string(Example()), "\n#")+strings.Count(string(Example()), "  #") {
		t.Error("comments lost")
	}
}
