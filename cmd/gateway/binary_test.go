package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestBinaryCheckExitCodes builds the real binary and checks the exit codes
// of `gateway check` and of a bad command line.
func TestBinaryCheckExitCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "gateway")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	build := exec.Command(goTool, "build", "-o", bin, "-ldflags", "-X main.version=v0.0.0-bintest", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	exitCode := func(args ...string) (int, string) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var exitErr *exec.ExitError
		switch {
		case err == nil:
			return 0, string(out)
		case errors.As(err, &exitErr):
			return exitErr.ExitCode(), string(out)
		}
		t.Fatalf("run %v: %v", args, err)
		return -1, ""
	}
	if code, out := exitCode("init", "--dir", dir, "--homeserver-url", "https://hs.gw.test", "--domain", "gw.test"); code != 0 {
		t.Fatalf("init: exit %d\n%s", code, out)
	}
	cfgPath := filepath.Join(dir, "gateway.yaml")
	if code, out := exitCode("check", "-c", cfgPath); code != 0 || !strings.Contains(out, "config OK") {
		t.Errorf("check good config: exit %d\n%s", code, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	data, _ := os.ReadFile(cfgPath)
	if err := os.WriteFile(bad, []byte(strings.Replace(string(data), "port: 5060", "port: 70000", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := exitCode("check", "-c", bad); code != 1 || !strings.Contains(out, "sip.trunks[0].port: must be between 1 and 65535, got 70000") {
		t.Errorf("check bad config: exit %d\n%s", code, out)
	}
	if code, _ := exitCode("check", "-c", filepath.Join(dir, "missing.yaml")); code != 1 {
		t.Errorf("check missing file: exit %d", code)
	}
	if code, _ := exitCode(); code != 2 {
		t.Errorf("no command: exit %d", code)
	}
	if code, out := exitCode("version"); code != 0 || !strings.Contains(out, "gateway v0.0.0-bintest") {
		t.Errorf("version: exit %d\n%s", code, out)
	}
}
