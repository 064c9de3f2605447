package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/internal/matrixclient"
	"github.com/matrix-gateway/gateway/internal/testpeers"
	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling/store"
)

// Numbers of the codec environment: one trunk per phone, each phone offering
// and accepting a single codec.
const (
	numG722 = "+15552200" // baresip that speaks only G722
	numOpus = "+15553300" // baresip that speaks only opus/48000/2
)

// codecEnv is a real environment (Dendrite, the gateway in-process, Matrix
// user alice) with wideband phones behind their own trunks. The gateway
// offers opus, G722, PCMU, PCMA in that order.
type codecEnv struct {
	*e2e
	g722, opus *testpeers.Baresip
}

func startCodecEnv(t *testing.T) *codecEnv {
	t.Helper()
	dir := t.TempDir()
	ce := &codecEnv{e2e: &e2e{t: t}}
	e := ce.e2e
	user := func(n string) []string { return []string{strings.TrimPrefix(n, "+")} }
	ce.g722 = testpeers.StartBaresip(t, testpeers.BaresipOptions{Users: user(numG722), ToneHz: phoneToneHz, ToneSeconds: 30,
		Codecs: []string{"G722/16000/1"}, SampleRate: 16000}) // baresip 1.0 reads a bare "G722" as G722/8000 and finds none
	ce.opus = testpeers.StartBaresip(t, testpeers.BaresipOptions{Users: user(numOpus), ToneHz: phoneToneHz, ToneSeconds: 30,
		Codecs: []string{"opus/48000/2"}, SampleRate: 48000})

	hsPort, asPort := freeHSAndASPorts(t)
	sipPort := testpeers.FreeUDPPort(t)
	trunk := func(name, number string, port int) string {
		return fmt.Sprintf(`
    - name: %s
      host: 127.0.0.1
      port: %d
      transport: udp
      number_format: e164_no_plus
      numbers: ["%s*"]
      setup_timeout: 2s
      ring_timeout: 20s`, name, port, number)
	}
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
  trunks:%s%s
media:
  rtp_listen_ip: 127.0.0.1
  rtp_port_min: 41000
  rtp_port_max: 41999
  codecs: [opus, G722, PCMU, PCMA]
webrtc:
  include_loopback_candidates: true
logging:
  level: debug
  format: console
`, hsPort, asPort, sipPort, trunk("g722", numG722, ce.g722.SIPPort), trunk("opus", numOpus, ce.opus.SIPPort))
	cfgPath, regPath := writeEnvConfig(t, dir, cfgText, asPort)
	e.hs = testpeers.StartDendrite(t, testpeers.DendriteOptions{Port: hsPort, Registrations: []string{regPath}})
	var err error
	if e.cfg, err = configs.Load(cfgPath); err != nil {
		t.Fatalf("config: %v", err)
	}
	e.logPath = filepath.Join(dir, "gateway.log")
	e.startInProcess()
	e.alice = e.login("alice")
	return ce
}

// TestE2EWidebandCodecs calls a G.722-only and an Opus-only baresip phone
// from a Matrix user and checks both tones end to end, the codec the SIP
// side negotiated (call record) and the PCM rate the call was bridged at
// (gateway log).
func TestE2EWidebandCodecs(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real peers; not run with -short")
	}
	ce := startCodecEnv(t)
	for _, tt := range []struct {
		name, number string
		phone        func() *testpeers.Baresip
		codec        string // call record's phone codec
		bridge       string // gateway log of the bridge
	}{
		{"G722 phone: Opus <-> G.722 at 16 kHz", numG722, func() *testpeers.Baresip { return ce.g722 }, "G722/8000", "rate=16000"},
		{"Opus phone: Opus on both legs, passed through", numOpus, func() *testpeers.Baresip { return ce.opus }, "opus/48000/2", "passthrough=true"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			phone := tt.phone()
			ghost, room := ce.dmWith(ce.alice, tt.number)
			call, err := ce.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: ghost, ToneHz: userToneHz})
			if err != nil {
				t.Fatal(err)
			}
			waitClosed(t, call.Answered(), 20*time.Second, "m.call.answer")
			if _, err := phone.WaitEvent(ctxT(t, 10*time.Second), "CALL_ESTABLISHED"); err != nil {
				t.Fatalf("baresip did not establish the call: %v", err)
			}
			time.Sleep(4 * time.Second) // let both tones flow
			got := call.Received()
			if len(got) < 8000 {
				t.Fatalf("the Matrix caller received only %d samples", len(got))
			}
			t.Logf("Matrix caller received %d samples; %v Hz level %.3f", len(got), phoneToneHz, toneLevel(got, phoneToneHz))
			if lvl := toneLevel(got, phoneToneHz); lvl < 0.5 {
				t.Errorf("phone's %v Hz tone at the Matrix caller: level %.3f, want >= 0.5", phoneToneHz, lvl)
			}
			if err := call.Hangup(ctxT(t, 10*time.Second), "user_hangup"); err != nil {
				t.Fatal(err)
			}
			if _, err := phone.WaitEvent(ctxT(t, 10*time.Second), "CALL_CLOSED"); err != nil {
				t.Fatalf("baresip did not see the BYE: %v", err)
			}
			rec := waitRecord(t, ce.e2e, tt.number, store.StateEnded, nil)
			if rec.PhoneCodec != tt.codec {
				t.Errorf("call record: phone codec %q, want %q", rec.PhoneCodec, tt.codec)
			}
			pcm, rate, err := phone.LastRecording()
			if err != nil {
				t.Fatalf("baresip recording: %v", err)
			}
			pcm = pcm[len(pcm)/4 : 3*len(pcm)/4]
			t.Logf("phone recorded %d samples at %d Hz; %v Hz level %.3f", len(pcm), rate, userToneHz, media.Goertzel(pcm, rate, userToneHz))
			if lvl := media.Goertzel(pcm, rate, userToneHz); lvl < 0.5 {
				t.Errorf("Matrix caller's %v Hz tone at the phone: level %.3f, want >= 0.5", userToneHz, lvl)
			}
			log, err := os.ReadFile(ce.logPath)
			if err != nil {
				t.Fatal(err)
			}
			if !bridgeLogged(string(log), tt.codec, tt.bridge) {
				t.Errorf("gateway log has no bridge of %s with %s", tt.codec, tt.bridge)
			}
		})
	}
}

// bridgeLogged reports whether the log has a line bridging an endpoint
// with codec at the given "rate=N".
func bridgeLogged(log, codec, rate string) bool {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, rate) && strings.Contains(line, "="+codec) {
			return true
		}
	}
	return false
}
