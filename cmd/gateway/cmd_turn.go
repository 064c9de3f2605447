package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/turn"
)

// turnCredentialsCmd prints TURN REST credentials for a Matrix user, as the
// homeserver's /voip/turnServer would, from the configured shared secret.
func turnCredentialsCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("turn-credentials", flag.ContinueOnError)
	path := fs.String("c", "gateway.yaml", "configuration file")
	user := fs.String("user", "", "Matrix user `ID` the credentials are for, like @alice:example.org (required)")
	ttl := fs.Duration("ttl", 0, "credential lifetime (default turn.credential_ttl)")
	asJSON := fs.Bool("json", false, "print the /voip/turnServer JSON answer instead of lines")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: gateway turn-credentials --user @alice:example.org [-c FILE] [--ttl 24h] [--json]\n\nPrints a TURN username, password and URIs for the embedded TURN server.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if !strings.HasPrefix(*user, "@") || !strings.Contains(*user, ":") {
		fmt.Fprintln(stderr, "gateway turn-credentials: --user must be a Matrix user ID like @alice:example.org")
		return 2
	}
	cfg, err := configs.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "gateway turn-credentials: %v\n", err)
		return 1
	}
	t := cfg.TURN
	if t.SharedSecret == "" {
		fmt.Fprintln(stderr, "gateway turn-credentials: turn.shared_secret is not set")
		return 1
	}
	if !t.Enabled {
		fmt.Fprintln(stderr, "gateway turn-credentials: warning: turn.enabled is false, the embedded server is not running")
	}
	life := t.CredentialTTL
	if *ttl > 0 {
		life = *ttl
	}
	host, err := turnURIHost(t)
	if err != nil {
		fmt.Fprintf(stderr, "gateway turn-credentials: %v\n", err)
		return 1
	}
	username, password := turn.RESTCredentials(t.SharedSecret.Reveal(), *user, life, time.Now())
	uris := turn.URIs(host, t.Port, t.TCP, t.TLSPort)
	if *asJSON {
		out, _ := json.MarshalIndent(map[string]any{"username": username, "password": password, "uris": uris, "ttl": int(life.Seconds())}, "", "  ")
		fmt.Fprintln(stdout, string(out))
		return 0
	}
	fmt.Fprintf(stdout, "username: %s\npassword: %s\nuris: %s\nttl: %d\n", username, password, strings.Join(uris, " "), int(life.Seconds()))
	return 0
}
