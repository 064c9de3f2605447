package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gateway/gateway/internal/matrixclient"
	"github.com/matrix-gateway/gateway/internal/testpeers"
	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling/store"
)

const (
	didAlice   = "+15559990001"
	didCarol   = "+15559990002"
	didNobody  = "+15559990009"
	didUnknown = "+15550000000"
	callerUser = "15557770001" // the calling phone's SIP user: +1 555 777 0001
)

// phoneCallsAlice has a new baresip phone dial alice's number and waits
// until alice's client rings.
func (e *e2e) phoneCallsAlice(t *testing.T) (*testpeers.Baresip, *matrixclient.Incoming) {
	t.Helper()
	phone := callerPhone(t)
	if err := phone.Dial(ctxT(t, 5*time.Second), e.dialURI(didAlice)); err != nil {
		t.Fatal(err)
	}
	inc, err := e.alice.WaitIncoming(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatalf("alice's client never rang: %v", err)
	}
	return phone, inc
}

// gatewaySIP returns the gateway's SIP address in the environment.
func (e *e2e) gatewaySIP() string { return e.cfg.SIP.Listen }

func (e *e2e) dialURI(number string) string {
	return fmt.Sprintf("sip:%s@%s", number, e.gatewaySIP())
}

// callerPhone starts a baresip phone that calls the gateway.
func callerPhone(t *testing.T) *testpeers.Baresip {
	return testpeers.StartBaresip(t, testpeers.BaresipOptions{Users: []string{callerUser}, ToneHz: phoneToneHz, ToneSeconds: 30, Answer: testpeers.AnswerManual})
}

func TestE2EInbound(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real peers; not run with -short")
	}
	e := startE2E(t)
	e.alice.SetAutoJoin(true)
	wantGhost := e.cfg.GhostUserID("+" + callerUser)

	t.Run("phone calls a Matrix user, talk both ways, callee hangs up", func(t *testing.T) {
		phone, inc := e.phoneCallsAlice(t)
		if inc.Sender != wantGhost {
			t.Errorf("the call comes from %s, want the caller's ghost %s", inc.Sender, wantGhost)
		}
		if inc.Invite.Invitee != string(e.alice.Cli.UserID) || inc.Invite.Lifetime <= 0 {
			t.Errorf("invite invitee=%q lifetime=%d", inc.Invite.Invitee, inc.Invite.Lifetime)
		}
		if _, err := phone.WaitEvent(ctxT(t, 10*time.Second), "CALL_RINGING"); err != nil {
			t.Errorf("the phone heard no ringing (180): %v", err)
		}
		call, err := inc.Answer(ctxT(t, 10*time.Second), "alice-dev1", userToneHz)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := phone.WaitEvent(ctxT(t, 10*time.Second), "CALL_ESTABLISHED"); err != nil {
			t.Fatalf("the phone's call was not answered: %v", err)
		}
		time.Sleep(4 * time.Second)
		got := call.Received()
		t.Logf("Matrix callee received %d samples, %v Hz level %.3f", len(got), phoneToneHz, toneLevel(got, phoneToneHz))
		if lvl := toneLevel(got, phoneToneHz); lvl < 0.5 {
			t.Errorf("the phone's tone did not reach the Matrix callee (level %.3f)", lvl)
		}
		if err := call.Hangup(ctxT(t, 10*time.Second), "user_hangup"); err != nil {
			t.Fatal(err)
		}
		if _, err := phone.WaitEvent(ctxT(t, 10*time.Second), "CALL_CLOSED"); err != nil {
			t.Fatalf("the phone got no BYE: %v", err)
		}
		pcm, rate, err := phone.LastRecording()
		if err != nil {
			t.Fatal(err)
		}
		pcm = pcm[len(pcm)/4 : 3*len(pcm)/4]
		if lvl := media.Goertzel(pcm, rate, userToneHz); lvl < 0.5 {
			t.Errorf("the Matrix callee's tone did not reach the phone (level %.3f)", lvl)
		}
		waitNoCalls(t, e)
		rec := waitRecordWhere(t, e, store.StateEnded, func(r cdrJSON) bool {
			return r.Direction == "to_matrix" && r.MatrixCallID == string(inc.Invite.CallID)
		})
		if rec.Answered == "" || rec.DurationSeconds <= 0 || rec.Cause != "normal" || rec.EndedBy != "matrix" ||
			rec.CalleeUser != string(e.alice.Cli.UserID) || rec.CalleeNumber != didAlice || rec.CallerNumber != "+"+callerUser ||
			rec.SIPCallID == "" || rec.Trunk == "" || !strings.HasPrefix(rec.PhoneCodec, "PCMU") || !strings.HasPrefix(rec.MatrixCodec, "opus") ||
			rec.PhonePacketsIn == 0 || rec.MatrixPacketsIn == 0 {
			t.Errorf("call record of the answered inbound call: %+v", rec)
		}

		// A second call from the same number rings in the same DM room.
		if err := phone.Dial(ctxT(t, 5*time.Second), e.dialURI(didAlice)); err != nil {
			t.Fatal(err)
		}
		inc2, err := e.alice.WaitIncoming(ctxT(t, 30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if inc2.Room != inc.Room {
			t.Errorf("second call rang in %s, first in %s: the DM room was not reused", inc2.Room, inc.Room)
		}
		if err := inc2.Reject(ctxT(t, 10*time.Second), "alice-dev1"); err != nil {
			t.Fatal(err)
		}
		ev, err := phone.WaitEvent(ctxT(t, 10*time.Second), "CALL_CLOSED")
		if err != nil {
			t.Fatalf("rejected call: the phone was not told: %v", err)
		}
		if !strings.Contains(ev.Param, "603") {
			t.Errorf("rejected call ended with %q, want 603 Decline", ev.Param)
		}
		waitNoCalls(t, e)
		rec = waitRecordWhere(t, e, store.StateEnded, func(r cdrJSON) bool { return r.MatrixCallID == string(inc2.Invite.CallID) })
		if rec.Cause != "rejected" || rec.SIPStatus != 603 || rec.Answered != "" {
			t.Errorf("call record of the rejected call: %+v", rec)
		}
	})

	t.Run("caller cancels while the Matrix user's clients ring", func(t *testing.T) {
		phone, inc := e.phoneCallsAlice(t)
		if err := phone.Hangup(ctxT(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.alice.WaitEvent(ctxT(t, 15*time.Second), hangupFor(inc.Room, string(inc.Invite.CallID))); err != nil {
			t.Fatalf("the Matrix user's clients kept ringing after CANCEL: %v", err)
		}
		waitNoCalls(t, e)
		rec := waitRecordWhere(t, e, store.StateEnded, func(r cdrJSON) bool { return r.MatrixCallID == string(inc.Invite.CallID) })
		if rec.Cause != "cancelled" || rec.EndedBy != "sip" || rec.Answered != "" {
			t.Errorf("call record of the cancelled call: %+v", rec)
		}
	})

	t.Run("no answer within the ring timeout", func(t *testing.T) {
		phone, inc := e.phoneCallsAlice(t)
		ev, err := phone.WaitEvent(ctxT(t, 30*time.Second), "CALL_CLOSED")
		if err != nil {
			t.Fatalf("the phone rang forever: %v", err)
		}
		if !strings.Contains(ev.Param, "480") {
			t.Errorf("unanswered call ended with %q, want 480", ev.Param)
		}
		hev, err := e.alice.WaitEvent(ctxT(t, 10*time.Second), hangupFor(inc.Room, string(inc.Invite.CallID)))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(hev.Content.VeryRaw), "invite_timeout") {
			t.Errorf("hangup %s, want reason invite_timeout", hev.Content.VeryRaw)
		}
		rec := waitRecordWhere(t, e, store.StateEnded, func(r cdrJSON) bool { return r.MatrixCallID == string(inc.Invite.CallID) })
		if rec.Cause != "no_answer" || rec.SIPStatus != 480 || rec.MatrixReason != "invite_timeout" {
			t.Errorf("call record of the unanswered call: %+v", rec)
		}
	})

	t.Run("two devices ring, the first answer wins", func(t *testing.T) {
		second := e.loginAgain(t, "alice", "alice-password")
		phone := callerPhone(t)
		if err := phone.Dial(ctxT(t, 5*time.Second), e.dialURI(didAlice)); err != nil {
			t.Fatal(err)
		}
		inc1, err := e.alice.WaitIncoming(ctxT(t, 30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		inc2, err := second.WaitIncoming(ctxT(t, 30*time.Second))
		if err != nil {
			t.Fatalf("the second device did not ring: %v", err)
		}
		call1, err := inc1.Answer(ctxT(t, 10*time.Second), "dev-one", userToneHz)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		call2, err := inc2.Answer(ctxT(t, 10*time.Second), "dev-two", userToneHz)
		if err != nil {
			t.Fatal(err)
		}
		waitClosed(t, call2.Ended(), 15*time.Second, "the losing device to stop")
		if got := call2.Selected(); got != "dev-one" {
			t.Errorf("select_answer chose %q, want dev-one", got)
		}
		if _, err := phone.WaitEvent(ctxT(t, 10*time.Second), "CALL_ESTABLISHED"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		if lvl := toneLevel(call1.Received(), phoneToneHz); lvl < 0.5 {
			t.Errorf("the winning device hears no audio (level %.3f)", lvl)
		}
		if err := phone.Hangup(ctxT(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, call1.Ended(), 10*time.Second, "m.call.hangup after the phone's BYE")
		waitNoCalls(t, e)
		rec := waitRecordWhere(t, e, store.StateEnded, func(r cdrJSON) bool { return r.MatrixCallID == string(inc1.Invite.CallID) })
		if rec.Cause != "normal" || rec.EndedBy != "sip" || rec.Answered == "" {
			t.Errorf("call record of the call answered on the first device: %+v", rec)
		}
	})

	t.Run("unknown number gets 404, unknown Matrix user ends the call clearly", func(t *testing.T) {
		phone := callerPhone(t)
		for _, tc := range []struct{ number, want string }{{didUnknown, "404"}, {didNobody, "404"}} {
			if err := phone.Dial(ctxT(t, 5*time.Second), e.dialURI(tc.number)); err != nil {
				t.Fatal(err)
			}
			ev, err := phone.WaitEvent(ctxT(t, 20*time.Second), "CALL_CLOSED")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(ev.Param, tc.want) {
				t.Errorf("call to %s ended with %q, want %s", tc.number, ev.Param, tc.want)
			}
		}
		waitNoCalls(t, e)
		// The unknown Matrix user's call was attempted, so it has a record.
		rec := waitRecordWhere(t, e, store.StateEnded, func(r cdrJSON) bool {
			return r.Direction == "to_matrix" && r.CalleeUser == "@nobody:localhost"
		})
		if rec.Cause != "not_found" || rec.SIPStatus != 404 {
			t.Errorf("call record of the call to an unknown Matrix user: %+v", rec)
		}
	})

	t.Run("INVITE from an untrusted source is refused with 403", func(t *testing.T) {
		out, err := runSippUAC(t, "127.0.0.2", e.gatewaySIP(), strings.TrimPrefix(didAlice, "+"), 403)
		if err != nil {
			t.Fatalf("sipp from 127.0.0.2 did not get 403: %v\n%s", err, out)
		}
		waitNoCalls(t, e)
	})

	t.Run("glare: both call each other, the lower call_id wins", func(t *testing.T) {
		for _, tc := range []struct {
			name, callID string
			userWins     bool
		}{{"user's call wins", "0-glare", true}, {"gateway's call wins", "zz-glare", false}} {
			t.Run(tc.name, func(t *testing.T) {
				phone, inc := e.phoneCallsAlice(t)
				// At the same time alice calls the caller's ghost in the same room.
				mine, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), inc.Room, matrixclient.CallOptions{
					Invitee: inc.Sender, CallID: tc.callID, PartyID: "alice-glare", ToneHz: userToneHz})
				if err != nil {
					t.Fatal(err)
				}
				var heard func() []int16
				if tc.userWins {
					waitClosed(t, mine.Answered(), 15*time.Second, "the gateway to answer the user's winning call")
					heard = mine.Received
				} else {
					select {
					case <-mine.Answered():
						t.Fatal("the gateway answered the user's losing call")
					case <-time.After(time.Second):
					}
					call, err := inc.Answer(ctxT(t, 10*time.Second), "alice-dev1", userToneHz)
					if err != nil {
						t.Fatal(err)
					}
					heard = call.Received
				}
				if _, err := phone.WaitEvent(ctxT(t, 10*time.Second), "CALL_ESTABLISHED"); err != nil {
					t.Fatalf("the phone's call was not connected: %v", err)
				}
				time.Sleep(2 * time.Second)
				if lvl := toneLevel(heard(), phoneToneHz); lvl < 0.5 {
					t.Errorf("no audio from the phone on the winning call (level %.3f)", lvl)
				}
				if err := phone.Hangup(ctxT(t, 5*time.Second)); err != nil {
					t.Fatal(err)
				}
				waitNoCalls(t, e)
			})
		}
	})

	t.Run("malformed INVITEs get 400 and change nothing", func(t *testing.T) {
		for name, msg := range map[string]string{
			"broken SDP": "v=0\r\no=- x\r\nm=audio notaport RTP/AVP 0\r\n",
			"no SDP":     "",
		} {
			codes := sendRawInvite(t, "127.0.0.1", e.gatewaySIP(), msg)
			if codes[400] != 1 {
				t.Errorf("%s: responses %v, want one 400", name, codes)
			}
		}
		waitNoCalls(t, e)
	})

	t.Run("SDP without a common codec gets 488", func(t *testing.T) {
		out, err := runSippUACWith(t, "127.0.0.1", e.gatewaySIP(), strings.TrimPrefix(didAlice, "+"), 488,
			"m=audio [media_port] RTP/AVP 18\na=rtpmap:18 G729/8000")
		if err != nil {
			t.Fatalf("an offer of only G.729 did not get 488: %v\n%s", err, out)
		}
		waitNoCalls(t, e)
	})

	t.Run("an INVITE flood is refused without disturbing a call in progress", func(t *testing.T) {
		phone, inc := e.phoneCallsAlice(t)
		call, err := inc.Answer(ctxT(t, 10*time.Second), "alice-dev1", userToneHz)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := phone.WaitEvent(ctxT(t, 10*time.Second), "CALL_ESTABLISHED"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		before := len(call.Received())
		codes := floodInvites(t, "127.0.0.3", e.gatewaySIP(), 200)
		t.Logf("flood of 200 INVITEs from 127.0.0.3: responses %v", codes)
		if codes[503] == 0 || codes[403] == 0 || codes[503]+codes[403] < 150 {
			t.Errorf("flood responses %v: want 403 for the first burst and 503 once over the rate", codes)
		}
		time.Sleep(2 * time.Second)
		got := call.Received()
		if len(got)-before < 8000 {
			t.Errorf("audio of the call in progress stalled during the flood: %d new samples", len(got)-before)
		}
		if lvl := toneLevel(got, phoneToneHz); lvl < 0.5 {
			t.Errorf("audio of the call in progress damaged during the flood (level %.3f)", lvl)
		}
		if err := call.Hangup(ctxT(t, 10*time.Second), "user_hangup"); err != nil {
			t.Fatal(err)
		}
		if _, err := phone.WaitEvent(ctxT(t, 10*time.Second), "CALL_CLOSED"); err != nil {
			t.Fatal(err)
		}
		waitNoCalls(t, e)
	})

	t.Run("browser callee: matrix-js-sdk in Chromium answers Call.incoming", func(t *testing.T) {
		b := testpeers.StartBrowser(t, testpeers.BrowserOptions{
			Homeserver: e.hs.URL, UserID: e.carolID, AccessToken: e.carolTk, Mode: "answer",
			Timeout: 90 * time.Second, Freqs: []float64{userToneHz, phoneToneHz},
		})
		ctx := ctxT(t, 60*time.Second)
		if _, err := b.WaitEvent(ctx, "waiting"); err != nil {
			t.Fatalf("browser not ready: %v", err)
		}
		phone := callerPhone(t)
		if err := phone.Dial(ctxT(t, 5*time.Second), e.dialURI(didCarol)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.WaitEvent(ctx, "incoming"); err != nil {
			t.Fatalf("the browser never rang: %v", err)
		}
		if _, err := phone.WaitEvent(ctxT(t, 20*time.Second), "CALL_ESTABLISHED"); err != nil {
			t.Fatalf("the browser's answer did not reach the phone: %v", err)
		}
		heard := 0
		for heard < 2 {
			ev, err := b.WaitEvent(ctx, "audio")
			if err != nil {
				t.Fatalf("the browser did not hear the phone: %v", err)
			}
			if ev.Tone(phoneToneHz) >= 0.5 {
				heard++
			}
		}
		if err := phone.Hangup(ctxT(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.WaitEvent(ctx, "hangup"); err != nil {
			t.Fatalf("the browser was not told the phone hung up: %v", err)
		}
		pcm, rate, err := phone.LastRecording()
		if err != nil {
			t.Fatal(err)
		}
		pcm = pcm[len(pcm)/4 : 3*len(pcm)/4]
		if lvl := media.Goertzel(pcm, rate, userToneHz); lvl < 0.5 {
			t.Errorf("the browser's tone did not reach the phone (level %.3f)", lvl)
		}
		waitNoCalls(t, e)
	})
}

// hangupFor matches the m.call.hangup of a call.
func hangupFor(room id.RoomID, callID string) func(*event.Event) bool {
	return func(ev *event.Event) bool {
		return ev.RoomID == room && ev.Type.Type == "m.call.hangup" && strings.Contains(string(ev.Content.VeryRaw), `"`+callID+`"`)
	}
}

// loginAgain logs an existing user in on a new device.
func (e *e2e) loginAgain(t *testing.T, user, password string) *matrixclient.Client {
	t.Helper()
	var resp struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
	}
	body := fmt.Sprintf(`{"type":"m.login.password","identifier":{"type":"m.id.user","user":%q},"password":%q}`, user, password)
	if err := e.hs.Do(ctxT(t, 10*time.Second), "POST", "/_matrix/client/v3/login", "", []byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	c, err := matrixclient.New(e.hs.URL, id.UserID(resp.UserID), resp.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	c.SetAutoJoin(true)
	t.Cleanup(c.Close)
	return c
}

// runSippUAC sends one INVITE from srcIP to the gateway and expects status.
func runSippUAC(t *testing.T, srcIP, target, user string, status int) (string, error) {
	t.Helper()
	return runSippUACWith(t, srcIP, target, user, status, "m=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000")
}

// runSippUACWith is runSippUAC with the SDP's media lines.
func runSippUACWith(t *testing.T, srcIP, target, user string, status int, mlines string) (string, error) {
	t.Helper()
	return runSipp(t, sippCall{srcIP: srcIP, target: target, user: user, status: status, mlines: mlines})
}

// sippCall is one INVITE sent by sipp: from srcIP to target's user, with
// extra header lines and the SDP's media lines; status is the final
// response expected (ACKed); with hold set, a 200 OK call is kept up that
// long and then ended with BYE.
type sippCall struct {
	srcIP, target, user string
	status              int
	mlines              string
	headers             string // "Name: value" lines, each ending in "\n"
	hold                time.Duration
}

// runSipp runs one sipp UAC call and returns sipp's output; an error means
// the call did not go as c says.
func runSipp(t *testing.T, c sippCall) (string, error) {
	t.Helper()
	if c.mlines == "" {
		c.mlines = "m=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000"
	}
	bye := ""
	if c.status == 200 && c.hold > 0 {
		bye = fmt.Sprintf(`
  <pause milliseconds="%d"/>
  <send retrans="500">
    <![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>`, c.hold.Milliseconds())
	}
	dir := t.TempDir()
	scenario := fmt.Sprintf(`<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="expect %d">
  <send retrans="500">
    <![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
%sMax-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
%s
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="%d"/>
  <send>
    <![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Content-Length: 0

    ]]>
  </send>%s
</scenario>
`, c.status, c.headers, c.mlines, c.status, bye)
	path := filepath.Join(dir, "uac.xml")
	if err := os.WriteFile(path, []byte(scenario), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sipp", "-sf", path, "-i", c.srcIP, "-p", fmt.Sprint(testpeers.FreeUDPPort(t)),
		"-s", c.user, "-m", "1", "-timeout", "20s", "-nostdin", c.target)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// floodInvites sends n INVITEs as fast as it can from srcIP over UDP and
// counts the final responses by status (bounded: 10 s).
func floodInvites(t *testing.T, srcIP, target string, n int) map[int]int {
	t.Helper()
	conn, err := net.ListenPacket("udp", srcIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dst, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	local := conn.LocalAddr().String()
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("INVITE sip:15559990001@%s SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP %s;branch=z9hG4bK-flood-%d\r\n"+
			"From: <sip:flood@%s>;tag=f%d\r\nTo: <sip:15559990001@%s>\r\n"+
			"Call-ID: flood-%d@%s\r\nCSeq: 1 INVITE\r\nContact: <sip:flood@%s>\r\nMax-Forwards: 70\r\n"+
			"Content-Length: 0\r\n\r\n", target, local, i, srcIP, i, target, i, srcIP, local)
		if _, err := conn.WriteTo([]byte(msg), dst); err != nil {
			t.Fatal(err)
		}
	}
	codes := map[int]int{}
	buf := make([]byte, 4096)
	deadline := time.Now().Add(10 * time.Second)
	final := 0
	for final < n && time.Now().Before(deadline) {
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		m, _, err := conn.ReadFrom(buf)
		if err != nil {
			if final > 0 {
				break
			}
			continue
		}
		var code int
		if _, err := fmt.Sscanf(string(buf[:m]), "SIP/2.0 %d", &code); err == nil && code >= 200 {
			codes[code]++
			final++
		}
	}
	return codes
}

// sendRawInvite sends one INVITE with the given body from srcIP and returns
// the final responses by status (bounded: 5 s).
func sendRawInvite(t *testing.T, srcIP, target, body string) map[int]int {
	t.Helper()
	conn, err := net.ListenPacket("udp", srcIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dst, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	local := conn.LocalAddr().String()
	ct := ""
	if body != "" {
		ct = "Content-Type: application/sdp\r\n"
	}
	msg := fmt.Sprintf("INVITE sip:15559990001@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-raw-%d\r\n"+
		"From: <sip:15557770001@%s>;tag=r1\r\nTo: <sip:15559990001@%s>\r\nCall-ID: raw-%d@%s\r\nCSeq: 1 INVITE\r\n"+
		"Contact: <sip:15557770001@%s>\r\nMax-Forwards: 70\r\n%sContent-Length: %d\r\n\r\n%s",
		target, local, time.Now().UnixNano(), srcIP, target, time.Now().UnixNano(), srcIP, local, ct, len(body), body)
	if _, err := conn.WriteTo([]byte(msg), dst); err != nil {
		t.Fatal(err)
	}
	codes := map[int]int{}
	buf := make([]byte, 4096)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		m, _, err := conn.ReadFrom(buf)
		if err != nil {
			if len(codes) > 0 {
				break
			}
			continue
		}
		var code int
		if _, err := fmt.Sscanf(string(buf[:m]), "SIP/2.0 %d", &code); err == nil && code >= 200 {
			codes[code]++
			break
		}
	}
	return codes
}
