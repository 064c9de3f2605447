package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/internal/matrixclient"
	"github.com/matrix-gateway/gateway/internal/testpeers"
	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling/matrix"
)

// The conference environment: three Matrix participants (two Go clients and
// matrix-js-sdk in Chromium) and three phones (two baresip phones dialling
// in with the PIN, one baresip phone dialled out from the room), each
// sending its own tone.
const (
	confDialIn  = "+15553330000"
	confOutNum  = "+15554440001" // the phone the room dials out to
	confPhone1  = "15551110001"
	confPhone2  = "15551110002"
	confIntrude = "15551110009" // a caller who does not know the PIN
	confPhone4  = "15551110004" // a phone whose network dies
	hzAlice     = 500.0
	hzBob       = 700.0
	hzCarol     = 440.0 // the browser harness's default microphone tone
	hzPhone1    = 1700.0
	hzPhone2    = 2000.0
	hzPhone3    = 2300.0
)

var confTones = []float64{hzAlice, hzBob, hzCarol, hzPhone1, hzPhone2, hzPhone3}

// hearsOthers reports whether pcm holds every tone of confTones but own
// (each at least 0.03 of the power; six equal tones give about 0.2 each)
// and not own (at most 0.01), and describes the levels.
func hearsOthers(pcm []int16, rate int, own float64, skip ...float64) (bool, string) {
	ok := len(pcm) > 0
	var b strings.Builder
	for _, f := range confTones {
		lvl := media.Goertzel(pcm, rate, f)
		fmt.Fprintf(&b, "%v Hz %.3f; ", f, lvl)
		switch {
		case f == own || slices.Contains(skip, f):
			ok = ok && lvl <= 0.01
		default:
			ok = ok && lvl >= 0.03
		}
	}
	return ok, b.String()
}

// eventuallyHears polls a Matrix client's received audio (8 kHz) until its
// last second holds the others' tones and not its own (nor skip's).
func eventuallyHears(t *testing.T, who string, call *matrixclient.Call, own float64, skip ...float64) {
	t.Helper()
	var desc string
	for range 75 { // 15 s
		pcm := call.Received()
		if len(pcm) > 8000 {
			var ok bool
			if ok, desc = hearsOthers(pcm[len(pcm)-8000:], 8000, own, skip...); ok {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("%s never heard the expected mix (own %v Hz, absent %v): %s", who, own, skip, desc)
}

// windowHearing scans a phone's recording for a one-second window in which
// it heard everyone else and not itself.
func windowHearing(pcm []int16, rate int, own float64) (bool, string) {
	best := ""
	for start := 0; start+rate <= len(pcm); start += rate / 4 {
		ok, desc := hearsOthers(pcm[start:start+rate], rate, own)
		if ok {
			return true, desc
		}
		best = desc
	}
	return false, best
}

func startConferenceEnv(t *testing.T) (*e2e, *testpeers.Baresip) {
	t.Helper()
	dir := t.TempDir()
	e := &e2e{t: t}
	out := testpeers.StartBaresip(t, testpeers.BaresipOptions{Users: []string{strings.TrimPrefix(confOutNum, "+")}, ToneHz: hzPhone3, ToneSeconds: 120})
	hsPort, asPort := freeHSAndASPorts(t)
	sipPort := testpeers.FreeUDPPort(t)
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
  numbers: ["+1555*"]
  max_calls_per_user: 3
  caller_ids: {"@alice:localhost": "+15551230000"}
sip:
  listen: 127.0.0.1:%d
  trunks:
    - name: phones
      host: 127.0.0.1
      port: %d
      transport: udp
      number_format: e164_no_plus
      numbers: ["+1555444*"]
      setup_timeout: 3s
    - name: other
      host: 127.0.0.2
      port: 5060
      transport: udp
      numbers: ["+1999*"]
media:
  rtp_listen_ip: 127.0.0.1
  rtp_port_min: 41000
  rtp_port_max: 41999
  dead_media_timeout: 5s
webrtc:
  include_loopback_candidates: true
conferences:
  dial_in: ["%s"]
  pin_attempts: 2
  room_header_trunks: ["phones"]
logging:
  level: debug
  format: console
`, hsPort, asPort, sipPort, out.SIPPort, confDialIn)
	cfgPath, regPath := writeEnvConfig(t, dir, cfgText, asPort)
	e.hs = testpeers.StartDendrite(t, testpeers.DendriteOptions{Port: hsPort, Registrations: []string{regPath}})
	var err error
	if e.cfg, err = configs.Load(cfgPath); err != nil {
		t.Fatalf("config: %v", err)
	}
	e.logPath = filepath.Join(dir, "gateway.log")
	e.startInProcess()
	e.alice = e.login("alice")
	e.bob = e.login("bob")
	e.carolID, e.carolTk = e.hs.RegisterUser(t, "carol", "carol-password")
	return e, out
}

// say sends a text message as c and waits for the bot's notice containing want.
func say(t *testing.T, c *matrixclient.Client, room id.RoomID, bot id.UserID, body, want string) string {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	since := time.Now()
	if _, err := c.Cli.SendText(ctx, room, body); err != nil {
		t.Fatalf("sending %q: %v", body, err)
	}
	ev, err := c.WaitEvent(ctx, func(e *event.Event) bool {
		return e.RoomID == room && e.Sender == bot && e.Type == event.EventMessage &&
			e.Timestamp >= since.UnixMilli()-50 && strings.Contains(rawField(e, "body"), want)
	})
	if err != nil {
		t.Fatalf("no reply containing %q to %q: %v", want, body, err)
	}
	return rawField(ev, "body")
}

// rawField returns a string field of an event's content.
func rawField(ev *event.Event, key string) string {
	var m map[string]any
	_ = json.Unmarshal(ev.Content.VeryRaw, &m)
	s, _ := m[key].(string)
	return s
}

// dialIn makes phone call the dial-in number and enter digits.
func dialIn(t *testing.T, e *e2e, phone *testpeers.Baresip, digits ...string) {
	t.Helper()
	if err := phone.Dial(ctxT(t, 5*time.Second), e.dialURI(confDialIn)); err != nil {
		t.Fatal(err)
	}
	if _, err := phone.WaitEvent(ctxT(t, 15*time.Second), "CALL_ESTABLISHED"); err != nil {
		t.Fatalf("the gateway did not answer the dial-in: %v", err)
	}
	time.Sleep(time.Second) // the PIN prompt
	for _, group := range digits {
		for _, d := range group {
			if _, err := phone.Command(ctxT(t, 5*time.Second), "sndcode", string(d)); err != nil {
				t.Fatalf("baresip sndcode %c: %v", d, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
		time.Sleep(time.Second)
	}
}

func TestE2EConference(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real peers; not run with -short")
	}
	e, outPhone := startConferenceEnv(t)
	bot := e.gw.connector.BotUserID()
	ctx := ctxT(t, 30*time.Second)

	// The room: alice (creator, power 100) invites bob, carol and the bot.
	room, err := e.alice.CreateRoomWith(ctx, e.bob.Cli.UserID, id.UserID(e.carolID), bot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.bob.Cli.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	carolCli, err := matrixclient.New(e.hs.URL, id.UserID(e.carolID), e.carolTk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(carolCli.Close)
	if _, err := carolCli.Cli.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	if _, err := e.alice.WaitEvent(ctx, func(ev *event.Event) bool {
		return ev.RoomID == room && ev.Type == event.StateMember && ev.StateKey != nil && *ev.StateKey == string(bot) && rawField(ev, "membership") == "join"
	}); err != nil {
		t.Fatalf("the bot did not join: %v", err)
	}

	// The bot may keep the roster in room state once alice gives it power level 50.
	pl := &event.PowerLevelsEventContent{}
	if err := e.alice.Cli.StateEvent(ctx, room, event.StatePowerLevels, "", pl); err != nil {
		t.Fatal(err)
	}
	pl.SetUserLevel(bot, 50)
	if _, err := e.alice.Cli.SendStateEvent(ctx, room, event.StatePowerLevels, "", pl); err != nil {
		t.Fatal(err)
	}

	// Commands: bob (power 0) may not start the conference; alice may.
	say(t, e.bob, room, bot, "!conf start", "power level 50")
	reply := say(t, e.alice, room, bot, "!conf start", "now has a conference call")
	stored, ok := e.gw.confs.Lookup(string(room))
	if !ok || !strings.Contains(reply, stored.PIN) || !strings.Contains(reply, confDialIn) {
		t.Fatalf("start reply %q, stored %+v", reply, stored)
	}

	// Matrix participants call the bot in the room.
	aliceCall, err := e.alice.PlaceCall(ctx, room, matrixclient.CallOptions{Invitee: bot, ToneHz: hzAlice})
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, aliceCall.Answered(), 20*time.Second, "alice's m.call.answer")
	bobCall, err := e.bob.PlaceCall(ctx, room, matrixclient.CallOptions{Invitee: bot, ToneHz: hzBob, CallID: "bob1"})
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, bobCall.Answered(), 20*time.Second, "bob's m.call.answer")
	browser := testpeers.StartBrowser(t, testpeers.BrowserOptions{
		Homeserver: e.hs.URL, UserID: e.carolID, AccessToken: e.carolTk,
		RoomID: string(room), Invitee: string(bot), Timeout: 150 * time.Second, Freqs: confTones,
	})

	// Phones: phone 1 gets the PIN wrong once, then right; phone 2 right at once.
	phone1 := testpeers.StartBaresip(t, testpeers.BaresipOptions{Users: []string{confPhone1}, ToneHz: hzPhone1, ToneSeconds: 120, Answer: testpeers.AnswerManual})
	phone2 := testpeers.StartBaresip(t, testpeers.BaresipOptions{Users: []string{confPhone2}, ToneHz: hzPhone2, ToneSeconds: 120, Answer: testpeers.AnswerManual})
	dialIn(t, e, phone1, "111111#", stored.PIN+"#")
	dialIn(t, e, phone2, stored.PIN+"#")
	// Phone 3 is dialled out from the room.
	say(t, e.alice, room, bot, "!conf dial "+confOutNum, "Calling "+confOutNum)

	waitParticipants := func(n int) {
		t.Helper()
		for range 150 {
			if len(e.gw.confs.Participants(string(room))) == n {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("conference has %v, want %d participants", e.gw.confs.Participants(string(room)), n)
	}
	waitParticipants(6)

	t.Run("everyone hears everyone else and not themselves", func(t *testing.T) {
		eventuallyHears(t, "alice", aliceCall, hzAlice)
		eventuallyHears(t, "bob", bobCall, hzBob)
		var desc string
		heard := false
		for range 20 {
			ev, err := browser.WaitEvent(ctxT(t, 5*time.Second), "audio")
			if err != nil {
				break
			}
			var b strings.Builder
			ok := true
			for _, f := range confTones {
				lvl := ev.Tone(f)
				fmt.Fprintf(&b, "%v Hz %.3f; ", f, lvl)
				if f == hzCarol {
					ok = ok && lvl <= 0.01
				} else {
					ok = ok && lvl >= 0.02
				}
			}
			if desc = b.String(); ok {
				heard = true
				break
			}
		}
		if !heard {
			t.Errorf("the browser never heard the expected mix: %s", desc)
		}
	})

	t.Run("mute removes a tone for everyone", func(t *testing.T) {
		say(t, e.bob, room, bot, "!conf mute "+string(e.alice.Cli.UserID), "power level 50")
		say(t, e.alice, room, bot, "!conf mute "+string(e.bob.Cli.UserID), "is muted")
		eventuallyHears(t, "alice (bob muted)", aliceCall, hzAlice, hzBob)
		say(t, e.alice, room, bot, "!conf unmute "+string(e.bob.Cli.UserID), "is unmuted")
		eventuallyHears(t, "alice (bob unmuted)", aliceCall, hzAlice)
	})

	t.Run("a participant leaves and rejoins", func(t *testing.T) {
		if err := bobCall.Hangup(ctxT(t, 10*time.Second), "user_hangup"); err != nil {
			t.Fatal(err)
		}
		waitParticipants(5)
		eventuallyHears(t, "alice (bob gone)", aliceCall, hzAlice, hzBob)
		bobCall, err = e.bob.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: bot, ToneHz: hzBob, CallID: "bob2"})
		if err != nil {
			t.Fatal(err)
		}
		waitClosed(t, bobCall.Answered(), 20*time.Second, "bob's second m.call.answer")
		waitParticipants(6)
		eventuallyHears(t, "alice (bob back)", aliceCall, hzAlice)
		eventuallyHears(t, "bob (back)", bobCall, hzBob)
	})

	t.Run("a member asks to be called (!conf join) and answers in the direct chat", func(t *testing.T) {
		dave := e.login("dave")
		dave.SetAutoJoin(true)
		if _, err := e.alice.Cli.InviteUser(ctxT(t, 10*time.Second), room, &mautrix.ReqInviteUser{UserID: dave.Cli.UserID}); err != nil {
			t.Fatal(err)
		}
		if _, err := dave.Cli.JoinRoomByID(ctxT(t, 10*time.Second), room); err != nil {
			t.Fatal(err)
		}
		say(t, dave, room, bot, "!conf join", "Calling "+string(dave.Cli.UserID))
		inc, err := dave.WaitIncoming(ctxT(t, 30*time.Second))
		if err != nil {
			t.Fatalf("dave's client never rang: %v", err)
		}
		if inc.Sender != bot || inc.Room == room {
			t.Errorf("the call comes from %s in %s, want the bot in a direct chat", inc.Sender, inc.Room)
		}
		call, err := inc.Answer(ctxT(t, 20*time.Second), "davephone", 2600)
		if err != nil {
			t.Fatal(err)
		}
		waitParticipants(7)
		found := false
		for _, p := range e.gw.confs.Participants(string(room)) {
			found = found || (p.Name == string(dave.Cli.UserID) && p.Via == "call_me")
		}
		if !found {
			t.Errorf("dave is not seated as a called member: %+v", e.gw.confs.Participants(string(room)))
		}
		for i := 0; i < 75; i++ {
			pcm := aliceCall.Received()
			if len(pcm) > 8000 && media.Goertzel(pcm[len(pcm)-8000:], 8000, 2600) >= 0.03 {
				break
			}
			if i == 74 {
				t.Errorf("alice never heard dave's 2600 Hz")
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err := call.Hangup(ctxT(t, 10*time.Second), "user_hangup"); err != nil {
			t.Fatal(err)
		}
		waitParticipants(6)
	})

	t.Run("a phone whose media dies is removed and the others carry on", func(t *testing.T) {
		phone4 := testpeers.StartBaresip(t, testpeers.BaresipOptions{Users: []string{confPhone4}, ToneHz: 2600, ToneSeconds: 120, Answer: testpeers.AnswerManual})
		dialIn(t, e, phone4, stored.PIN+"#")
		waitParticipants(7)
		if err := phone4.Freeze(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = phone4.Thaw() }()
		if _, err := e.alice.WaitEvent(ctxT(t, 20*time.Second), func(ev *event.Event) bool {
			return ev.RoomID == room && ev.Sender == bot && strings.Contains(rawField(ev, "body"), "+"+confPhone4+" left the conference call: the audio connection failed")
		}); err != nil {
			t.Fatalf("no notice that the dead phone was removed: %v", err)
		}
		waitParticipants(6)
		eventuallyHears(t, "alice (after the dead phone)", aliceCall, hzAlice)
	})

	t.Run("a trusted trunk names the room in a header", func(t *testing.T) {
		done := make(chan error, 1)
		go func() {
			out, err := runSippHeaderJoin(t, "127.0.0.1", e.gatewaySIP(), "15550009999", string(room), 200)
			if err != nil {
				err = fmt.Errorf("%w\n%s", err, out)
			}
			done <- err
		}()
		found := false
		for i := 0; i < 50 && !found; i++ {
			for _, p := range e.gw.confs.Participants(string(room)) {
				found = found || p.Via == "header"
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !found {
			t.Error("the caller naming the room in X-Matrix-Room was not seated")
		}
		if err := <-done; err != nil {
			t.Fatalf("sipp: %v", err)
		}
		waitParticipants(6)
		// The same header from a trunk that is not trusted with it is ignored: the
		// number is no dial-in and routes nowhere.
		if out, err := runSippHeaderJoin(t, "127.0.0.2", e.gatewaySIP(), "15550009999", string(room), 404); err != nil {
			t.Fatalf("untrusted header: %v\n%s", err, out)
		}
	})

	t.Run("a caller without the PIN is hung up", func(t *testing.T) {
		intruder := testpeers.StartBaresip(t, testpeers.BaresipOptions{Users: []string{confIntrude}, ToneHz: 3000, ToneSeconds: 60, Answer: testpeers.AnswerManual})
		dialIn(t, e, intruder, "123456#", "654321#")
		if _, err := intruder.WaitEvent(ctxT(t, 15*time.Second), "CALL_CLOSED"); err != nil {
			t.Fatalf("the gateway did not hang up after two wrong PINs: %v", err)
		}
		if n := len(e.gw.confs.Participants(string(room))); n != 6 {
			t.Errorf("%d participants after the intruder, want 6", n)
		}
	})

	t.Run("phones heard everyone else and not themselves", func(t *testing.T) {
		// A moderator removes phone 2; phone 1 and the dialled-out phone hang up.
		say(t, e.alice, room, bot, "!conf kick +"+confPhone2, "was removed")
		if _, err := phone2.WaitEvent(ctxT(t, 15*time.Second), "CALL_CLOSED"); err != nil {
			t.Fatalf("the kicked phone got no BYE: %v", err)
		}
		for _, p := range []*testpeers.Baresip{phone1, outPhone} {
			if err := p.Hangup(ctxT(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, err := p.WaitEvent(ctxT(t, 15*time.Second), "CALL_CLOSED"); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			name  string
			phone *testpeers.Baresip
			own   float64
		}{{"phone 1 (dial-in, PIN retried)", phone1, hzPhone1}, {"phone 2 (dial-in)", phone2, hzPhone2}, {"phone 3 (dialled out)", outPhone, hzPhone3}} {
			pcm, rate, err := c.phone.LastRecording()
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if ok, desc := windowHearing(pcm, rate, c.own); !ok {
				t.Errorf("%s never heard everyone else without itself in one second: %s", c.name, desc)
			}
		}
	})

	t.Run("the conference ends when the last participant leaves", func(t *testing.T) {
		_ = browser.Hangup()
		for _, c := range []*matrixclient.Call{aliceCall, bobCall} {
			_ = c.Hangup(ctxT(t, 10*time.Second), "user_hangup")
		}
		if _, err := e.alice.WaitEvent(ctxT(t, 20*time.Second), func(ev *event.Event) bool {
			return ev.RoomID == room && ev.Sender == bot && ev.Type == event.EventMessage && strings.Contains(rawField(ev, "body"), "The conference call ended")
		}); err != nil {
			t.Fatalf("no end notice: %v", err)
		}
		// The roster in room state follows (bounded poll: it is sent after the notice).
		var roster struct {
			Active       bool   `json:"active"`
			Participants []any  `json:"participants"`
			PIN          string `json:"pin"`
		}
		for range 25 {
			roster.Active, roster.Participants = true, nil
			err := e.alice.Cli.StateEvent(ctxT(t, 10*time.Second), room, event.Type{Type: matrix.ConferenceStateType, Class: event.StateEventType}, "", &roster)
			if err == nil && !roster.Active && len(roster.Participants) == 0 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if roster.Active || len(roster.Participants) != 0 || roster.PIN != stored.PIN {
			t.Errorf("roster after the end: %+v", roster)
		}
		waitNoCalls(t, e)
	})

	t.Run("removing the bot from the room ends the conference", func(t *testing.T) {
		call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: bot, ToneHz: hzAlice, CallID: "alice2"})
		if err != nil {
			t.Fatal(err)
		}
		waitClosed(t, call.Answered(), 20*time.Second, "alice's second m.call.answer")
		waitParticipants(1)
		if _, err := e.alice.Cli.KickUser(ctxT(t, 10*time.Second), room, &mautrix.ReqKickUser{UserID: bot, Reason: "room closed"}); err != nil {
			t.Fatal(err)
		}
		// The bot can no longer send in the room; for the client the bot's leave is
		// the hangup (spec: a party leaving the room ends the call). The gateway
		// ends its side and forgets the room's conference.
		waitNoCalls(t, e)
		if _, ok := e.gw.confs.Lookup(string(room)); ok {
			t.Error("the room still has a conference after the bot was removed")
		}
		if st, _ := e.gw.store.Conferences(ctxT(t, 5*time.Second)); len(st) != 0 {
			t.Errorf("the database still has conferences: %v", st)
		}
		_ = call.Hangup(ctxT(t, 5*time.Second), "user_hangup")
	})
}

// runSippHeaderJoin calls number at target from srcIP with the room in
// X-Matrix-Room and expects status; on 200 it stays 3 s, then sends BYE.
func runSippHeaderJoin(t *testing.T, srcIP, target, number, room string, status int) (string, error) {
	t.Helper()
	return runSipp(t, sippCall{srcIP: srcIP, target: target, user: number, status: status,
		headers: "X-Matrix-Room: " + room + "\n", hold: 3 * time.Second})
}
