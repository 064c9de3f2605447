package configs

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix/appservice"
)

func TestNewRegistrationLoadsWithMautrix(t *testing.T) {
	cfg := mustValid(t)
	reg := cfg.NewRegistration("http://127.0.0.1:29330")
	path := filepath.Join(t.TempDir(), "registration.yaml")
	if err := reg.Save(path); err != nil {
		t.Fatal(err)
	}
	loaded, err := appservice.LoadRegistration(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.ID != RegistrationID || loaded.URL != "http://127.0.0.1:29330" || loaded.SenderLocalpart != "pstn" {
		t.Errorf("registration = %+v", loaded)
	}
	if len(loaded.AppToken) < 32 || len(loaded.ServerToken) < 32 || loaded.AppToken == loaded.ServerToken {
		t.Error("tokens missing, short or equal")
	}
	if loaded.RateLimited == nil || *loaded.RateLimited {
		t.Error("rate_limited is not false")
	}
	if !slices.Equal(loaded.Protocols, []string{"m.protocol.pstn", "im.vector.protocol.pstn"}) {
		t.Errorf("protocols = %v", loaded.Protocols)
	}
	users := loaded.Namespaces.UserIDs
	if len(users) != 2 {
		t.Fatalf("user namespaces = %+v", users)
	}
	for _, ns := range users {
		if !ns.Exclusive {
			t.Errorf("namespace %s not exclusive", ns.Regex)
		}
	}
	if !regexp.MustCompile(users[0].Regex).MatchString(string(cfg.GhostUserID("+15550100100"))) ||
		!regexp.MustCompile(users[1].Regex).MatchString(string(cfg.BotUserID())) {
		t.Errorf("namespaces do not cover ghosts and bot: %+v", users)
	}
	if p := cfg.CheckRegistration(loaded); len(p) != 0 {
		t.Errorf("fresh registration has problems: %v", p)
	}
	other := cfg.NewRegistration("http://127.0.0.1:29330")
	if other.AppToken == reg.AppToken || other.ServerToken == reg.ServerToken {
		t.Error("tokens are not fresh")
	}
}

func TestCheckRegistrationProblems(t *testing.T) {
	cfg := mustValid(t)
	cases := []struct {
		name   string
		mutate func(r *appservice.Registration)
		msg    string
	}{
		{"no as_token", func(r *appservice.Registration) { r.AppToken = "" }, "as_token is empty"},
		{"no hs_token", func(r *appservice.Registration) { r.ServerToken = "" }, "hs_token is empty"},
		{"placeholder token", func(r *appservice.Registration) { r.ServerToken = "CHANGE_ME" }, "hs_token is still a placeholder"},
		{"same tokens", func(r *appservice.Registration) { r.ServerToken = r.AppToken }, "must differ"},
		{"no id", func(r *appservice.Registration) { r.ID = "" }, "id is empty"},
		{"no url", func(r *appservice.Registration) { r.URL = "" }, "url is empty"},
		{"sender", func(r *appservice.Registration) { r.SenderLocalpart = "bot" }, `sender_localpart is "bot"`},
		{"ghost namespace", func(r *appservice.Registration) { r.Namespaces.UserIDs = r.Namespaces.UserIDs[1:] }, "ghost users"},
		{"bot namespace", func(r *appservice.Registration) { r.Namespaces.UserIDs = r.Namespaces.UserIDs[:1] }, "the bot"},
		{"not exclusive", func(r *appservice.Registration) { r.Namespaces.UserIDs[0].Exclusive = false }, "ghost users"},
		{"protocols", func(r *appservice.Registration) { r.Protocols = nil }, "protocols"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := cfg.NewRegistration("http://127.0.0.1:29330")
			c.mutate(reg)
			problems := cfg.CheckRegistration(reg)
			p, ok := findProblem(problems, "appservice.registration", c.msg)
			if !ok {
				t.Fatalf("want %q, got %v", c.msg, problems)
			}
			if reg.AppToken != "" && strings.Contains(p.Message, reg.AppToken) {
				t.Error("problem contains a token")
			}
		})
	}
}

func TestLoadRegistration(t *testing.T) {
	dir := t.TempDir()
	cfg, err := Parse([]byte(validYAML), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.LoadRegistration(); err == nil || !strings.HasPrefix(err.Error(), "configs: ") {
		t.Errorf("missing registration: %v", err)
	}
	path := filepath.Join(dir, "registration.yaml")
	if err := os.WriteFile(path, []byte("id: x\nurl: http://x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRegistration(path); err == nil || !strings.Contains(err.Error(), "as_token and hs_token are required") {
		t.Errorf("registration without tokens: %v", err)
	}
	reg := cfg.NewRegistration("http://127.0.0.1:29330")
	reg.SenderLocalpart = "other"
	if err := reg.Save(path); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.LoadRegistration(); err == nil || !strings.Contains(err.Error(), "sender_localpart") {
		t.Errorf("mismatching registration: %v", err)
	}
	reg.SenderLocalpart = "pstn"
	if err := reg.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := cfg.LoadRegistration()
	if err != nil || got.AppToken != reg.AppToken {
		t.Errorf("LoadRegistration = %v, %v", got, err)
	}
}
