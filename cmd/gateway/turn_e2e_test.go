package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/internal/testpeers"
	"github.com/matrix-gateway/gateway/media"
)

// TestE2ERelayOnlyBrowserCallThroughEmbeddedTURN: matrix-js-sdk in headless
// Chromium, relay-only (forceTURN: iceTransportPolicy "relay"), with TURN
// credentials from Dendrite's /voip/turnServer (TURN REST shared secret),
// calls a phone through the gateway; every media packet of the browser goes
// through the gateway's embedded TURN server.
func TestE2ERelayOnlyBrowserCallThroughEmbeddedTURN(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real peers; not run with -short")
	}
	dir := t.TempDir()
	phone := testpeers.StartBaresip(t, testpeers.BaresipOptions{
		Users: []string{strings.TrimPrefix(numAnswer, "+")}, ToneHz: phoneToneHz, ToneSeconds: 30,
	})
	hsPort, asPort := freeHSAndASPorts(t)
	sipPort, turnPort := testpeers.FreeUDPPort(t), testpeers.FreeUDPPort(t)
	secret := randomToken(24)
	cfgText := fmt.Sprintf(`
homeserver:
  url: http://127.0.0.1:%d
  domain: localhost
appservice:
  registration: registration.yaml
  listen: 127.0.0.1:%d
authorization:
  users: ["@carol:localhost"]
  numbers: ["+1*"]
sip:
  listen: 127.0.0.1:%d
  trunks:
    - name: answer
      host: 127.0.0.1
      port: %d
      number_format: e164_no_plus
      setup_timeout: 2s
media:
  rtp_listen_ip: 127.0.0.1
  rtp_port_min: 41000
  rtp_port_max: 41999
webrtc:
  include_loopback_candidates: true
database:
  uri: gateway.db
logging:
  level: debug
turn:
  enabled: true
  shared_secret: %s
  listen_ip: 127.0.0.1
  port: %d
  udp_listeners: 2
  relay_port_min: 62000
  relay_port_max: 62999
  # Loopback peers only because everything of this test is on loopback.
  allowed_peers: ["127.0.0.0/8"]
`, hsPort, asPort, sipPort, phone.SIPPort, secret, turnPort)
	cfgPath, regPath := writeEnvConfig(t, dir, cfgText, asPort)
	turnURI := fmt.Sprintf("turn:127.0.0.1:%d?transport=udp", turnPort)
	hs := testpeers.StartDendrite(t, testpeers.DendriteOptions{
		Port: hsPort, Registrations: []string{regPath},
		TURN: &testpeers.DendriteTURN{URIs: []string{turnURI}, SharedSecret: secret, UserLifetime: "1h"},
	})
	cfg, err := configs.Load(cfgPath)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logPath := filepath.Join(dir, "gateway.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: logf, NoColor: true, TimeFormat: "15:04:05.000"}).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	gw, err := build(cfg, log)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := gw.start(ctx); err != nil {
		gw.close()
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		gw.manager.HangupAll()
		gw.close()
		_ = logf.Close()
		if t.Failed() {
			dumpLog(t, logPath)
		}
	})
	if gw.turn == nil || gw.turn.srv == nil {
		t.Fatal("the embedded TURN server did not start")
	}
	carolID, carolTk := hs.RegisterUser(t, "carol", "carol-password")

	b := testpeers.StartBrowser(t, testpeers.BrowserOptions{
		Homeserver: hs.URL, UserID: carolID, AccessToken: carolTk, Number: numAnswer,
		ForceTURN: true, Timeout: 90 * time.Second, Freqs: []float64{userToneHz, phoneToneHz},
	})
	wait := ctxT(t, 60*time.Second)
	ev, err := b.WaitEvent(wait, "turn")
	if err != nil {
		t.Fatalf("the browser got no TURN servers from Dendrite: %v", err)
	}
	var turnEv struct {
		URIs     []string `json:"uris"`
		Username string   `json:"username"`
	}
	if err := json.Unmarshal(ev.Raw, &turnEv); err != nil {
		t.Fatal(err)
	}
	if len(turnEv.URIs) != 1 || turnEv.URIs[0] != turnURI || !regexp.MustCompile(`^[0-9]+:@carol:localhost$`).MatchString(turnEv.Username) {
		t.Fatalf("TURN servers from /voip/turnServer: %s", ev.Raw)
	}
	st, err := b.WaitEvent(wait, "state")
	for err == nil && st.State != "connected" {
		st, err = b.WaitEvent(wait, "state")
	}
	if err != nil {
		t.Fatalf("the relay-only call never connected: %v", err)
	}
	ev, err = b.WaitEvent(wait, "ice")
	if err != nil {
		t.Fatalf("no selected candidate pair: %v", err)
	}
	var ice struct {
		LocalType, LocalAddress, RemoteType, Policy string
	}
	var raw map[string]any
	_ = json.Unmarshal(ev.Raw, &raw)
	ice.LocalType, _ = raw["local_type"].(string)
	ice.LocalAddress, _ = raw["local_address"].(string)
	ice.RemoteType, _ = raw["remote_type"].(string)
	ice.Policy, _ = raw["ice_policy"].(string)
	t.Logf("browser's selected pair: local %s %s, remote %s; policy %s", ice.LocalType, ice.LocalAddress, ice.RemoteType, ice.Policy)
	if ice.Policy != "relay" || ice.LocalType != "relay" || !strings.HasPrefix(ice.LocalAddress, "127.0.0.1:62") {
		t.Errorf("the browser's media does not go through the embedded TURN relay: %s", ev.Raw)
	}
	// The phone's tone must reach the browser through the relay.
	heard := 0
	for heard < 2 {
		ev, err := b.WaitEvent(wait, "audio")
		if err != nil {
			t.Fatalf("the browser did not hear the phone's %v Hz tone: %v", phoneToneHz, err)
		}
		if ev.Tone(phoneToneHz) >= 0.5 {
			heard++
		}
	}
	stats := gw.turn.srv.Stats()
	t.Logf("TURN server: %+v", stats)
	if stats.Allocations < 1 || stats.ToPeerPackets < 50 || stats.ToClientPackets < 50 {
		t.Errorf("the TURN server relayed too little for a connected call: %+v", stats)
	}
	if n := stats.AuthFailures["bad_password"] + stats.AuthFailures["expired"] + stats.AuthFailures["unknown_user"]; n != 0 {
		t.Errorf("Dendrite's credentials were refused %d times", n)
	}
	if err := b.Hangup(); err != nil {
		t.Fatal(err)
	}
	if _, err := phone.WaitEvent(ctxT(t, 15*time.Second), "CALL_CLOSED"); err != nil {
		t.Fatalf("the phone got no BYE: %v", err)
	}
	pcm, rate, err := phone.LastRecording()
	if err != nil {
		t.Fatal(err)
	}
	pcm = pcm[len(pcm)/4 : 3*len(pcm)/4]
	if lvl := media.Goertzel(pcm, rate, userToneHz); lvl < 0.5 {
		t.Errorf("the browser's %v Hz tone did not reach the phone through the relay (level %.3f)", userToneHz, lvl)
	}
}
