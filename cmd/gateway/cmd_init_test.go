package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"maunium.net/go/mautrix/appservice"

	"github.com/matrix-gateway/gateway/configs"
)

// initInto runs `gateway init` into dir with extra flags.
func initInto(t *testing.T, dir string, extra ...string) (int, string, string) {
	t.Helper()
	args := append([]string{"init", "--dir", dir, "--homeserver-url", "http://127.0.0.1:8008", "--domain", "gw.test"}, extra...)
	return runCLI(args...)
}

func TestInitThenCheckPasses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	code, stdout, stderr := initInto(t, dir)
	if code != 0 {
		t.Fatalf("init exit %d: %s", code, stderr)
	}
	cfgPath, regPath := filepath.Join(dir, "gateway.yaml"), filepath.Join(dir, "registration.yaml")
	for _, want := range []string{"wrote " + cfgPath, "wrote " + regPath, "app_service_config_files", "config_files", "gateway check -c " + cfgPath, "gateway run -c " + cfgPath} {
		if !strings.Contains(stdout, want) {
			t.Errorf("init output lacks %q:\n%s", want, stdout)
		}
	}
	for _, p := range []string{cfgPath, regPath} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, st.Mode().Perm())
		}
	}
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{
		"# Client-server API base URL of the homeserver", "url: http://127.0.0.1:8008", "domain: gw.test",
		`users: ["@*:gw.test"]`, "host: 127.0.0.1", "caller_ids: {}",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("gateway.yaml lacks %q", want)
		}
	}
	if strings.Count(text, "#") < strings.Count(string(configs.Example()), "#")-2 {
		t.Error("comments of the example were lost")
	}

	reg, err := appservice.LoadRegistration(regPath)
	if err != nil {
		t.Fatal(err)
	}
	if reg.ID == "" || reg.URL != "http://127.0.0.1:29330" || reg.SenderLocalpart != "pstn" || len(reg.AppToken) < 32 || len(reg.ServerToken) < 32 {
		t.Errorf("registration = %+v", reg)
	}
	if reg.RateLimited == nil || *reg.RateLimited {
		t.Error("rate_limited not false")
	}
	if !slices.Equal(reg.Protocols, []string{"m.protocol.pstn", "im.vector.protocol.pstn"}) {
		t.Errorf("protocols = %v", reg.Protocols)
	}
	var matchedGhost, matchedBot bool
	for _, ns := range reg.Namespaces.UserIDs {
		re := regexp.MustCompile(ns.Regex)
		matchedGhost = matchedGhost || (ns.Exclusive && re.MatchString("@pstn_15550100100:gw.test"))
		matchedBot = matchedBot || (ns.Exclusive && re.MatchString("@pstn:gw.test"))
		if re.MatchString("@alice:gw.test") {
			t.Errorf("namespace %s claims @alice", ns.Regex)
		}
	}
	if !matchedGhost || !matchedBot {
		t.Errorf("namespaces %+v do not cover ghosts and bot", reg.Namespaces.UserIDs)
	}

	code, stdout, stderr = runCLI("check", "-c", cfgPath)
	if code != 0 || !strings.Contains(stdout, "config OK") {
		t.Errorf("check of init's output: exit %d\n%s%s", code, stdout, stderr)
	}
}

func TestInitOptions(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := initInto(t, dir,
		"--listen", "0.0.0.0:29400", "--trunk", "pbx.gw.test:5080", "--default-country-code", "44",
		"--allow-user", "@alice:gw.test", "--allow-user", "@*:staff.gw.test")
	if code != 0 {
		t.Fatalf("init exit %d: %s", code, stderr)
	}
	cfg, err := configs.Load(filepath.Join(dir, "gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AppService.Listen != "0.0.0.0:29400" || cfg.SIP.Trunks[0].Host != "pbx.gw.test" || cfg.SIP.Trunks[0].Port != 5080 ||
		cfg.Phone.DefaultCountryCode != "44" {
		t.Errorf("values not written: %+v %+v %+v", cfg.AppService, cfg.SIP.Trunks[0], cfg.Phone)
	}
	if !slices.Equal(cfg.Authorization.Users, []string{"@alice:gw.test", "@*:staff.gw.test"}) ||
		!slices.Equal(cfg.Authorization.Numbers, []string{"+44*"}) || len(cfg.Authorization.DenyNumbers) != 0 {
		t.Errorf("authorization = %+v", cfg.Authorization)
	}
	reg, err := cfg.LoadRegistration()
	if err != nil {
		t.Fatal(err)
	}
	if reg.URL != "http://127.0.0.1:29400" {
		t.Errorf("registration url = %s", reg.URL)
	}
}

func TestInitRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := initInto(t, dir); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	regPath := filepath.Join(dir, "registration.yaml")
	before, _ := os.ReadFile(regPath)
	code, _, stderr := initInto(t, dir)
	if code != 1 || !strings.Contains(stderr, "refusing to overwrite") || !strings.Contains(stderr, "--force") {
		t.Errorf("second init: exit %d, %s", code, stderr)
	}
	if after, _ := os.ReadFile(regPath); string(after) != string(before) {
		t.Error("registration changed without --force")
	}
	// Only one of the two files existing is enough to refuse.
	if err := os.Remove(filepath.Join(dir, "gateway.yaml")); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := initInto(t, dir); code != 1 {
		t.Errorf("init over an existing registration: exit %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "gateway.yaml")); err == nil {
		t.Error("gateway.yaml written although init refused")
	}
	if err := os.Chmod(regPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := initInto(t, dir, "--force"); code != 0 {
		t.Fatalf("init --force: %s", stderr)
	}
	after, _ := os.ReadFile(regPath)
	if string(after) == string(before) {
		t.Error("--force did not write fresh tokens")
	}
	if st, _ := os.Stat(regPath); st.Mode().Perm() != 0o600 {
		t.Errorf("overwritten file mode %v", st.Mode().Perm())
	}
}

func TestInitRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCLI("init", "--dir", dir, "--domain", "gw.test"); code != 2 || !strings.Contains(stderr, "--homeserver-url") {
		t.Errorf("missing --homeserver-url: exit %d %s", code, stderr)
	}
	code, _, stderr := runCLI("init", "--dir", dir, "--homeserver-url", "ftp://hs", "--domain", "bad domain", "--trunk", "x:70000")
	if code != 1 {
		t.Fatalf("bad values: exit %d", code)
	}
	for _, want := range []string{"homeserver.url", "homeserver.domain", "sip.trunks[0].port"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("bad values: %s not reported:\n%s", want, stderr)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files written despite bad values: %v", entries)
	}
	if code, _, stderr := initInto(t, dir, "--appservice-url", "gw:29330"); code != 1 || !strings.Contains(stderr, "--appservice-url") {
		t.Errorf("bad --appservice-url: exit %d %s", code, stderr)
	}
}

func TestSplitTrunkAndURLForListen(t *testing.T) {
	for in, want := range map[string]string{"h.test": "h.test:5060", "h.test:5080": "h.test:5080", "[::1]:5070": "::1:5070", "::1": "::1:5060"} {
		h, p, err := splitTrunk(in)
		if err != nil || h+":"+strconv.Itoa(p) != want {
			t.Errorf("splitTrunk(%q) = %s %d %v", in, h, p, err)
		}
	}
	if _, _, err := splitTrunk("h:x"); err == nil {
		t.Error("non-numeric port accepted")
	}
	for in, want := range map[string]string{"127.0.0.1:29330": "http://127.0.0.1:29330", "0.0.0.0:1": "http://127.0.0.1:1", ":2": "http://127.0.0.1:2", "[::1]:3": "http://[::1]:3", "gw.test:4": "http://gw.test:4"} {
		if got := urlForListen(in); got != want {
			t.Errorf("urlForListen(%q) = %q, want %q", in, got, want)
		}
	}
}
