package main

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/internal/matrixclient"
	"github.com/matrix-gateway/gateway/internal/testpeers"
	"github.com/matrix-gateway/gateway/signalling/store"
)

// numSilent leads to a sipp UAS that answers with SDP and never sends RTP.
const numSilent = "+15590100"

// startSilentEnv is a small environment of its own: Dendrite, the gateway
// in-process with media.dead_media_timeout 2s, and one trunk to a sipp UAS
// (built-in "uas" scenario: 200 OK with SDP, no media, waits for BYE).
func startSilentEnv(t *testing.T) (*e2e, *testpeers.Sipp) {
	t.Helper()
	dir := t.TempDir()
	e := &e2e{t: t}
	sipp := testpeers.StartSippUAS(t, "uas", testpeers.SippOptions{Timeout: 90 * time.Second})
	hsPort, asPort := freeHSAndASPorts(t)
	cfgText := fmt.Sprintf(`
homeserver:
  url: http://127.0.0.1:%d
  domain: localhost
appservice:
  registration: registration.yaml
  listen: 127.0.0.1:%d
phone:
  default_country_code: "1"
authorization:
  users: ["@alice:localhost"]
  numbers: ["+1*"]
sip:
  listen: 127.0.0.1:%d
  trunks:
    - name: silent
      host: 127.0.0.1
      port: %d
      transport: udp
      number_format: e164_no_plus
      numbers: ["+1559*"]
      setup_timeout: 2s
      ring_timeout: 20s
media:
  rtp_listen_ip: 127.0.0.1
  rtp_port_min: 41000
  rtp_port_max: 41999
  dead_media_timeout: 2s
webrtc:
  include_loopback_candidates: true
logging:
  level: debug
  format: console
`, hsPort, asPort, testpeers.FreeUDPPort(t), sipp.Port)
	cfgPath, regPath := writeEnvConfig(t, dir, cfgText, asPort)
	e.hs = testpeers.StartDendrite(t, testpeers.DendriteOptions{Port: hsPort, Registrations: []string{regPath}})
	var err error
	if e.cfg, err = configs.Load(cfgPath); err != nil {
		t.Fatalf("config: %v", err)
	}
	e.logPath = filepath.Join(dir, "gateway.log")
	e.startInProcess()
	e.alice = e.login("alice")
	return e, sipp
}

// A phone that answers and never sends RTP: after media.dead_media_timeout
// the gateway ends the call itself, with cause media_failed and a detail
// naming the silent side, in the call record, on Matrix and in the metrics.
func TestE2EDeadMediaHangup(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real peers; not run with -short")
	}
	e, sipp := startSilentEnv(t)
	ghost, room := e.dmWith(e.alice, numSilent)
	call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: ghost, ToneHz: userToneHz})
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, call.Answered(), 20*time.Second, "m.call.answer")
	waitClosed(t, call.Ended(), 20*time.Second, "m.call.hangup after the phone sent no RTP")
	if got := call.HangupReason(); got != "ice_failed" {
		t.Errorf("Matrix hangup reason %q, want ice_failed (media_failed)", got)
	}
	r := waitRecord(t, e, numSilent, store.StateEnded, nil)
	t.Logf("record: %+v", r)
	// Measured on the gateway's clock: the client learns of the answer a
	// moment after the gateway starts watching.
	if r.DurationSeconds < 2 {
		t.Errorf("call ended %.3fs after the answer, before the 2s dead-media timeout", r.DurationSeconds)
	}
	if r.Cause != "media_failed" || r.Detail != "no RTP from the phone for 2s" || r.EndedBy != "" {
		t.Errorf("cause %q detail %q ended_by %q; want media_failed, no RTP from the phone for 2s, the gateway", r.Cause, r.Detail, r.EndedBy)
	}
	if r.PhonePacketsIn != 0 || r.PhoneMOS != 0 || r.MatrixPacketsIn < 50 || r.MatrixMOS < 3 {
		t.Errorf("health: phone %d packets MOS %.2f, matrix %d packets MOS %.2f", r.PhonePacketsIn, r.PhoneMOS, r.MatrixPacketsIn, r.MatrixMOS)
	}
	// The trunk got a BYE: sipp's uas scenario completes only with one.
	if err := sipp.Wait(15 * time.Second); err != nil {
		t.Errorf("sipp: %v\n%s", err, sipp.Messages())
	}
	if v := gathered(t, e.gw, "gateway_dead_media_hangups_total", "phone"); v != 1 {
		t.Errorf("dead-media counter %v, want 1", v)
	}
	if v := gathered(t, e.gw, "gateway_call_mos", "matrix"); v != 1 {
		t.Errorf("Matrix MOS observations %v, want 1", v)
	}
	if v := gathered(t, e.gw, "gateway_call_mos", "phone"); v != 0 {
		t.Errorf("phone MOS observations %v, want 0 (it sent nothing)", v)
	}
}

// gathered reads a counter's value or a histogram's sample count for one
// side from the gateway's registry; 0 when absent.
func gathered(t *testing.T, g *gateway, name, side string) float64 {
	t.Helper()
	mfs, err := g.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if side == "" && len(m.GetLabel()) == 0 { // a metric without labels
				return m.GetCounter().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == "side" && l.GetValue() == side {
					if h := m.GetHistogram(); h != nil {
						return float64(h.GetSampleCount())
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
