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
	"github.com/matrix-gateway/gateway/modem"
	"github.com/matrix-gateway/gateway/modem/modemtest"
	"github.com/matrix-gateway/gateway/modem/modemtest/fakeat"
	"github.com/matrix-gateway/gateway/signalling/store"
)

// startModemAudioEnv starts Dendrite, the real ModemManager on a fake AT
// modem, a FIFO pair as the modem's PCM device (talking toneHz) and the
// gateway in-process with modem.audio on those FIFOs; extra is appended to
// the modem section. It waits until the modem is registered.
func startModemAudioEnv(t *testing.T, extra string) (*e2e, *fakeat.Modem, *modemtest.PCMDevice) {
	e, fake, dev, _, _ := startModemAudioEnvWith(t, extra, false)
	return e, fake, dev
}

// startModemAudioEnvWith is startModemAudioEnv; with phoneAudio the dialler
// gets its own FIFO pair as the phone's microphone and speaker (16 kHz), and
// the session bus of the dialler API is returned too.
func startModemAudioEnvWith(t *testing.T, extra string, phoneAudio bool) (*e2e, *fakeat.Modem, *modemtest.PCMDevice, *modemtest.PCMDevice, *modemtest.Bus) {
	t.Helper()
	modemtest.Skip(t)
	dir := t.TempDir()
	mmBus := modemtest.StartBus(t)
	session := modemtest.StartBus(t)
	port := fmt.Sprintf("abstract:gw-audio-e2e-%d", time.Now().UnixNano()%1e9)
	fake, err := fakeat.New(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	mm := modemtest.StartMM(t, mmBus)
	mm.AddModem(t, "fake1", "simtech", port)

	dev := modemtest.NewPCMDevice(t, 8000)
	dev.Start(phoneToneHz, 20*time.Second) // opens complete when the gateway opens its ends
	var local *modemtest.PCMDevice
	diallerAudio := ""
	if phoneAudio {
		local = modemtest.NewPCMDevice(t, 16000)
		local.Start(phoneToneHz, 20*time.Second) // the user talking into the phone
		diallerAudio = fmt.Sprintf("\n    audio_device: %q\n    audio_rate: 16000", local.Device())
	}

	hsPort, asPort := freeHSAndASPorts(t)
	cfgText := fmt.Sprintf(`
homeserver:
  url: http://127.0.0.1:%d
  domain: localhost
appservice:
  registration: registration.yaml
  listen: 127.0.0.1:%d
authorization:
  users: ["@alice:localhost"]
  numbers: ["+1*"]
sip:
  listen: 127.0.0.1:%d
  trunks:
    - name: unused
      host: 127.0.0.1
      port: %d
      numbers: ["+44*"]
media:
  rtp_listen_ip: 127.0.0.1
  rtp_port_min: 42000
  rtp_port_max: 42999
webrtc:
  include_loopback_candidates: true
logging:
  level: debug
modem:
  enabled: true
  bus: %s
  routes:
    - numbers: ["+1555999*"]
      via: ["matrix:@alice:localhost", "modem"]
    - numbers: ["+1555*"]
      via: ["modem"]
  dialler:
    bus: %s%s
  audio:
    device: %q
    rate: 8000
%s`, hsPort, asPort, testpeers.FreeUDPPort(t), testpeers.FreeUDPPort(t), mmBus.Address, session.Address, diallerAudio, dev.Device(), extra)
	cfgPath, regPath := writeEnvConfig(t, dir, cfgText, asPort)
	e := &e2e{t: t, logPath: filepath.Join(dir, "gateway.log")}
	if e.cfg, err = configs.Load(cfgPath); err != nil {
		t.Fatalf("config: %v", err)
	}
	e.hs = testpeers.StartDendrite(t, testpeers.DendriteOptions{Port: hsPort, Registrations: []string{regPath}})
	e.startInProcess()

	// The gateway enables the modem; wait until ModemManager reports it registered.
	mmConn := mmBus.Conn(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st int32
		v, err := mmConn.Object("org.freedesktop.ModemManager1", "/org/freedesktop/ModemManager1/Modem/0").
			GetProperty("org.freedesktop.ModemManager1.Modem.State")
		if err == nil {
			st, _ = v.Value().(int32)
		}
		if st >= 8 && e.gw.modem.client.Status().Registered() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("modem not registered (state %d, %v)", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	return e, fake, dev, local, session
}

// TestModemAudioE2E: a Matrix user calls a number routed over the modem
// only, with the gateway (in-process) carrying GSM audio through
// modem.audio.device "files:<capture FIFO>,<playback FIFO>". The real
// ModemManager (test mode) drives the fake AT modem; the test plays the far
// phone: it answers on the modem, talks 1000 Hz into the capture FIFO and
// listens on the playback FIFO. Alice must hear 1000 Hz, the far phone
// alice's 440 Hz, and alice's hangup must hang the GSM call up.
func TestModemAudioE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real peers; not run with -short")
	}
	const number = "+15550104000"
	e, fake, dev := startModemAudioEnv(t, "")
	var err error
	e.alice = e.login("alice")
	ghost, room := e.dmWith(e.alice, number)
	call, err := e.alice.PlaceCall(ctxT(t, 30*time.Second), room, matrixclient.CallOptions{Invitee: ghost, ToneHz: userToneHz})
	if err != nil {
		t.Fatal(err)
	}
	if !fake.WaitFor(30*time.Second, func(m *fakeat.Modem) bool { d := m.Dialled(); return len(d) == 1 && d[0] == number }) {
		t.Fatalf("the modem did not dial %s: %v", number, fake.Dialled())
	}
	if err := fake.RemoteAnswer(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, call.Answered(), 30*time.Second, "m.call.answer after the GSM answer")
	for i := 0; i < 500 && !dev.Opened(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !dev.Opened() {
		t.Fatal("the gateway did not open the modem's audio FIFOs")
	}
	time.Sleep(4 * time.Second) // let both tones flow

	got := call.Received()
	t.Logf("alice received %d samples; %v Hz level %.3f, %v Hz level %.3f", len(got),
		phoneToneHz, toneLevel(got, phoneToneHz), userToneHz, toneLevel(got, userToneHz))
	if len(got) < 8000 {
		t.Fatalf("alice received only %d samples", len(got))
	}
	if lvl := toneLevel(got, phoneToneHz); lvl < 0.5 {
		t.Errorf("the far phone's %v Hz at alice: level %.3f, want >= 0.5", phoneToneHz, lvl)
	}
	played := dev.Played()
	if len(played) < 2*8000 {
		t.Fatalf("the gateway played only %d samples into the modem", len(played))
	}
	tail := played[len(played)-2*8000:] // the last two seconds
	t.Logf("the far phone heard %d samples; %v Hz level %.3f", len(played), userToneHz, media.Goertzel(tail, 8000, userToneHz))
	if lvl := media.Goertzel(tail, 8000, userToneHz); lvl < 0.5 {
		t.Errorf("alice's %v Hz on the playback FIFO: level %.3f, want >= 0.5", userToneHz, lvl)
	}

	// Alice hangs up: the GSM call ends and the audio device is closed.
	if err := call.Hangup(ctxT(t, 10*time.Second), "user_hangup"); err != nil {
		t.Fatal(err)
	}
	if !fake.WaitFor(30*time.Second, func(m *fakeat.Modem) bool { return len(m.Calls()) == 0 }) {
		t.Fatalf("the GSM call is still up after alice's hangup: %+v", fake.Calls())
	}
	waitNoCalls(t, e)

	r := waitRecord(t, e, number, store.StateEnded, nil)
	t.Logf("call record: trunk %q phone codec %q cause %q ended by %q, phone frames in %d, %.1f s",
		r.Trunk, r.PhoneCodec, r.Cause, r.EndedBy, r.PhonePacketsIn, r.DurationSeconds)
	if r.Trunk != "modem" || !strings.HasPrefix(r.PhoneCodec, "gsm pcm/8000 files:") || r.Cause != "normal" ||
		r.EndedBy != "matrix" || r.PhonePacketsIn < 150 || r.DurationSeconds < 3 {
		t.Errorf("call record %+v", r)
	}
	logText := readLog(t, e.logPath)
	for _, want := range []string{"modem: call audio open", "call answered and bridged", "modem: call audio closed"} {
		if !strings.Contains(logText, want) {
			t.Errorf("gateway log lacks %q", want)
		}
	}
	for _, bad := range []string{"opening the call audio failed", "audio capture from"} {
		if strings.Contains(logText, bad) {
			t.Errorf("gateway log has %q", bad)
		}
	}
}

func readLog(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestModemIncomingToMatrixE2E: with modem.incoming_user set, a call arriving
// on the SIM rings the Matrix user from the caller's ghost; when she answers,
// the GSM call is accepted and its audio bridged both ways; the caller's
// hangup ends the Matrix call.
func TestModemIncomingToMatrixE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real peers; not run with -short")
	}
	const caller = "+15557770042"
	e, fake, dev := startModemAudioEnv(t, "  incoming_user: \"@alice:localhost\"\n")
	e.alice = e.login("alice")
	e.alice.SetAutoJoin(true)
	if err := fake.Ring(caller); err != nil {
		t.Fatal(err)
	}
	inc, err := e.alice.WaitIncoming(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatalf("alice's client never rang for the GSM call: %v", err)
	}
	if want := e.cfg.GhostUserID(caller); inc.Sender != want {
		t.Errorf("the call comes from %s, want the caller's ghost %s", inc.Sender, want)
	}
	call, err := inc.Answer(ctxT(t, 20*time.Second), "alicephone", userToneHz)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500 && !dev.Opened(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !dev.Opened() {
		t.Fatal("the gateway did not open the modem's audio when alice answered")
	}
	if !fake.WaitFor(10*time.Second, func(m *fakeat.Modem) bool {
		c := m.Calls()
		return len(c) == 1 && c[0].Stat == fakeat.StatActive
	}) {
		t.Fatalf("the GSM call was not accepted: %+v", fake.Calls())
	}
	time.Sleep(4 * time.Second) // both tones flowing
	if got := call.Received(); len(got) < 8000 || toneLevel(got, phoneToneHz) < 0.5 {
		t.Errorf("alice hears the GSM caller's %v Hz at %.3f (%d samples)", phoneToneHz, toneLevel(got, phoneToneHz), len(got))
	}
	played := dev.Played()
	if len(played) < 2*8000 {
		t.Fatalf("the gateway played only %d samples into the modem", len(played))
	}
	if lvl := media.Goertzel(played[len(played)-2*8000:], 8000, userToneHz); lvl < 0.5 {
		t.Errorf("alice's %v Hz on the playback FIFO: level %.3f", userToneHz, lvl)
	}
	// The GSM caller hangs up: alice's call ends.
	if err := fake.RemoteHangup(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, call.Ended(), 20*time.Second, "the Matrix call's end after the GSM caller hung up")
	waitNoCalls(t, e)
}

// TestModemMatrixRouteFromDialler: the phone's dialler calls a number whose
// route is "matrix:@alice:localhost" first: alice's Matrix clients ring, and
// once she answers the phone's microphone and speaker (the dialler's audio
// device) are bridged to her call; hangup from the dialler API ends it.
func TestModemMatrixRouteFromDialler(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real peers; not run with -short")
	}
	e, fake, _, local, session := startModemAudioEnvWith(t, "", true)
	e.alice = e.login("alice")
	e.alice.SetAutoJoin(true)
	api := modem.NewDiallerClient(session.Conn(t))
	id, route, err := api.Dial(ctxT(t, 20*time.Second), "+15559990123")
	if err != nil {
		t.Fatal(err)
	}
	if route != "matrix:@alice:localhost" {
		t.Errorf("route %q, want the Matrix user first", route)
	}
	inc, err := e.alice.WaitIncoming(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatalf("alice's client never rang: %v", err)
	}
	call, err := inc.Answer(ctxT(t, 20*time.Second), "alicephone", userToneHz)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500 && !local.Opened(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !local.Opened() {
		t.Fatal("the dialler did not open the phone's audio device")
	}
	time.Sleep(4 * time.Second)
	if got := call.Received(); len(got) < 8000 || toneLevel(got, phoneToneHz) < 0.5 {
		t.Errorf("alice hears the phone's microphone (%v Hz) at %.3f", phoneToneHz, toneLevel(got, phoneToneHz))
	}
	played := local.Played()
	if len(played) < 2*16000 || media.Goertzel(played[len(played)-2*16000:], 16000, userToneHz) < 0.5 {
		t.Errorf("the phone's speaker does not play alice's %v Hz (%d samples)", userToneHz, len(played))
	}
	if d := fake.Dialled(); len(d) != 0 {
		t.Errorf("the modem dialled %v although the Matrix route answered", d)
	}
	if err := api.Hangup(ctxT(t, 10*time.Second), id); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, call.Ended(), 20*time.Second, "alice's call ending after the dialler hung up")
}
