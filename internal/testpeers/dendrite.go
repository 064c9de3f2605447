package testpeers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// DendriteOptions configures StartDendrite; the zero value is a plain homeserver "localhost".
type DendriteOptions struct {
	// ServerName is the homeserver's domain; default "localhost".
	ServerName string
	// Registrations are appservice registration YAML files (absolute paths) loaded at start.
	Registrations []string
	// TURN, when set, fills client_api.turn so /voip/turnServer returns credentials.
	TURN *DendriteTURN
	// Port is the HTTP port on 127.0.0.1; 0 picks a free one.
	Port int
	// LogLevel is Dendrite's log level; default "info".
	LogLevel string
}

// DendriteTURN is Dendrite's client_api.turn section (TURN REST shared-secret scheme).
type DendriteTURN struct {
	// URIs such as "turn:127.0.0.1:3478?transport=udp".
	URIs []string
	// SharedSecret is the TURN REST secret shared with the TURN server.
	SharedSecret string
	// UserLifetime is a Go duration string such as "1h"; default "1h".
	UserLifetime string
}

// Dendrite is a running Dendrite homeserver on 127.0.0.1.
type Dendrite struct {
	// URL is the client-server API base URL, e.g. "http://127.0.0.1:34567".
	URL string
	// ServerName is the homeserver's domain (user IDs end in ":"+ServerName).
	ServerName string
	// Dir holds the config, keys, databases and log.
	Dir string
	// ConfigPath is the dendrite.yaml the server runs with.
	ConfigPath string
	// LogPath is the server's combined stdout/stderr log.
	LogPath string

	proc *proc
}

// DendriteBin returns the path of a Dendrite tool binary (dendrite, generate-config,
// generate-keys, create-account) built by scripts/build-dendrite.sh, failing or skipping t if absent.
func DendriteBin(t testing.TB, name string) string {
	t.Helper()
	return requireFile(t, repoPath(t, "tools", "dendrite", "bin", name))
}

// StartDendrite generates keys and a CI config in a temp dir, patches it (no federation, the
// given appservice registrations and TURN settings, open registration), runs Dendrite on a free
// port of 127.0.0.1 and waits until /_matrix/client/versions answers. t.Cleanup stops it.
func StartDendrite(t testing.TB, opts DendriteOptions) *Dendrite {
	t.Helper()
	bin := DendriteBin(t, "dendrite")
	genKeys := DendriteBin(t, "generate-keys")
	genConfig := DendriteBin(t, "generate-config")
	if opts.ServerName == "" {
		opts.ServerName = "localhost"
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	port := opts.Port
	if port == 0 {
		port = FreeTCPPort(t)
	}
	dir := t.TempDir()
	d := &Dendrite{
		URL:        fmt.Sprintf("http://127.0.0.1:%d", port),
		ServerName: opts.ServerName,
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "dendrite.yaml"),
		LogPath:    filepath.Join(dir, "dendrite.log"),
	}
	keyPath := filepath.Join(dir, "matrix_key.pem")
	if out, err := exec.Command(genKeys, "-private-key", keyPath).CombinedOutput(); err != nil {
		t.Fatalf("testpeers: generate-keys: %v\n%s", err, out)
	}
	raw, err := exec.Command(genConfig, "-ci", "-dir", dir, "-server", opts.ServerName).Output()
	if err != nil {
		t.Fatalf("testpeers: generate-config: %v", err)
	}
	cfg, err := PatchDendriteConfig(raw, keyPath, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.ConfigPath, cfg, 0o644); err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	cmd := exec.Command(bin, "-config", d.ConfigPath,
		"-http-bind-address", fmt.Sprintf("127.0.0.1:%d", port),
		"-really-enable-open-registration")
	cmd.Dir = dir
	d.proc = startProc(t, "dendrite", cmd, d.LogPath, 5*time.Second)
	if err := d.waitReady(30 * time.Second); err != nil {
		t.Fatalf("testpeers: dendrite not ready: %v\n%s", err, tailFile(d.LogPath, 3000))
	}
	return d
}

// waitReady polls /_matrix/client/versions until it answers 200, the process ends, or timeout.
func (d *Dendrite) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		if d.proc.exited() {
			return fmt.Errorf("dendrite %v", d.proc.exitError())
		}
		resp, err := client.Get(d.URL + "/_matrix/client/versions")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer from %s within %v", d.URL, timeout)
}

// Stop stops the server (SIGTERM, then kill after 5 s). Cleanup calls it too; it is idempotent.
func (d *Dendrite) Stop() { d.proc.stop(5 * time.Second) }

// UserID returns the full Matrix user ID for localpart on this server.
func (d *Dendrite) UserID(localpart string) string {
	return "@" + localpart + ":" + d.ServerName
}

// RegisterUser creates an account with m.login.dummy auth and returns its user ID and access
// token. Passwords need 8 or more characters.
func (d *Dendrite) RegisterUser(t testing.TB, localpart, password string) (userID, accessToken string) {
	t.Helper()
	acc, err := d.Register(context.Background(), localpart, password)
	if err != nil {
		t.Fatal(err)
	}
	return acc.UserID, acc.AccessToken
}

// Account is a registered user's login.
type Account struct {
	UserID      string `json:"user_id"`
	AccessToken string `json:"access_token"`
	DeviceID    string `json:"device_id"`
}

// Register is RegisterUser without a testing.TB, also returning the device ID.
func (d *Dendrite) Register(ctx context.Context, localpart, password string) (Account, error) {
	body, _ := json.Marshal(map[string]any{
		"username":                    localpart,
		"password":                    password,
		"auth":                        map[string]string{"type": "m.login.dummy"},
		"inhibit_login":               false,
		"initial_device_display_name": "testpeers",
	})
	var acc Account
	if err := d.Do(ctx, http.MethodPost, "/_matrix/client/v3/register", "", body, &acc); err != nil {
		return Account{}, fmt.Errorf("testpeers: register %s: %w", localpart, err)
	}
	if acc.AccessToken == "" {
		return Account{}, fmt.Errorf("testpeers: register %s: no access token in the response", localpart)
	}
	return acc, nil
}

// Do sends a client-server API request with an optional bearer token and JSON body and decodes
// a JSON answer into out (if non-nil). Non-2xx answers return an error carrying the body.
func (d *Dendrite) Do(ctx context.Context, method, path, token string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.URL+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

// PatchDendriteConfig rewrites a generate-config -ci YAML for tests: absolute key path, no
// federation, log level, appservice registrations with Bearer auth, and TURN settings.
func PatchDendriteConfig(raw []byte, keyPath string, opts DendriteOptions) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("testpeers: parse dendrite config: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, fmt.Errorf("testpeers: dendrite config is empty")
	}
	root := doc.Content[0]
	set := func(value any, path ...string) error {
		var n yaml.Node
		if err := n.Encode(value); err != nil {
			return err
		}
		return setPath(root, &n, path...)
	}
	regs := opts.Registrations
	if regs == nil {
		regs = []string{}
	}
	lifetime := "1h"
	turn := map[string]any{"turn_user_lifetime": "", "turn_uris": []string{}, "turn_shared_secret": ""}
	if opts.TURN != nil {
		if opts.TURN.UserLifetime != "" {
			lifetime = opts.TURN.UserLifetime
		}
		turn = map[string]any{
			"turn_user_lifetime": lifetime,
			"turn_uris":          opts.TURN.URIs,
			"turn_shared_secret": opts.TURN.SharedSecret,
		}
	}
	level := opts.LogLevel
	if level == "" {
		level = "info"
	}
	steps := []struct {
		value any
		path  []string
	}{
		{keyPath, []string{"global", "private_key"}},
		{true, []string{"global", "disable_federation"}},
		{false, []string{"global", "presence", "enable_outbound"}},
		{false, []string{"app_service_api", "legacy_auth"}},
		{false, []string{"app_service_api", "legacy_paths"}},
		{regs, []string{"app_service_api", "config_files"}},
		{turn["turn_user_lifetime"], []string{"client_api", "turn", "turn_user_lifetime"}},
		{turn["turn_uris"], []string{"client_api", "turn", "turn_uris"}},
		{turn["turn_shared_secret"], []string{"client_api", "turn", "turn_shared_secret"}},
		{[]map[string]any{{"type": "std", "level": level}}, []string{"logging"}},
	}
	for _, s := range steps {
		if err := set(s.value, s.path...); err != nil {
			return nil, fmt.Errorf("testpeers: patch %s: %w", strings.Join(s.path, "."), err)
		}
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, fmt.Errorf("testpeers: write dendrite config: %w", err)
	}
	return out, nil
}

// setPath sets the mapping value at path, creating intermediate mappings as needed.
func setPath(n *yaml.Node, value *yaml.Node, path ...string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%q: not a mapping", path[0])
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == path[0] {
			if len(path) == 1 {
				n.Content[i+1] = value
				return nil
			}
			return setPath(n.Content[i+1], value, path[1:]...)
		}
	}
	key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: path[0]}
	if len(path) == 1 {
		n.Content = append(n.Content, key, value)
		return nil
	}
	child := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	n.Content = append(n.Content, key, child)
	return setPath(child, value, path[1:]...)
}
