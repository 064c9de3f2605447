package main

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/turn"
)

// embeddedTURN is the TURN server `gateway run` starts when turn.enabled.
// A nil *embeddedTURN (TURN off) is valid and does nothing.
type embeddedTURN struct {
	cfg    turn.Config
	host   string // host in the URIs handed out
	self   string // the gateway's own static user name
	selfPW string
	srv    *turn.Server
}

// newEmbeddedTURN prepares the TURN server from the configuration; it
// listens only in start. It returns nil when TURN is off.
func newEmbeddedTURN(cfg *configs.Config, log zerolog.Logger, reg prometheus.Registerer) (*embeddedTURN, error) {
	t := cfg.TURN
	if !t.Enabled {
		return nil, nil
	}
	listen, relay, external, err := turnAddrs(t)
	if err != nil {
		return nil, err
	}
	allowed, denied := cfg.TURNPeerPrefixes()
	e := &embeddedTURN{self: "gateway-" + randomToken(6), selfPW: randomToken(18)}
	users := map[string]string{e.self: e.selfPW}
	for u, p := range t.StaticUsers {
		users[u] = p
	}
	e.cfg = turn.Config{
		Realm: cfg.TURNRealm(), ListenIP: listen, Port: t.Port, UDPListeners: t.UDPListeners, TCP: t.TCP,
		TLSPort: t.TLSPort, RelayIP: relay, ExternalIP: external,
		RelayPortMin: t.RelayPortMin, RelayPortMax: t.RelayPortMax,
		Secret: t.SharedSecret.Reveal(), StaticUsers: users, QuotaExempt: []string{e.self},
		DefaultLifetime: t.DefaultLifetime, MaxLifetime: t.MaxLifetime,
		UserQuota: t.UserQuota, TotalQuota: t.TotalQuota, MaxBitrate: t.MaxBitrate,
		AllowedPeers: allowed, DeniedPeers: denied,
		Registerer: reg, Log: log.With().Str("component", "turn").Logger(),
	}
	if t.TLSPort != 0 {
		cert, err := tls.LoadX509KeyPair(t.TLSCert, t.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("turn.tls_cert: %w", err)
		}
		e.cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	e.host = t.PublicHost
	if e.host == "" {
		e.host = external.String()
	}
	return e, nil
}

// start listens; the ports are bound when it returns.
func (e *embeddedTURN) start() error {
	if e == nil {
		return nil
	}
	srv, err := turn.New(e.cfg)
	if err != nil {
		return err
	}
	e.srv = srv
	return nil
}

// close stops the server and ends every allocation.
func (e *embeddedTURN) close() {
	if e != nil && e.srv != nil {
		_ = e.srv.Close()
	}
}

// iceServers returns ice unchanged when it is not empty; otherwise the
// embedded TURN server (UDP) with the gateway's own never-expiring user.
func (e *embeddedTURN) iceServers(ice []webrtc.ICEServer) []webrtc.ICEServer {
	if e == nil || len(ice) > 0 {
		return ice
	}
	uris := turn.URIs(e.host, e.cfg.Port, false, 0)
	return []webrtc.ICEServer{{URLs: uris, Username: e.self, Credential: e.selfPW}}
}

// turnAddrs resolves the listen, relay and announced (external) addresses.
// With an unspecified listen IP and no relay_ip, the relay binds to the
// host's first global unicast address (a public one when there is one).
func turnAddrs(t configs.TURNConfig) (listen, relay, external netip.Addr, err error) {
	if listen, err = netip.ParseAddr(t.ListenIP); err != nil {
		return listen, relay, external, fmt.Errorf("turn.listen_ip: %w", err)
	}
	switch {
	case t.RelayIP != "":
		relay, err = netip.ParseAddr(t.RelayIP)
	case !listen.IsUnspecified():
		relay = listen
	default:
		relay, err = hostAddress()
	}
	if err != nil {
		return listen, relay, external, fmt.Errorf("turn.relay_ip: %w", err)
	}
	external = relay
	if t.ExternalIP != "" {
		if external, err = netip.ParseAddr(t.ExternalIP); err != nil {
			return listen, relay, external, fmt.Errorf("turn.external_ip: %w", err)
		}
	}
	return listen, relay, external, nil
}

// hostAddress picks the first public IPv4 address of the host, else the
// first private one.
func hostAddress() (netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, err
	}
	var private netip.Addr
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || !ip.Unmap().Is4() || !ip.IsGlobalUnicast() {
			continue
		}
		ip = ip.Unmap()
		if !ip.IsPrivate() {
			return ip, nil
		}
		if !private.IsValid() {
			private = ip
		}
	}
	if private.IsValid() {
		return private, nil
	}
	return netip.Addr{}, errors.New("no address to relay from: set turn.relay_ip (and turn.external_ip behind a NAT)")
}

// turnURIHost is the host in URIs given to clients for this configuration.
func turnURIHost(t configs.TURNConfig) (string, error) {
	if t.PublicHost != "" {
		return t.PublicHost, nil
	}
	_, _, external, err := turnAddrs(t)
	if err != nil {
		return "", err
	}
	return external.String(), nil
}

// randomToken returns n random bytes, base64url encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// turnInitEdits are the values `gateway init` sets to turn the embedded
// TURN server on: enabled, with a fresh random shared secret.
func turnInitEdits() []struct {
	path  string
	value any
} {
	return []struct {
		path  string
		value any
	}{
		{"turn.enabled", true},
		{"turn.shared_secret", randomToken(24)},
	}
}

// printTURNSteps tells how to point the homeserver at the embedded TURN
// server, when it is on.
func printTURNSteps(w io.Writer, cfg *configs.Config) {
	t := cfg.TURN
	if !t.Enabled {
		return
	}
	host, err := turnURIHost(t)
	if err != nil {
		host = "TURN_HOST"
	}
	uris, _ := json.Marshal(turn.URIs(host, t.Port, t.TCP, t.TLSPort))
	fmt.Fprintf(w, `
The embedded TURN server is on (turn.enabled). Give the homeserver the same
secret (the value of turn.shared_secret) and open UDP/TCP %d and UDP %d-%d:
  Synapse:  turn_uris: %s
            turn_shared_secret: <turn.shared_secret>
            turn_user_lifetime: 1h
  Dendrite: client_api: {turn: {turn_uris: %s,
            turn_shared_secret: <turn.shared_secret>, turn_user_lifetime: 1h}}
Check the relay address in the URIs (turn.public_host / external_ip); see docs/turn.md.
`, t.Port, t.RelayPortMin, t.RelayPortMax, uris, uris)
}
