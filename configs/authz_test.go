package configs

import "testing"

func TestUserAllowedAndTrunkFor(t *testing.T) {
	cfg := mustValid(t)
	if !cfg.UserAllowed("@alice:gateway.test") || cfg.UserAllowed("@alice:other.test") {
		t.Error("UserAllowed does not follow authorization.users")
	}
	cfg.Authorization.Users = nil
	if cfg.UserAllowed("@alice:gateway.test") {
		t.Error("empty users list allows someone")
	}
	uk := TrunkDefaults()
	uk.Name, uk.Host, uk.Numbers = "uk", "127.0.0.2", []string{"+44*"}
	all := TrunkDefaults()
	all.Name, all.Host = "all", "127.0.0.3"
	cfg.SIP.Trunks = []Trunk{uk, all}
	if got := cfg.TrunkFor("+442079460000"); got == nil || got.Name != "uk" {
		t.Errorf("TrunkFor(+44...) = %v", got)
	}
	if got := cfg.TrunkFor("+15550100100"); got == nil || got.Name != "all" {
		t.Errorf("TrunkFor(+1...) = %v", got)
	}
	cfg.SIP.Trunks = []Trunk{uk}
	if got := cfg.TrunkFor("+15550100100"); got != nil {
		t.Errorf("TrunkFor with no serving trunk = %v", got.Name)
	}
}

func TestCallerIDAndTrunkFormatting(t *testing.T) {
	cfg := mustValid(t)
	if got := cfg.CallerIDFor("@alice:gateway.test"); got != "+15550100100" {
		t.Errorf("CallerIDFor(alice) = %q", got)
	}
	if got := cfg.CallerIDFor("@bob:gateway.test"); got != "" {
		t.Errorf("CallerIDFor(bob) = %q", got)
	}
	cfg.Authorization.DefaultCallerID = "+15550100199"
	if got := cfg.CallerIDFor("@bob:gateway.test"); got != "+15550100199" {
		t.Errorf("CallerIDFor(bob) with default = %q", got)
	}

	tr := TrunkDefaults()
	tr.Host = "sip.gw.test"
	cases := []struct{ format, prefix, in, cc, want string }{
		{"e164", "0", "+442079460000", "44", "+442079460000"},
		{"e164_no_plus", "0", "+442079460000", "44", "442079460000"},
		{"national", "0", "+442079460000", "44", "02079460000"},
		{"national", "", "+15550100100", "1", "5550100100"},
		{"national", "0", "+15550100100", "44", "+15550100100"},
	}
	for _, c := range cases {
		tr.NumberFormat, tr.NationalPrefix = c.format, c.prefix
		if got := tr.FormatDestination(c.in, c.cc); got != c.want {
			t.Errorf("%s/%q: FormatDestination(%s) = %q, want %q", c.format, c.prefix, c.in, got, c.want)
		}
	}
	tr.NumberFormat = "e164_no_plus"
	if got := tr.FromUserFor("+15550100100", "alice", "1"); got != "15550100100" {
		t.Errorf("FromUserFor with caller ID = %q", got)
	}
	if got := tr.FromUserFor("", "alice", "1"); got != "alice" {
		t.Errorf("FromUserFor without caller ID = %q", got)
	}
	tr.FromUser = "{localpart}.{caller_id}"
	if got := tr.FromUserFor("+15550100100", "alice", "1"); got != "alice.15550100100" {
		t.Errorf("FromUserFor template = %q", got)
	}
	if tr.FromHost() != "sip.gw.test" {
		t.Errorf("FromHost = %q", tr.FromHost())
	}
	tr.FromDomain = "pbx.gw.test"
	if tr.FromHost() != "pbx.gw.test" {
		t.Errorf("FromHost with from_domain = %q", tr.FromHost())
	}
}
