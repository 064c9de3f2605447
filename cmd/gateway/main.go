// Command gateway is the Matrix <-> phone gateway: `gateway init` writes a
// configuration and appservice registration, `gateway check` validates them,
// `gateway run` runs the gateway and `gateway version` tells what was built.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `Usage: gateway <command> [flags]

Commands:
  init      write gateway.yaml and registration.yaml into a directory
  check     validate a configuration file and its registration
  run       run the gateway
  cdr       print or export call records (table, CSV, JSON)
  version   print version, Go version and commit
  turn-credentials  print TURN credentials for a Matrix user (embedded TURN server)
  dial      place a call through the dialler D-Bus API (modem backend): dial NUMBER
  calls     list the dialler's live calls
  hangup    end a dialler call: hangup ID
  load      media load generator (pure-media mode): N bridged calls, CPU, loss, delay

Run "gateway <command> -h" for the flags of a command.
`

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain dispatches to a subcommand and returns the exit code.
func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "init":
		return initCmd(rest, stdout, stderr)
	case "check":
		return checkCmd(rest, stdout, stderr)
	case "run":
		return runCmd(rest, stdout, stderr)
	case "version":
		return versionCmd(rest, stdout, stderr)
	case "turn-credentials":
		return turnCredentialsCmd(rest, stdout, stderr)
	case "cdr":
		return cdrCmd(rest, stdout, stderr)
	case "dial":
		return dialCmd(rest, stdout, stderr)
	case "calls":
		return callsCmd(rest, stdout, stderr)
	case "hangup":
		return hangupCmd(rest, stdout, stderr)
	case "load":
		return loadCmd(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "gateway: unknown command %q\n\n%s", cmd, usage)
	return 2
}

// parseFlags parses a subcommand's flags; it returns an exit code >= 0 when
// the command must stop (help asked: 0, bad flags: 2), or -1 to go on.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) int {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gateway %s: unexpected arguments: %v\n", fs.Name(), fs.Args())
		fs.Usage()
		return 2
	}
	return -1
}
