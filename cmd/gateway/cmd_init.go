package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/matrix-gateway/gateway/configs"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// initOptions are the values gateway init fills into the example config.
type initOptions struct {
	dir           string
	homeserverURL string
	domain        string
	force         bool
	listen        string
	appserviceURL string
	trunk         string
	countryCode   string
	allowUsers    stringList
	noTURN        bool
}

// initCmd writes DIR/gateway.yaml and DIR/registration.yaml.
func initCmd(args []string, stdout, stderr io.Writer) int {
	var o initOptions
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.StringVar(&o.dir, "dir", ".", "`directory` to write gateway.yaml and registration.yaml into (created if missing)")
	fs.StringVar(&o.homeserverURL, "homeserver-url", "", "client-server API `URL` of the homeserver (required)")
	fs.StringVar(&o.domain, "domain", "", "homeserver `server name`, the part after ':' in user IDs (required)")
	fs.BoolVar(&o.force, "force", false, "overwrite existing files")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:29330", "`host:port` where the homeserver pushes transactions")
	fs.StringVar(&o.appserviceURL, "appservice-url", "", "`URL` the homeserver uses to reach the gateway (default http://<listen>)")
	fs.StringVar(&o.trunk, "trunk", "127.0.0.1:5060", "SIP trunk `host:port`")
	fs.StringVar(&o.countryCode, "default-country-code", "1", "country calling `code` for national numbers, without '+'")
	fs.BoolVar(&o.noTURN, "no-turn", false, "do not enable the embedded TURN server")
	fs.Var(&o.allowUsers, "allow-user", "Matrix user ID `glob` allowed to dial out; repeatable (default @*:<domain>)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: gateway init --homeserver-url URL --domain DOMAIN [flags]\n\nWrites a commented gateway.yaml and an appservice registration.yaml.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if o.homeserverURL == "" || o.domain == "" {
		fmt.Fprintln(stderr, "gateway init: --homeserver-url and --domain are required")
		fs.Usage()
		return 2
	}
	if err := runInit(o, stdout); err != nil {
		fmt.Fprintf(stderr, "gateway init: %v\n", err)
		return 1
	}
	return 0
}

// runInit renders, checks and writes both files, then prints next steps.
func runInit(o initOptions, stdout io.Writer) error {
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	cfgData, err := renderConfig(o)
	if err != nil {
		return err
	}
	cfg, err := configs.Parse(cfgData, dir)
	if err != nil {
		var verr *configs.ValidationError
		if errors.As(err, &verr) {
			var b strings.Builder
			b.WriteString("the values given make an invalid configuration:")
			for _, p := range verr.Problems {
				b.WriteString("\n  ")
				b.WriteString(p.String())
			}
			return errors.New(b.String())
		}
		return err
	}
	asURL := o.appserviceURL
	if asURL == "" {
		asURL = urlForListen(o.listen)
	} else if u, err := url.Parse(asURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--appservice-url must be an http:// or https:// URL, got %q", asURL)
	}
	regYAML, err := cfg.NewRegistration(asURL).YAML()
	if err != nil {
		return err
	}
	regData := []byte("# Appservice registration for matrix-gateway, written by `gateway init`.\n" +
		"# It holds secret tokens: keep it private. Add its path to the homeserver\n" +
		"# (Synapse: app_service_config_files, Dendrite: app_service_api.config_files).\n" +
		regYAML)

	cfgPath := filepath.Join(dir, "gateway.yaml")
	regPath := cfg.AppService.Registration
	if !o.force {
		var existing []string
		for _, p := range []string{cfgPath, regPath} {
			if _, err := os.Lstat(p); err == nil {
				existing = append(existing, p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if len(existing) > 0 {
			return fmt.Errorf("refusing to overwrite %s (use --force)", strings.Join(existing, " and "))
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := writePrivate(cfgPath, cfgData, o.force); err != nil {
		return err
	}
	if err := writePrivate(regPath, regData, o.force); err != nil {
		return err
	}

	fmt.Fprintf(stdout, "wrote %s\n", cfgPath)
	fmt.Fprintf(stdout, "wrote %s (holds secret tokens: keep it private)\n", regPath)
	fmt.Fprintf(stdout, `
Next steps:
  1. Review %s: the SIP trunk (sip.trunks: host, credentials),
     who may dial out and where (authorization) and media.rtp_advertise_ip.
  2. Add the registration to the homeserver and restart it:
       Synapse:  app_service_config_files: [%q]
       Dendrite: app_service_api: {config_files: [%q]}
     The homeserver must reach the gateway at %s.
  3. gateway check -c %s
  4. gateway run -c %s
`, cfgPath, regPath, regPath, asURL, cfgPath, cfgPath)
	printTURNSteps(stdout, cfg)
	return nil
}

// renderConfig fills the options into the embedded example, keeping its comments.
func renderConfig(o initOptions) ([]byte, error) {
	trunkHost, trunkPort, err := splitTrunk(o.trunk)
	if err != nil {
		return nil, err
	}
	users := []string(o.allowUsers)
	if len(users) == 0 {
		users = []string{"@*:" + o.domain}
	}
	cc := strings.TrimPrefix(o.countryCode, "+")
	deny := []string{}
	if cc == "1" {
		deny = []string{"+1900*", "+1976*"}
	}
	edits := []struct {
		path  string
		value any
	}{
		{"homeserver.url", o.homeserverURL},
		{"homeserver.domain", o.domain},
		{"appservice.listen", o.listen},
		{"phone.default_country_code", cc},
		{"authorization.users", users},
		{"authorization.numbers", []string{"+" + cc + "*"}},
		{"authorization.deny_numbers", deny},
		{"authorization.caller_ids", map[string]string{}},
		{"sip.trunks[0].host", trunkHost},
		{"sip.trunks[0].port", trunkPort},
		{"sip.trunks[0].username", ""},
		{"sip.trunks[0].password", ""},
	}
	if !o.noTURN {
		edits = append(edits, turnInitEdits()...)
	}
	data := configs.Example()
	for _, e := range edits {
		if data, err = configs.SetValue(data, e.path, e.value); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// splitTrunk splits "host[:port]" (port 5060 when absent).
func splitTrunk(s string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		// No port: the whole value is the host (IPv6 may come bracketed).
		return strings.Trim(s, "[]"), 5060, nil
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", 0, fmt.Errorf("--trunk port must be a number, got %q", portStr)
	}
	return host, port, nil
}

// urlForListen derives the appservice URL from the listen address; an
// unspecified host becomes 127.0.0.1.
func urlForListen(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// writePrivate writes a file readable by its owner only; without overwrite
// it fails when the file exists.
func writePrivate(path string, data []byte, overwrite bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if !overwrite {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
