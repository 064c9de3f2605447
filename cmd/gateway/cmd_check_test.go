package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matrix-gateway/gateway/configs"
)

// writeFile writes a test file and fails the test on error.
func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCheckReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := initInto(t, dir); code != 0 {
		t.Fatal(stderr)
	}
	cfgPath := filepath.Join(dir, "gateway.yaml")
	data, _ := os.ReadFile(cfgPath)
	text := string(data)
	for old, repl := range map[string]string{
		"      port: 5060\n":        "      port: 70000\n",
		"      transport: udp\n":    "      transport: udp\n      hots: x\n",
		"  max_calls: 100\n":        "  max_calls: lots\n",
		"      password: \"\"\n":    "      password: s3cret-pw\n",
		"  level: info\n":           "  level: loud\n",
		"  ring_timeout: 60s\n":     "  ring_timeout: 60\n",
		"  rtp_port_min: 20000\n":   "  rtp_port_min: 20001\n",
		"  opus_complexity: 5\n":    "  opus_complexity: 11\n",
		"  default_caller_id: \"\"": "  default_caller_id: \"555\"",
	} {
		if !strings.Contains(text, old) {
			t.Fatalf("init output lacks %q", old)
		}
		text = strings.Replace(text, old, repl, 1)
	}
	writeFile(t, cfgPath, text)
	code, _, stderr := runCLI("check", "-c", cfgPath)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	want := []string{
		"sip.trunks[0].port: must be between 1 and 65535, got 70000 (line ",
		"sip.trunks[0].hots: unknown key",
		"authorization.max_calls: must be an integer, got a string \"lots\" (line ",
		"logging.level: must be one of debug, info, warn, error",
		"sip.trunks[0].ring_timeout: must be a duration with a unit",
		"media.rtp_port_min: must be even",
		"media.opus_complexity: must be between 0 and 10",
		"authorization.default_caller_id: must be empty or an E.164 number",
		"sip.trunks[0].username: required when a password is set",
	}
	for _, w := range want {
		found := 0
		for _, l := range lines {
			if strings.HasPrefix(l, w) {
				found++
			}
		}
		if found != 1 {
			t.Errorf("%d lines start with %q:\n%s", found, w, stderr)
		}
	}
	if last := lines[len(lines)-1]; last != cfgPath+": 9 problems" {
		t.Errorf("summary line = %q", last)
	}
	if strings.Contains(stderr, "s3cret-pw") {
		t.Error("password printed")
	}
}

func TestCheckExampleReportsPlaceholders(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "gateway.yaml")
	writeFile(t, cfgPath, string(configs.Example()))
	code, _, stderr := runCLI("check", "-c", cfgPath)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	for _, w := range []string{"homeserver.url:", "homeserver.domain:", "sip.trunks[0].host:", "sip.trunks[0].password: still set to a placeholder", "appservice.registration: cannot load the registration file"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("%q not reported:\n%s", w, stderr)
		}
	}
	if strings.Contains(stderr, "password: \"CHANGE_ME") {
		t.Error("password value printed")
	}
}

func TestCheckRegistrationMismatch(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := initInto(t, dir); code != 0 {
		t.Fatal(stderr)
	}
	cfgPath := filepath.Join(dir, "gateway.yaml")
	data, _ := os.ReadFile(cfgPath)
	writeFile(t, cfgPath, strings.Replace(string(data), "bot_localpart: pstn", "bot_localpart: phone", 1))
	code, _, stderr := runCLI("check", "-c", cfgPath)
	if code != 1 || !strings.Contains(stderr, `appservice.registration: sender_localpart is "pstn" but appservice.bot_localpart is "phone"`) {
		t.Errorf("exit %d:\n%s", code, stderr)
	}
}

func TestCheckNotesAndMissingFile(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := initInto(t, dir); code != 0 {
		t.Fatal(stderr)
	}
	cfgPath := filepath.Join(dir, "gateway.yaml")
	data, _ := os.ReadFile(cfgPath)
	writeFile(t, cfgPath, strings.Replace(string(data), `users: ["@*:gw.test"]`, "users: []", 1))
	code, stdout, _ := runCLI("check", "-c", cfgPath)
	if code != 0 || !strings.Contains(stdout, "note: authorization.users is empty: nobody may dial out") || !strings.Contains(stdout, "config OK") {
		t.Errorf("exit %d:\n%s", code, stdout)
	}
	code, _, stderr := runCLI("check", "-c", filepath.Join(dir, "nope.yaml"))
	if code != 1 || !strings.Contains(stderr, "nope.yaml") {
		t.Errorf("missing file: exit %d %s", code, stderr)
	}
}
