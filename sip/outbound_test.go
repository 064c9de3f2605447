package sip

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipgosip "github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/matrix-gateway/gateway/signalling"
)

const evWait = 10 * time.Second

// answerAfterRinging sends 180 then 200 with answerSDP and keeps the
// handler alive so the server transaction lives on.
func answerAfterRinging(ft *fakeTrunk, d *sipgo.DialogServerSession, req *sipgosip.Request, tx sipgosip.ServerTransaction) {
	if err := d.Respond(180, "Ringing", nil); err != nil {
		ft.t.Errorf("180: %v", err)
		return
	}
	// sipgo may pass responses that arrive together out of order; a real
	// callee takes a while to pick up.
	time.Sleep(50 * time.Millisecond)
	if err := d.RespondSDP([]byte(answerSDP)); err != nil {
		ft.t.Errorf("200: %v", err)
		return
	}
	ft.waitStop(tx)
}

func dialAnswered(t *testing.T, transport string) (*fakeTrunk, *fakeMedia, *recorder, signalling.Leg, *sipgo.DialogServerSession) {
	t.Helper()
	ft := newFakeTrunk(t, answerAfterRinging)
	u := newTestUA(t)
	fm := &fakeMedia{}
	rec := newRecorder()
	leg, err := u.Dialer(testTrunk(ft.port, transport), fm).Dial(context.Background(), testRequest(), rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.expect(t, signalling.EventRinging, evWait)
	rec.expect(t, signalling.EventAnswered, evWait)
	recv(t, ft.acks, "ACK")
	var d *sipgo.DialogServerSession
	select {
	case d = <-ft.dialogs:
	case <-time.After(evWait):
		t.Fatal("no dialog")
	}
	return ft, fm, rec, leg, d
}

func TestOutboundAnswerThenFarBye(t *testing.T) {
	ft, fm, rec, leg, d := dialAnswered(t, "udp")

	inv := recv(t, ft.invites, "INVITE")
	if got := inv.Recipient.User; got != "+4930222222" {
		t.Errorf("Request-URI user %q", got)
	}
	if tr, _ := inv.Recipient.UriParams.Get("transport"); tr != "udp" {
		t.Errorf("Request-URI transport %q", tr)
	}
	from := inv.From()
	if from.Address.User != "+4930111111" || from.Address.Host != "gw.example.org" || from.DisplayName != "Alice A" {
		t.Errorf("From %q", from.Value())
	}
	if tag, _ := from.Params.Get("tag"); tag == "" {
		t.Error("From has no tag")
	}
	if ua := inv.GetHeader("User-Agent"); ua == nil || ua.Value() != DefaultUserAgent {
		t.Errorf("User-Agent %v", ua)
	}
	if c := inv.Contact(); c == nil || c.Address.Port == 0 {
		t.Errorf("Contact %v", c)
	}
	offer, err := ParseAnswer(inv.Body(), []Codec{CodecPCMU, CodecPCMA})
	if err != nil {
		t.Fatalf("our offer does not parse: %v", err)
	}
	if offer.Codec != CodecPCMU || offer.Remote != fm.last().addr || offer.DTMFPayload != 101 {
		t.Errorf("offer %+v", offer)
	}

	st := <-fm.last().started
	want := startArgs{remote: netip.MustParseAddrPort("127.0.0.1:40000"), codec: "PCMA", pt: 8, dtmfPT: 101}
	if st != want {
		t.Errorf("media started with %+v, want %+v", st, want)
	}
	if leg.Audio() == nil {
		t.Error("Audio() nil after answer")
	}

	if err := d.Bye(context.Background()); err != nil {
		t.Fatalf("far BYE: %v", err)
	}
	ev := rec.expect(t, signalling.EventHangup, evWait)
	if ev.Cause != signalling.CauseNormal || ev.Leg != leg {
		t.Errorf("hangup %+v", ev)
	}
	waitDone(t, leg)
	if !fm.allClosed() {
		t.Error("media session not closed")
	}
	leg.Hangup(context.Background(), signalling.CauseNormal) // idempotent, after the end
	rec.quiet(t, 200*time.Millisecond)
}

func TestOutboundAnswerThenLocalHangup(t *testing.T) {
	ft, fm, rec, leg, _ := dialAnswered(t, "udp")
	leg.Hangup(context.Background(), signalling.CauseNormal)
	bye := recv(t, ft.byes, "BYE")
	if bye.CallID().Value() != string(leg.(*Leg).SIPCallID()) {
		t.Errorf("BYE Call-ID %q", bye.CallID().Value())
	}
	waitDone(t, leg)
	leg.Hangup(context.Background(), signalling.CauseNormal)
	rec.quiet(t, 300*time.Millisecond)
	if !fm.allClosed() {
		t.Error("media session not closed")
	}
}

func TestOutboundTCP(t *testing.T) {
	ft, _, rec, leg, d := dialAnswered(t, "tcp")
	inv := recv(t, ft.invites, "INVITE")
	if !strings.EqualFold(inv.Transport(), "tcp") {
		t.Errorf("INVITE arrived over %s", inv.Transport())
	}
	if err := d.Bye(context.Background()); err != nil {
		t.Fatalf("far BYE: %v", err)
	}
	if ev := rec.expect(t, signalling.EventHangup, evWait); ev.Cause != signalling.CauseNormal {
		t.Errorf("cause %s", ev.Cause)
	}
	waitDone(t, leg)
}

func TestOutboundFinalResponses(t *testing.T) {
	cases := []struct {
		code   int
		reason string
		cause  signalling.Cause
	}{
		{486, "Busy Here", signalling.CauseBusy},
		{404, "Not Found", signalling.CauseNotFound},
		{503, "Service Unavailable", signalling.CauseCongestion},
		{603, "Decline", signalling.CauseRejected},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			ft := newFakeTrunk(t, func(ft *fakeTrunk, d *sipgo.DialogServerSession, req *sipgosip.Request, tx sipgosip.ServerTransaction) {
				_ = d.Respond(100, "Trying", nil)
				_ = d.Respond(tc.code, tc.reason, nil)
			})
			u := newTestUA(t)
			fm := &fakeMedia{}
			rec := newRecorder()
			leg, err := u.Dialer(testTrunk(ft.port, "udp"), fm).Dial(context.Background(), testRequest(), rec)
			if err != nil {
				t.Fatal(err)
			}
			ev := rec.expect(t, signalling.EventHangup, evWait)
			if ev.Cause != tc.cause {
				t.Errorf("cause %s, want %s", ev.Cause, tc.cause)
			}
			if want := "SIP " + itoa(tc.code) + " " + tc.reason; ev.Detail != want {
				t.Errorf("detail %q, want %q", ev.Detail, want)
			}
			waitDone(t, leg)
			rec.quiet(t, 200*time.Millisecond)
			if !fm.allClosed() {
				t.Error("media session not closed")
			}
			if leg.Audio() != nil {
				t.Error("Audio() set on a failed leg")
			}
		})
	}
}

func itoa(n int) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(n)).String()[len("0.0.0.0:"):]
}

func TestOutboundDigestAuth(t *testing.T) {
	const user, pass, realm = "gwuser", "s3cret-pass", "trunk.test"
	chal := &digest.Challenge{Realm: realm, Nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093", Algorithm: "MD5", QOP: []string{"auth"}}
	authOK := make(chan bool, 2)
	ft := newFakeTrunk(t, func(ft *fakeTrunk, d *sipgo.DialogServerSession, req *sipgosip.Request, tx sipgosip.ServerTransaction) {
		h := req.GetHeader("Authorization")
		if h == nil {
			_ = d.Respond(401, "Unauthorized", nil, sipgosip.NewHeader("WWW-Authenticate", chal.String()))
			return
		}
		cred, err := digest.ParseCredentials(h.Value())
		if err != nil {
			ft.t.Errorf("Authorization %q: %v", h.Value(), err)
			authOK <- false
			_ = d.Respond(400, "Bad Auth", nil)
			return
		}
		want, err := digest.Digest(chal, digest.Options{
			Method: "INVITE", URI: cred.URI, Username: user, Password: pass, Cnonce: cred.Cnonce, Count: cred.Nc,
		})
		if err != nil {
			ft.t.Error(err)
		}
		ok := err == nil && cred.Username == user && cred.Realm == realm && cred.Response == want.Response &&
			cred.URI == req.Recipient.Addr()
		authOK <- ok
		if !ok {
			ft.t.Errorf("credentials %+v, want response %s for URI %s", cred, want.Response, req.Recipient.Addr())
			_ = d.Respond(403, "Forbidden", nil)
			return
		}
		_ = d.RespondSDP([]byte(answerSDP))
		ft.waitStop(tx)
	})
	var logs strings.Builder
	u, err := New(Config{ListenAddr: "127.0.0.1:0"}, WithLogger(newTestLogger(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = u.Close()
		lw := logs.String()
		if strings.Contains(lw, pass) {
			t.Errorf("the password appears in the logs:\n%s", lw)
		}
		if !strings.Contains(lw, "INVITE sent") {
			t.Errorf("logs were not captured:\n%s", lw)
		}
	}()
	tr := testTrunk(ft.port, "udp")
	tr.Username, tr.Password = user, pass
	rec := newRecorder()
	leg, err := u.Dialer(tr, &fakeMedia{}).Dial(context.Background(), testRequest(), rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.expect(t, signalling.EventAnswered, evWait)
	select {
	case ok := <-authOK:
		if !ok {
			t.Fatal("digest response was wrong")
		}
	case <-time.After(evWait):
		t.Fatal("no authenticated INVITE")
	}
	if n := len(ft.invites); n != 2 {
		t.Errorf("%d INVITEs, want 2", n)
	}
	leg.Hangup(context.Background(), signalling.CauseNormal)
	recv(t, ft.byes, "BYE")
	waitDone(t, leg)
}

func TestOutboundNoResponseUnreachable(t *testing.T) {
	// A UDP socket that swallows everything.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	u := newTestUA(t)
	tr := testTrunk(pc.LocalAddr().(*net.UDPAddr).Port, "udp")
	tr.SetupTimeout = 500 * time.Millisecond
	fm := &fakeMedia{}
	rec := newRecorder()
	leg, err := u.Dialer(tr, fm).Dial(context.Background(), testRequest(), rec)
	if err != nil {
		t.Fatal(err)
	}
	// Bounded by the setup timeout plus slack, far below SIP Timer B (32 s).
	ev := rec.expect(t, signalling.EventHangup, tr.SetupTimeout+5*time.Second)
	if ev.Cause != signalling.CauseUnreachable {
		t.Errorf("cause %s (%s)", ev.Cause, ev.Detail)
	}
	waitDone(t, leg)
	if !fm.allClosed() {
		t.Error("media session not closed")
	}
}

func TestOutboundTCPRefusedUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	u := newTestUA(t)
	rec := newRecorder()
	leg, err := u.Dialer(testTrunk(port, "tcp"), &fakeMedia{}).Dial(context.Background(), testRequest(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if ev := rec.expect(t, signalling.EventHangup, evWait); ev.Cause != signalling.CauseUnreachable {
		t.Errorf("cause %s (%s)", ev.Cause, ev.Detail)
	}
	waitDone(t, leg)
}

func ringForever(ft *fakeTrunk, d *sipgo.DialogServerSession, req *sipgosip.Request, tx sipgosip.ServerTransaction) {
	_ = d.Respond(180, "Ringing", nil)
	ft.waitStop(tx)
}

func TestOutboundRingTimeoutCancels(t *testing.T) {
	ft := newFakeTrunk(t, ringForever)
	u := newTestUA(t)
	tr := testTrunk(ft.port, "udp")
	tr.RingTimeout = 400 * time.Millisecond
	fm := &fakeMedia{}
	rec := newRecorder()
	leg, err := u.Dialer(tr, fm).Dial(context.Background(), testRequest(), rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.expect(t, signalling.EventRinging, evWait)
	recv(t, ft.cancels, "CANCEL")
	ev := rec.expect(t, signalling.EventHangup, evWait)
	if ev.Cause != signalling.CauseNoAnswer {
		t.Errorf("cause %s (%s)", ev.Cause, ev.Detail)
	}
	waitDone(t, leg)
	if !fm.allClosed() {
		t.Error("media session not closed")
	}
}

func TestOutboundDeadlineCancels(t *testing.T) {
	ft := newFakeTrunk(t, ringForever)
	u := newTestUA(t)
	rec := newRecorder()
	req := testRequest()
	req.Deadline = time.Now().Add(300 * time.Millisecond)
	leg, err := u.Dialer(testTrunk(ft.port, "udp"), &fakeMedia{}).Dial(context.Background(), req, rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.expect(t, signalling.EventRinging, evWait)
	recv(t, ft.cancels, "CANCEL")
	if ev := rec.expect(t, signalling.EventHangup, evWait); ev.Cause != signalling.CauseNoAnswer {
		t.Errorf("cause %s", ev.Cause)
	}
	waitDone(t, leg)
}

func TestOutboundHangupBeforeAnswerCancels(t *testing.T) {
	ft := newFakeTrunk(t, ringForever)
	u := newTestUA(t)
	fm := &fakeMedia{}
	rec := newRecorder()
	leg, err := u.Dialer(testTrunk(ft.port, "udp"), fm).Dial(context.Background(), testRequest(), rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.expect(t, signalling.EventRinging, evWait)
	leg.Hangup(context.Background(), signalling.CauseCancelled)
	c := recv(t, ft.cancels, "CANCEL")
	if c.CallID().Value() != string(leg.(*Leg).SIPCallID()) {
		t.Errorf("CANCEL Call-ID %q", c.CallID().Value())
	}
	waitDone(t, leg)
	rec.quiet(t, 300*time.Millisecond)
	if !fm.allClosed() {
		t.Error("media session not closed")
	}
	leg.Hangup(context.Background(), signalling.CauseCancelled)
}

func TestOutboundNoCommonCodec(t *testing.T) {
	const g722 = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 40000 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n"
	ft := newFakeTrunk(t, func(ft *fakeTrunk, d *sipgo.DialogServerSession, req *sipgosip.Request, tx sipgosip.ServerTransaction) {
		_ = d.RespondSDP([]byte(g722))
		ft.waitStop(tx)
	})
	u := newTestUA(t)
	rec := newRecorder()
	leg, err := u.Dialer(testTrunk(ft.port, "udp"), &fakeMedia{}).Dial(context.Background(), testRequest(), rec)
	if err != nil {
		t.Fatal(err)
	}
	ev := rec.expect(t, signalling.EventHangup, evWait)
	if ev.Cause != signalling.CauseIncompatible {
		t.Errorf("cause %s (%s)", ev.Cause, ev.Detail)
	}
	recv(t, ft.acks, "ACK")
	recv(t, ft.byes, "BYE")
	waitDone(t, leg)
}

func TestOutboundReinviteRefresh(t *testing.T) {
	ft, fm, rec, leg, d := dialAnswered(t, "udp")
	_ = ft
	reinv := sipgosip.NewRequest(sipgosip.INVITE, d.InviteRequest.Contact().Address)
	reinv.SetBody([]byte(answerSDP))
	ct := sipgosip.ContentTypeHeader("application/sdp")
	reinv.AppendHeader(&ct)
	ctx, cancel := context.WithTimeout(context.Background(), evWait)
	defer cancel()
	res, err := d.Do(ctx, reinv)
	if err != nil {
		t.Fatalf("re-INVITE: %v", err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("re-INVITE answered %d", res.StatusCode)
	}
	ans, err := ParseAnswer(res.Body(), []Codec{CodecPCMU})
	if err != nil || ans.Remote != fm.last().addr {
		t.Errorf("re-INVITE SDP %+v, %v", ans, err)
	}
	rec.quiet(t, 100*time.Millisecond)
	leg.Hangup(context.Background(), signalling.CauseNormal)
	waitDone(t, leg)
}

func TestOutboundInvalidNumber(t *testing.T) {
	u := newTestUA(t)
	req := testRequest()
	req.To.Number = "030 1234"
	_, err := u.Dialer(testTrunk(5060, "udp"), &fakeMedia{}).Dial(context.Background(), req, newRecorder())
	if ErrorCause(err) != signalling.CauseInvalidNumber {
		t.Fatalf("err %v maps to %s", err, ErrorCause(err))
	}
}

func TestUACloseEndsLegs(t *testing.T) {
	ft := newFakeTrunk(t, answerAfterRinging)
	u, err := New(Config{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	fm := &fakeMedia{}
	rec := newRecorder()
	leg, err := u.Dialer(testTrunk(ft.port, "udp"), fm).Dial(context.Background(), testRequest(), rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.expect(t, signalling.EventRinging, evWait)
	rec.expect(t, signalling.EventAnswered, evWait)
	recv(t, ft.acks, "ACK")
	if err := u.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	_ = u.Close() // idempotent
	recv(t, ft.byes, "BYE")
	if ev := rec.expect(t, signalling.EventHangup, evWait); ev.Cause != signalling.CauseShutdown {
		t.Errorf("cause %s", ev.Cause)
	}
	waitDone(t, leg)
	if !fm.allClosed() {
		t.Error("media session not closed")
	}
	if _, err := u.Dialer(testTrunk(ft.port, "udp"), fm).Dial(context.Background(), testRequest(), rec); ErrorCause(err) != signalling.CauseShutdown {
		t.Errorf("Dial after Close: %v", err)
	}
}

func TestUANoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("call", func(t *testing.T) {
		ft, _, _, leg, d := dialAnswered(t, "tcp")
		_ = ft
		if err := d.Bye(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitDone(t, leg)
	})
	var after int
	for i := 0; i < 100; i++ {
		if after = runtime.NumGoroutine(); after <= before {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	t.Errorf("goroutines: %d before, %d after UA and trunk closed\n%s", before, after, buf[:runtime.Stack(buf, true)])
}

func TestUAAnswersOptions(t *testing.T) {
	u := newTestUA(t)
	cua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	defer cua.Close()
	cli, err := sipgo.NewClient(cua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []string{"udp", "tcp"} {
		uri := sipgosip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(u.ListenAddr().Port())}
		req := sipgosip.NewRequest(sipgosip.OPTIONS, uri)
		req.SetTransport(strings.ToUpper(tr))
		ctx, cancel := context.WithTimeout(context.Background(), evWait)
		res, err := cli.Do(ctx, req)
		cancel()
		if err != nil {
			t.Fatalf("%s OPTIONS: %v", tr, err)
		}
		if res.StatusCode != 200 {
			t.Errorf("%s OPTIONS: %d", tr, res.StatusCode)
		}
	}
}

func TestOutboundHangupBeforeAnyResponse(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			select {
			case got <- strings.SplitN(string(buf[:n]), " ", 2)[0]:
			default:
			}
		}
	}()
	u := newTestUA(t)
	tr := testTrunk(pc.LocalAddr().(*net.UDPAddr).Port, "udp")
	tr.SetupTimeout = 600 * time.Millisecond
	fm := &fakeMedia{}
	rec := newRecorder()
	leg, err := u.Dialer(tr, fm).Dial(context.Background(), testRequest(), rec)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "INVITE" {
			t.Fatalf("first message %q", m)
		}
	case <-time.After(evWait):
		t.Fatal("no INVITE")
	}
	leg.Hangup(context.Background(), signalling.CauseCancelled)
	// Nothing to CANCEL without a provisional response (RFC 3261 9.1): the
	// leg gives up at the setup timeout and posts nothing.
	waitDone(t, leg)
	rec.quiet(t, 200*time.Millisecond)
	for len(got) > 0 {
		if m := <-got; m == "CANCEL" {
			t.Error("CANCEL sent before any provisional response")
		}
	}
	if !fm.allClosed() {
		t.Error("media session not closed")
	}
}

func TestUAListenAllAddresses(t *testing.T) {
	if _, err := New(Config{ListenAddr: "0.0.0.0:0"}); err == nil {
		t.Fatal("unspecified listen address without advertise IP accepted")
	}
	ft := newFakeTrunk(t, answerAfterRinging)
	u, err := New(Config{ListenAddr: "0.0.0.0:0", AdvertiseIP: netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	rec := newRecorder()
	leg, err := u.Dialer(testTrunk(ft.port, "udp"), &fakeMedia{}).Dial(context.Background(), testRequest(), rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.expect(t, signalling.EventRinging, evWait)
	rec.expect(t, signalling.EventAnswered, evWait)
	inv := recv(t, ft.invites, "INVITE")
	if via := inv.Via(); via.Host != "127.0.0.1" || via.Port != int(u.ListenAddr().Port()) {
		t.Errorf("Via sent-by %s:%d, want 127.0.0.1:%d", via.Host, via.Port, u.ListenAddr().Port())
	}
	if src := inv.Source(); !strings.HasSuffix(src, ":"+itoa(int(u.ListenAddr().Port()))) {
		t.Errorf("INVITE sent from %s, not the listening port %d", src, u.ListenAddr().Port())
	}
	recv(t, ft.acks, "ACK")
	leg.Hangup(context.Background(), signalling.CauseNormal)
	recv(t, ft.byes, "BYE")
	waitDone(t, leg)
}

func TestOutboundEarlyMedia(t *testing.T) {
	for _, final := range []int{200, 486} {
		t.Run(itoa(final), func(t *testing.T) {
			ft := newFakeTrunk(t, func(ft *fakeTrunk, d *sipgo.DialogServerSession, req *sipgosip.Request, tx sipgosip.ServerTransaction) {
				ct := sipgosip.ContentTypeHeader("application/sdp")
				_ = d.Respond(183, "Session Progress", []byte(answerSDP), &ct)
				time.Sleep(50 * time.Millisecond)
				if final == 200 {
					_ = d.RespondSDP([]byte(answerSDP))
					ft.waitStop(tx)
					return
				}
				_ = d.Respond(final, "Busy Here", nil)
			})
			u := newTestUA(t)
			fm := &fakeMedia{}
			rec := newRecorder()
			leg, err := u.Dialer(testTrunk(ft.port, "udp"), fm).Dial(context.Background(), testRequest(), rec)
			if err != nil {
				t.Fatal(err)
			}
			rec.expect(t, signalling.EventProgress, evWait)
			if leg.Audio() == nil {
				t.Error("Audio() nil after EventProgress")
			}
			if st := <-fm.last().started; st.codec != "PCMA" || st.remote.Port() != 40000 {
				t.Errorf("early media started with %+v", st)
			}
			if final == 200 {
				rec.expect(t, signalling.EventAnswered, evWait)
				if len(fm.last().started) != 0 {
					t.Error("media started twice")
				}
				leg.Hangup(context.Background(), signalling.CauseNormal)
			} else if ev := rec.expect(t, signalling.EventHangup, evWait); ev.Cause != signalling.CauseBusy {
				t.Errorf("cause %s", ev.Cause)
			}
			waitDone(t, leg)
			if leg.Audio() != nil || !fm.allClosed() {
				t.Error("media not released after the leg ended")
			}
		})
	}
}
