package configs

import (
	"regexp"
	"testing"

	"maunium.net/go/mautrix/id"
)

func TestGhostUsers(t *testing.T) {
	cfg := mustValid(t)
	if got := cfg.GhostLocalpart("+15550100100"); got != "pstn_15550100100" {
		t.Errorf("GhostLocalpart = %q", got)
	}
	if got := cfg.GhostUserID("+15550100100"); got != "@pstn_15550100100:gateway.test" {
		t.Errorf("GhostUserID = %q", got)
	}
	if got := cfg.BotUserID(); got != "@pstn:gateway.test" {
		t.Errorf("BotUserID = %q", got)
	}
	if got := cfg.GhostUserRegex(); got != `^@pstn_[0-9]+:gateway\.test$` {
		t.Errorf("GhostUserRegex = %q", got)
	}
	ghostRe := regexp.MustCompile(cfg.GhostUserRegex())
	botRe := regexp.MustCompile(cfg.BotUserRegex())
	cases := []struct {
		user         string
		ghost, bot   bool
		number       string
		numberParsed bool
	}{
		{"@pstn_15550100100:gateway.test", true, false, "+15550100100", true},
		{"@pstn_44:gateway.test", true, false, "+44", true},
		{"@pstn:gateway.test", false, true, "", false},
		{"@pstn_:gateway.test", false, false, "", false},
		{"@pstn_123x:gateway.test", false, false, "", false},
		{"@pstn_1555:gatewayXtest", false, false, "", false},
		{"@pstn_1555:gateway.test.evil", false, false, "", false},
		{"@xpstn_1555:gateway.test", false, false, "", false},
		{"@pstn_1234567890123456:gateway.test", true, false, "", false},
		{"@alice:gateway.test", false, false, "", false},
	}
	for _, c := range cases {
		if got := ghostRe.MatchString(c.user); got != c.ghost {
			t.Errorf("ghost regex on %s = %v", c.user, got)
		}
		if got := botRe.MatchString(c.user); got != c.bot {
			t.Errorf("bot regex on %s = %v", c.user, got)
		}
		n, ok := cfg.NumberFromGhost(id.UserID(c.user))
		if ok != c.numberParsed || n != c.number {
			t.Errorf("NumberFromGhost(%s) = %q %v, want %q %v", c.user, n, ok, c.number, c.numberParsed)
		}
	}
}

func TestGhostTemplateWithSuffixRoundTrips(t *testing.T) {
	cfg := mustValid(t)
	cfg.AppService.GhostLocalpartTemplate = "tel.{number}+gw"
	uid := cfg.GhostUserID("+442079460000")
	if uid != "@tel.442079460000+gw:gateway.test" {
		t.Fatalf("GhostUserID = %s", uid)
	}
	if !regexp.MustCompile(cfg.GhostUserRegex()).MatchString(string(uid)) {
		t.Errorf("regex %s does not match %s", cfg.GhostUserRegex(), uid)
	}
	if regexp.MustCompile(cfg.GhostUserRegex()).MatchString("@telX442079460000+gw:gateway.test") {
		t.Error("'.' in the template is not escaped")
	}
	if n, ok := cfg.NumberFromGhost(uid); !ok || n != "+442079460000" {
		t.Errorf("NumberFromGhost = %q %v", n, ok)
	}
}

func TestGhostDisplayname(t *testing.T) {
	cfg := mustValid(t)
	if got := cfg.GhostDisplayname("+15550100100"); got != "+1 555 010 0100" {
		t.Errorf("default template = %q", got)
	}
	cfg.AppService.GhostDisplaynameTemplate = "Phone {number} ({formatted})"
	cfg.Phone.DefaultCountryCode = "44"
	if got := cfg.GhostDisplayname("+442079460000"); got != "Phone 442079460000 (+44 207 946 0000)" {
		t.Errorf("custom template = %q", got)
	}
}
