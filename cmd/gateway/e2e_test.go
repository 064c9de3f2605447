package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/internal/matrixclient"
	"github.com/matrix-gateway/gateway/internal/testpeers"
	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
	"github.com/matrix-gateway/gateway/signalling/store"
)

// Numbers of the end-to-end environment. Each trunk serves one prefix and
// leads to one kind of phone.
const (
	numAnswer   = "+15550100" // baresip that answers and plays 1000 Hz
	numBusy     = "+15560100" // baresip that answers 486
	numRinging  = "+15570100" // baresip that rings until told otherwise
	numDead     = "+15580100" // a trunk where nothing listens
	numDenied   = "+19005550100"
	numNotAllow = "+445550100"
	phoneToneHz = 1000.0
	userToneHz  = 440.0
)

// e2e is one real environment: Dendrite, the gateway running in-process
// with its real wiring, baresip phones behind three trunks, and Matrix users.
type e2e struct {
	t       *testing.T
	hs      *testpeers.Dendrite
	gw      *gateway
	cfg     *configs.Config
	answer  *testpeers.Baresip
	busy    *testpeers.Baresip
	ringing *testpeers.Baresip
	alice   *matrixclient.Client
	bob     *matrixclient.Client
	carolID string
	carolTk string
	logPath string
	proc    *gwProc
}

func startE2E(t *testing.T) *e2e { return startEnv(t, false) }

// startEnv builds the environment; with asProcess the gateway runs as the
// real `gateway run` binary instead of in-process.
func startEnv(t *testing.T, asProcess bool) *e2e {
	t.Helper()
	dir := t.TempDir()
	e := &e2e{t: t}
	phoneUser := func(n string) []string { return []string{strings.TrimPrefix(n, "+")} }
	e.answer = testpeers.StartBaresip(t, testpeers.BaresipOptions{Users: phoneUser(numAnswer), ToneHz: phoneToneHz, ToneSeconds: 30})
	e.busy = testpeers.StartBaresip(t, testpeers.BaresipOptions{Users: phoneUser(numBusy), Answer: testpeers.AnswerBusy})
	e.ringing = testpeers.StartBaresip(t, testpeers.BaresipOptions{Users: phoneUser(numRinging), Answer: testpeers.AnswerManual})
	deadPort := testpeers.FreeUDPPort(t)

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
      ring_timeout: 40s`, name, port, number[:5])
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
  users: ["@alice:localhost", "@carol:localhost"]
  numbers: ["+1*"]
  deny_numbers: ["+1900*"]
  max_calls_per_user: 3
  caller_ids: {"@alice:localhost": "+15551230000"}
sip:
  listen: 127.0.0.1:%d
  trunks:%s%s%s%s
media:
  rtp_listen_ip: 127.0.0.1
  rtp_port_min: 40000
  rtp_port_max: 40999
webrtc:
  include_loopback_candidates: true
inbound:
  routes:
    - numbers: ["+15559990001"]
      user: "@alice:localhost"
    - numbers: ["+15559990002"]
      user: "@carol:localhost"
    - numbers: ["+15559990009"]
      user: "@nobody:localhost"
  ring_timeout: 8s
logging:
  level: debug
  format: console
`, hsPort, asPort, sipPort,
		trunk("answer", numAnswer, e.answer.SIPPort), trunk("busy", numBusy, e.busy.SIPPort),
		trunk("ringing", numRinging, e.ringing.SIPPort), trunk("dead", numDead, deadPort))
	// Every WebRTC call of this environment shares one UDP port (ICE UDP mux).
	cfgText = strings.Replace(cfgText, "webrtc:\n  include_loopback_candidates: true\n",
		fmt.Sprintf("webrtc:\n  include_loopback_candidates: true\n  udp_port: %d\n", freeUDPPortOutsideRTP(t)), 1)
	cfgPath, regPath := writeEnvConfig(t, dir, cfgText, asPort)
	e.hs = testpeers.StartDendrite(t, testpeers.DendriteOptions{Port: hsPort, Registrations: []string{regPath}})
	var err error
	e.cfg, err = configs.Load(cfgPath)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	e.logPath = filepath.Join(dir, "gateway.log")
	if asProcess {
		e.proc = startGatewayProcess(t, cfgPath, e.logPath)
	} else {
		e.startInProcess()
	}
	e.alice = e.login("alice")
	e.bob = e.login("bob")
	e.carolID, e.carolTk = e.hs.RegisterUser(t, "carol", "carol-password")
	return e
}

// freeHSAndASPorts picks two distinct free TCP ports for the homeserver and
// the appservice (two picks may return the same free port).
func freeHSAndASPorts(t *testing.T) (hs, as int) {
	hs, as = testpeers.FreeTCPPort(t), testpeers.FreeTCPPort(t)
	for i := 0; as == hs && i < 10; i++ {
		as = testpeers.FreeTCPPort(t)
	}
	return hs, as
}

// writeEnvConfig writes cfgText as dir/gateway.yaml and the appservice
// registration made from it, as `gateway init` does, for a gateway listening
// on asPort; it returns both paths.
func writeEnvConfig(t *testing.T, dir, cfgText string, asPort int) (cfgPath, regPath string) {
	t.Helper()
	cfgPath = filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	pre, err := configs.Decode([]byte(cfgText), dir)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	regPath = filepath.Join(dir, "registration.yaml")
	if err := pre.NewRegistration(fmt.Sprintf("http://127.0.0.1:%d", asPort)).Save(regPath); err != nil {
		t.Fatal(err)
	}
	return cfgPath, regPath
}

func (e *e2e) startInProcess() {
	t := e.t
	logf, err := os.Create(e.logPath)
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: logf, NoColor: true, TimeFormat: "15:04:05.000"}).
		Level(zerolog.DebugLevel).With().Timestamp().Logger()
	e.gw, err = build(e.cfg, log)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.gw.start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	gw := e.gw
	t.Cleanup(func() {
		gw.manager.HangupAll()
		gw.close()
		_ = logf.Close()
		if t.Failed() {
			dumpLog(t, e.logPath)
		}
	})
}

func dumpLog(t *testing.T, path string) {
	data, _ := os.ReadFile(path)
	if len(data) > 20000 {
		data = data[len(data)-20000:]
	}
	t.Logf("gateway log (tail):\n%s", data)
}

func (e *e2e) login(name string) *matrixclient.Client {
	e.t.Helper()
	user, token := e.hs.RegisterUser(e.t, name, name+"-password")
	c, err := matrixclient.New(e.hs.URL, id.UserID(user), token)
	if err != nil {
		e.t.Fatalf("login %s: %v", name, err)
	}
	e.t.Cleanup(c.Close)
	return c
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// dmWith looks the number up like Element's dial pad and opens a DM with the ghost.
func (e *e2e) dmWith(c *matrixclient.Client, number string) (id.UserID, id.RoomID) {
	e.t.Helper()
	ctx := ctxT(e.t, 30*time.Second)
	ghost, err := c.LookupPhone(ctx, "im.vector.protocol.pstn", number)
	if err != nil {
		e.t.Fatalf("third-party lookup of %s: %v", number, err)
	}
	if want := e.cfg.GhostUserID(number); ghost != want {
		e.t.Fatalf("lookup gave %s, want %s", ghost, want)
	}
	room, err := c.CreateDM(ctx, ghost)
	if err != nil {
		e.t.Fatalf("DM with %s: %v", ghost, err)
	}
	return ghost, room
}

func waitClosed(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// toneLevel is the share of the signal's energy at freq over the last two
// seconds of pcm (8 kHz).
// freeUDPPortOutsideRTP is a free UDP port outside the environment's RTP
// range (media.rtp_port_min..max, 40000-40999), which the configuration
// check rightly refuses for webrtc.udp_port; the kernel's ephemeral range
// includes it.
func freeUDPPortOutsideRTP(t *testing.T) int {
	t.Helper()
	for range 50 {
		if p := testpeers.FreeUDPPort(t); p < 40000 || p > 40999 {
			return p
		}
	}
	t.Fatal("no free UDP port outside 40000-40999")
	return 0
}

// bestToneSecond returns the highest level of freq over one-second windows
// of pcm (half-second steps) and where that window starts, in seconds.
func bestToneSecond(pcm []int16, rate int, freq float64) (level, at float64) {
	for off := 0; off == 0 || off+rate <= len(pcm); off += rate / 2 {
		w := pcm[off:min(off+rate, len(pcm))]
		if l := media.Goertzel(w, rate, freq); l > level {
			level, at = l, float64(off)/float64(rate)
		}
	}
	return level, at
}

func toneLevel(pcm []int16, freq float64) float64 {
	if len(pcm) > 8000*2 {
		pcm = pcm[len(pcm)-8000*2:]
	}
	return media.Goertzel(pcm, 8000, freq)
}

// noticeIn waits for an m.notice from the ghost in room containing text.
func noticeIn(t *testing.T, c *matrixclient.Client, room id.RoomID, text string) {
	t.Helper()
	_, err := c.WaitEvent(ctxT(t, 20*time.Second), func(ev *event.Event) bool {
		if ev.RoomID != room || ev.Type != event.EventMessage {
			return false
		}
		return strings.Contains(string(ev.Content.VeryRaw), text)
	})
	if err != nil {
		t.Fatalf("no notice containing %q in the room: %v", text, err)
	}
}

func TestE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real peers; not run with -short")
	}
	e := startE2E(t)

	t.Run("talk both ways, caller hangs up", func(t *testing.T) {
		ghost, room := e.dmWith(e.alice, numAnswer)
		call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: ghost, ToneHz: userToneHz})
		if err != nil {
			t.Fatal(err)
		}
		waitClosed(t, call.Answered(), 20*time.Second, "m.call.answer")
		// The gateway's candidates are on the one shared WebRTC port.
		if want := fmt.Sprintf(" %d typ host", e.cfg.WebRTC.UDPPort); !strings.Contains(call.RemoteSDP(), want) {
			t.Errorf("the answer's candidates are not on the shared port %d:\n%s", e.cfg.WebRTC.UDPPort, call.RemoteSDP())
		}
		if _, err := e.answer.WaitEvent(ctxT(t, 10*time.Second), "CALL_ESTABLISHED"); err != nil {
			t.Fatalf("baresip did not establish the call: %v", err)
		}
		time.Sleep(4 * time.Second) // let both tones flow
		got := call.Received()
		if len(got) < 8000 {
			t.Fatalf("the Matrix caller received only %d samples", len(got))
		}
		t.Logf("Matrix caller received %d samples; %v Hz level %.3f, %v Hz level %.3f", len(got),
			phoneToneHz, toneLevel(got, phoneToneHz), userToneHz, toneLevel(got, userToneHz))
		if lvl := toneLevel(got, phoneToneHz); lvl < 0.5 {
			t.Errorf("phone's %v Hz tone at the Matrix caller: level %.3f, want >= 0.5", phoneToneHz, lvl)
		}
		if err := call.Hangup(ctxT(t, 10*time.Second), "user_hangup"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.answer.WaitEvent(ctxT(t, 10*time.Second), "CALL_CLOSED"); err != nil {
			t.Fatalf("baresip did not see the BYE: %v", err)
		}
		pcm, rate, err := e.answer.LastRecording()
		if err != nil {
			t.Fatalf("baresip recording: %v", err)
		}
		pcm = pcm[len(pcm)/4 : 3*len(pcm)/4] // the middle of the call, away from set-up and teardown
		t.Logf("phone recorded %d samples at %d Hz; %v Hz level %.3f, %v Hz level %.3f", len(pcm), rate,
			userToneHz, media.Goertzel(pcm, rate, userToneHz), phoneToneHz, media.Goertzel(pcm, rate, phoneToneHz))
		if lvl := media.Goertzel(pcm, rate, userToneHz); lvl < 0.5 {
			t.Errorf("Matrix caller's %v Hz tone at the phone: level %.3f, want >= 0.5", userToneHz, lvl)
		}
		// Both directions of the Matrix side took the shared port's fast
		// path (counted once the call's peer has closed).
		fast := func(name string) float64 { return gathered(t, e.gw, name, "") }
		for deadline := time.Now().Add(10 * time.Second); fast("gateway_webrtc_rtp_fast_sent_total") < 150 && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		in, out := fast("gateway_webrtc_rtp_fast_received_total"), fast("gateway_webrtc_rtp_fast_sent_total")
		t.Logf("fast path: %v packets in, %v out, %v through pion", in, out, fast("gateway_webrtc_rtp_pion_received_total"))
		if in < 150 || out < 150 || fast("gateway_webrtc_srtp_auth_failures_total") != 0 {
			t.Errorf("fast path: %v packets in, %v out, %v SRTP failures; want >= 150 each way (4 s of audio) and none", in, out,
				fast("gateway_webrtc_srtp_auth_failures_total"))
		}
	})

	t.Run("browser client: Element-style dial pad call with matrix-js-sdk in Chromium", func(t *testing.T) {
		counter := func(name string) float64 { return gathered(t, e.gw, name, "") }
		fastIn0, fastOut0 := counter("gateway_webrtc_rtp_fast_received_total"), counter("gateway_webrtc_rtp_fast_sent_total")
		authFailed0 := counter("gateway_webrtc_srtp_auth_failures_total")
		b := testpeers.StartBrowser(t, testpeers.BrowserOptions{
			Homeserver: e.hs.URL, UserID: e.carolID, AccessToken: e.carolTk,
			Number: numAnswer, Timeout: 90 * time.Second, Freqs: []float64{userToneHz, phoneToneHz},
		})
		ctx := ctxT(t, 60*time.Second)
		if _, err := b.WaitEvent(ctx, "lookup"); err != nil {
			t.Fatalf("dial pad lookup: %v", err)
		}
		if _, err := b.WaitEvent(ctx, "joined"); err != nil {
			t.Fatalf("the ghost did not join the DM: %v", err)
		}
		st, err := b.WaitEvent(ctx, "state")
		for err == nil && st.State != "connected" {
			st, err = b.WaitEvent(ctx, "state")
		}
		if err != nil {
			t.Fatalf("the browser call never connected: %v", err)
		}
		// The phone's tone must reach the browser: wait for audio reports that show it.
		// Six one-second reports also keep the call up long enough for the phone to
		// record the browser's tone even when Chromium's fake microphone starts late
		// (its first packets carry silence and can lag ICE "connected" by seconds on a
		// loaded CI box).
		heard := 0
		for heard < 6 {
			ev, err := b.WaitEvent(ctx, "audio")
			if err != nil {
				t.Fatalf("the browser did not hear the phone's %v Hz tone: %v", phoneToneHz, err)
			}
			if ev.Tone(phoneToneHz) >= 0.5 {
				heard++
			}
		}
		if err := b.Hangup(); err != nil {
			t.Fatal(err)
		}
		if _, err := e.answer.WaitEvent(ctxT(t, 15*time.Second), "CALL_CLOSED"); err != nil {
			t.Fatalf("the phone got no BYE after the browser hung up: %v", err)
		}
		pcm, rate, err := e.answer.LastRecording()
		if err != nil {
			t.Fatal(err)
		}
		// The best second of the recording past its first quarter: Chromium's
		// first packets can lag ICE "connected" on a loaded machine, and the
		// end is teardown.
		lvl, at := bestToneSecond(pcm[len(pcm)/4:7*len(pcm)/8], rate, userToneHz)
		t.Logf("phone heard the browser's %v Hz at level %.3f (best second at %.2f s of %d samples)", userToneHz, lvl, at, len(pcm))
		waitNoCalls(t, e)
		if lvl < 0.5 {
			r := waitRecordWhere(t, e, store.StateEnded, func(r cdrJSON) bool { return r.CallerUser == e.carolID })
			t.Errorf("the browser's %v Hz tone did not reach the phone (level %.3f); the call's record: %+v", userToneHz, lvl, r)
		}
		// Chromium's SRTP went through the gateway's own contexts both ways
		// (counted once the call's peer has closed).
		for deadline := time.Now().Add(10 * time.Second); counter("gateway_webrtc_rtp_fast_sent_total")-fastOut0 < 150 && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		in, out := counter("gateway_webrtc_rtp_fast_received_total")-fastIn0, counter("gateway_webrtc_rtp_fast_sent_total")-fastOut0
		t.Logf("browser call on the fast path: %v packets in, %v out", in, out)
		if in < 150 || out < 150 || counter("gateway_webrtc_srtp_auth_failures_total") != authFailed0 {
			t.Errorf("browser call: %v packets in and %v out on the fast path, %v SRTP failures; want >= 150 each way and none",
				in, out, counter("gateway_webrtc_srtp_auth_failures_total")-authFailed0)
		}
	})

	t.Run("phone hangs up", func(t *testing.T) {
		ghost, room := e.dmWith(e.alice, numAnswer)
		call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: ghost, ToneHz: userToneHz})
		if err != nil {
			t.Fatal(err)
		}
		waitClosed(t, call.Answered(), 20*time.Second, "m.call.answer")
		if _, err := e.answer.WaitEvent(ctxT(t, 10*time.Second), "CALL_ESTABLISHED"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if err := e.answer.Hangup(ctxT(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, call.Ended(), 10*time.Second, "m.call.hangup after the phone's BYE")
		if r := call.HangupReason(); r != "user_hangup" {
			t.Errorf("hangup reason %q, want user_hangup", r)
		}
	})

	t.Run("busy", func(t *testing.T) {
		ghost, room := e.dmWith(e.alice, numBusy)
		call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: ghost, ToneHz: userToneHz})
		if err != nil {
			t.Fatal(err)
		}
		waitClosed(t, call.Ended(), 15*time.Second, "m.call.hangup for a busy phone")
		if r := call.HangupReason(); r != "reject:user_busy" {
			t.Errorf("end reason %q, want reject:user_busy", r)
		}
		select {
		case <-call.Answered():
			t.Error("a busy call was answered")
		default:
		}
	})

	t.Run("caller cancels while ringing", func(t *testing.T) {
		ghost, room := e.dmWith(e.alice, numRinging)
		call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: ghost, ToneHz: userToneHz})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.ringing.WaitEvent(ctxT(t, 10*time.Second), "CALL_INCOMING"); err != nil {
			t.Fatalf("the phone did not ring: %v", err)
		}
		if err := call.Hangup(ctxT(t, 10*time.Second), "user_hangup"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.ringing.WaitEvent(ctxT(t, 10*time.Second), "CALL_CLOSED"); err != nil {
			t.Fatalf("the phone kept ringing after the caller hung up (no CANCEL): %v", err)
		}
		waitNoCalls(t, e)
	})

	t.Run("invite lifetime ends while ringing", func(t *testing.T) {
		ghost, room := e.dmWith(e.alice, numRinging)
		call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: ghost, Lifetime: 3000})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.ringing.WaitEvent(ctxT(t, 10*time.Second), "CALL_INCOMING"); err != nil {
			t.Fatalf("the phone did not ring: %v", err)
		}
		waitClosed(t, call.Ended(), 10*time.Second, "m.call.hangup at the end of the invite lifetime")
		if r := call.HangupReason(); r != "reject:invite_timeout" {
			t.Errorf("end reason %q, want reject:invite_timeout", r)
		}
		if _, err := e.ringing.WaitEvent(ctxT(t, 10*time.Second), "CALL_CLOSED"); err != nil {
			t.Fatalf("the phone kept ringing (no CANCEL): %v", err)
		}
	})

	t.Run("trunk unreachable", func(t *testing.T) {
		ghost, room := e.dmWith(e.alice, numDead)
		start := time.Now()
		call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: ghost})
		if err != nil {
			t.Fatal(err)
		}
		waitClosed(t, call.Ended(), 15*time.Second, "m.call.hangup for an unreachable trunk")
		if r := call.HangupReason(); r != "reject:unknown_error" {
			t.Errorf("end reason %q, want reject:unknown_error", r)
		}
		t.Logf("unreachable trunk reported after %v (setup_timeout 2s)", time.Since(start).Round(100*time.Millisecond))
		waitNoCalls(t, e)
	})

	t.Run("denied number is refused before the trunk", func(t *testing.T) {
		ghost, room := e.dmWith(e.alice, numDenied)
		call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: ghost})
		if err != nil {
			t.Fatal(err)
		}
		waitClosed(t, call.Ended(), 10*time.Second, "m.call.hangup for a denied number")
		noticeIn(t, e.alice, room, "refused")
	})

	t.Run("number outside the allowed destinations is refused", func(t *testing.T) {
		ghost, room := e.dmWith(e.alice, numNotAllow)
		call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: ghost})
		if err != nil {
			t.Fatal(err)
		}
		waitClosed(t, call.Ended(), 10*time.Second, "m.call.hangup for a number not allowed")
		noticeIn(t, e.alice, room, "refused")
	})

	t.Run("user not allowed to dial out", func(t *testing.T) {
		// bob's own invite to a ghost is declined...
		ctx := ctxT(t, 30*time.Second)
		ghost := e.cfg.GhostUserID(numAnswer)
		room, err := e.bob.CreateRoomWith(ctx, ghost)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.bob.WaitEvent(ctx, func(ev *event.Event) bool {
			return ev.RoomID == room && ev.Type == event.StateMember && ev.StateKey != nil && *ev.StateKey == string(ghost) &&
				strings.Contains(string(ev.Content.VeryRaw), `"leave"`)
		}); err != nil {
			t.Fatalf("the ghost did not decline bob's invite: %v", err)
		}
		// ...and a call bob places in a room where the ghost is (alice's) is refused.
		_, aroom := e.dmWith(e.alice, numAnswer)
		if _, err := e.alice.Cli.InviteUser(ctx, aroom, &mautrix.ReqInviteUser{UserID: e.bob.Cli.UserID}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.bob.Cli.JoinRoomByID(ctx, aroom); err != nil {
			t.Fatal(err)
		}
		before := len(e.answer.AllEvents())
		call, err := e.bob.PlaceCall(ctx, aroom, matrixclient.CallOptions{Invitee: ghost})
		if err != nil {
			t.Fatal(err)
		}
		waitClosed(t, call.Ended(), 10*time.Second, "m.call.hangup for a user not allowed")
		noticeIn(t, e.bob, aroom, "not allowed")
		time.Sleep(500 * time.Millisecond)
		for _, ev := range e.answer.AllEvents()[before:] {
			if ev.Type == "CALL_INCOMING" || ev.Type == "CALL_ESTABLISHED" {
				t.Errorf("the phone got a call from a user who may not dial out: %+v", ev)
			}
		}
	})

	t.Run("an invite delivered twice starts one call; wrong hs_token is refused", func(t *testing.T) {
		ctx := ctxT(t, 30*time.Second)
		ghost, room := e.dmWith(e.alice, numRinging)
		before := len(e.ringing.AllEvents())
		put := func(txn, token string) int {
			body := fmt.Sprintf(`{"events":[{"type":"m.call.invite","room_id":%q,"sender":%q,"event_id":"$dup-invite-1",`+
				`"origin_server_ts":%d,"content":{"call_id":"dup1","party_id":"p1","version":"1","lifetime":60000,"invitee":%q,`+
				`"offer":{"type":"offer","sdp":%q}}}]}`, room, e.alice.Cli.UserID, time.Now().UnixMilli(), ghost, testOfferSDP(t))
			req, _ := http.NewRequestWithContext(ctx, http.MethodPut,
				"http://"+e.cfg.AppService.Listen+"/_matrix/app/v1/transactions/"+txn, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		hsToken := e.gw.hsToken
		if code := put("dup-a", "wrong-token"); code != http.StatusForbidden && code != http.StatusUnauthorized {
			t.Errorf("transaction with a wrong hs_token: HTTP %d, want 401/403", code)
		}
		for _, txn := range []string{"dup-a", "dup-a", "dup-b"} { // same txn twice, then the same event in another txn
			if code := put(txn, hsToken); code != http.StatusOK {
				t.Fatalf("transaction %s: HTTP %d", txn, code)
			}
		}
		if _, err := e.ringing.WaitEvent(ctxT(t, 10*time.Second), "CALL_INCOMING"); err != nil {
			t.Fatalf("the duplicated invite did not ring the phone at all: %v", err)
		}
		time.Sleep(time.Second)
		incoming := 0
		for _, ev := range e.ringing.AllEvents()[before:] {
			if ev.Type == "CALL_INCOMING" {
				incoming++
			}
		}
		if n := len(e.gw.manager.Calls()); n != 1 || incoming != 1 {
			t.Errorf("%d calls in the gateway, %d rang the phone; want exactly 1", n, incoming)
		}
		for _, c := range e.gw.manager.Calls() {
			c.Hangup(signalling.CauseNormal)
		}
		if _, err := e.ringing.WaitEvent(ctxT(t, 10*time.Second), "CALL_CLOSED"); err != nil {
			t.Fatal(err)
		}
		waitNoCalls(t, e)
	})

	t.Run("malformed and legacy invites", func(t *testing.T) {
		ctx := ctxT(t, 30*time.Second)
		_, room := e.dmWith(e.alice, numAnswer)
		// An invite without an offer, and a version 0 invite.
		for _, body := range []string{
			`{"call_id":"bad1","party_id":"p","version":"1","lifetime":60000}`,
			`{"call_id":"bad2","version":0,"lifetime":60000,"offer":{"type":"offer","sdp":"v=0"}}`,
		} {
			if _, err := e.alice.Cli.SendMessageEvent(ctx, room, event.Type{Type: "m.call.invite", Class: event.MessageEventType}, json.RawMessage(body)); err != nil {
				t.Fatal(err)
			}
		}
		for _, callID := range []string{"bad1", "bad2"} {
			if _, err := e.alice.WaitEvent(ctx, func(ev *event.Event) bool {
				return ev.RoomID == room && ev.Type.Type == "m.call.reject" && strings.Contains(string(ev.Content.VeryRaw), `"`+callID+`"`)
			}); err != nil {
				t.Errorf("no m.call.reject for malformed invite %s: %v", callID, err)
			}
		}
		// Events for calls that do not exist change nothing.
		if _, err := e.alice.Cli.SendMessageEvent(ctx, room, event.Type{Type: "m.call.hangup", Class: event.MessageEventType},
			json.RawMessage(`{"call_id":"nope","party_id":"p","version":"1"}`)); err != nil {
			t.Fatal(err)
		}
		waitNoCalls(t, e)
	})
}

// waitNoCalls waits until the gateway has no call left: nothing half-open.
func waitNoCalls(t *testing.T, e *e2e) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if len(e.gw.manager.Calls()) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%d calls still open", len(e.gw.manager.Calls()))
}

// testOfferSDP makes a real WebRTC audio offer, as a browser would send.
func testOfferSDP(t *testing.T) string {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

// TestE2ERestartRemembersRooms restarts the gateway and places a call without
// invitee (as Element does in a DM) in a room whose ghost joined before the
// restart: the gateway still knows who is called there.
func TestE2ERestartRemembersRooms(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real peers; not run with -short")
	}
	e := startE2E(t)
	_, room := e.dmWith(e.alice, numAnswer)
	// Let the homeserver deliver the ghost's join to this instance first, so
	// the restarted one cannot learn it from a late transaction.
	time.Sleep(2 * time.Second)
	e.gw.manager.HangupAll()
	e.gw.close()
	e.startInProcess()
	call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{ToneHz: userToneHz})
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, call.Answered(), 20*time.Second, "m.call.answer after the restart")
	time.Sleep(2 * time.Second)
	if lvl := toneLevel(call.Received(), phoneToneHz); lvl < 0.5 {
		t.Errorf("no audio from the phone after the restart (level %.3f)", lvl)
	}
	if err := call.Hangup(ctxT(t, 10*time.Second), "user_hangup"); err != nil {
		t.Fatal(err)
	}
	waitNoCalls(t, e)
}
