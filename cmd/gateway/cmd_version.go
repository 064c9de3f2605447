package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

// versionCmd prints the gateway version, the Go version and the VCS commit.
func versionCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), "Usage: gateway version") }
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	fmt.Fprintf(stdout, "gateway %s\n", version)
	fmt.Fprintf(stdout, "go: %s\n", runtime.Version())
	if commit := buildCommit(); commit != "" {
		fmt.Fprintf(stdout, "commit: %s\n", commit)
	}
	return 0
}

// buildCommit returns vcs.revision from the build info, with " (modified)"
// when the tree was dirty; "" when the binary carries no VCS stamp.
func buildCommit() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" && modified == "true" {
		rev += " (modified)"
	}
	return rev
}
