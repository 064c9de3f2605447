package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// runCLI runs the command line in-process and returns exit code and output.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = realMain(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	cases := []struct {
		args     []string
		code     int
		inStdout bool
	}{
		{nil, 2, false},
		{[]string{"frobnicate"}, 2, false},
		{[]string{"help"}, 0, true},
		{[]string{"-h"}, 0, true},
	}
	for _, c := range cases {
		code, stdout, stderr := runCLI(c.args...)
		if code != c.code {
			t.Errorf("%v: exit %d, want %d", c.args, code, c.code)
		}
		out := stderr
		if c.inStdout {
			out = stdout
		}
		for _, cmd := range []string{"init", "check", "run", "version"} {
			if !strings.Contains(out, "  "+cmd+" ") {
				t.Errorf("%v: usage lacks %s:\n%s", c.args, cmd, out)
			}
		}
	}
	if _, _, stderr := runCLI("frobnicate"); !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command not named: %s", stderr)
	}
}

func TestSubcommandFlags(t *testing.T) {
	for _, args := range [][]string{{"check", "-bogus"}, {"version", "extra"}, {"init", "--nope"}} {
		if code, _, _ := runCLI(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	for _, cmd := range []string{"check", "init", "version"} {
		code, _, stderr := runCLI(cmd, "-h")
		if code != 0 || !strings.Contains(stderr, "Usage: gateway "+cmd) {
			t.Errorf("%s -h: exit %d, output %q", cmd, code, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	old := version
	version = "v9.8.7-test"
	defer func() { version = old }()
	code, stdout, _ := runCLI("version")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stdout, "gateway v9.8.7-test\n") || !strings.Contains(stdout, "go: "+runtime.Version()+"\n") {
		t.Errorf("version output:\n%s", stdout)
	}
}
