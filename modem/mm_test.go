package modem

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/modem/modemtest"
	"github.com/matrix-gateway/gateway/modem/modemtest/fakeat"
	"github.com/matrix-gateway/gateway/signalling"
)

// wait bounds every wait in these tests: generous, since ModemManager polls
// the call list every few seconds.
const wait = 30 * time.Second

var portSeq atomic.Int64

// rig is the real ModemManager on a private bus driving a fake AT modem,
// and a Client on that bus.
type rig struct {
	bus    *modemtest.Bus
	mm     *modemtest.MM
	fake   *fakeat.Modem
	client *Client
	port   string
	plugin string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := startRig(t, "simtech")
	r.ready(t)
	return r
}

// startRig starts ModemManager with plugin on a fake modem made with opts
// and a Client; it does not wait for the modem.
func startRig(t *testing.T, plugin string, opts ...fakeat.Option) *rig {
	t.Helper()
	modemtest.Skip(t)
	r := &rig{bus: modemtest.StartBus(t), plugin: plugin}
	r.port = fmt.Sprintf("abstract:gwfake-%d-%d", time.Now().UnixNano()%1e6, portSeq.Add(1))
	var err error
	if r.fake, err = fakeat.New(r.port, opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.fake.Close() }) // registered first: runs after MM stopped
	r.startMM(t)
	r.client, err = New(Config{Bus: r.bus.Address, Enable: true, CallTimeout: wait, Log: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.client.Close() })
	return r
}

func (r *rig) startMM(t *testing.T) {
	r.mm = modemtest.StartMM(t, r.bus)
	r.mm.AddModem(t, "fake1", r.plugin, r.port)
}

func (r *rig) ready(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := r.client.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// recorder is a Poster that keeps the events.
type recorder struct {
	ch      chan signalling.Event
	timeout time.Duration
}

func newRecorder() *recorder { return &recorder{ch: make(chan signalling.Event, 64), timeout: wait} }

func (r *recorder) Post(ev signalling.Event) { r.ch <- ev }

func (r *recorder) next(t *testing.T, want signalling.EventType) signalling.Event {
	t.Helper()
	timer := time.NewTimer(r.timeout)
	defer timer.Stop()
	for {
		select {
		case ev := <-r.ch:
			if ev.Type == want {
				return ev
			}
			if ev.Type == signalling.EventHangup {
				t.Fatalf("got hangup (%s: %s) while waiting for %s", ev.Cause, ev.Detail, want)
			}
			t.Logf("event %s (waiting for %s)", ev.Type, want)
		case <-timer.C:
			t.Fatalf("no %s event within %s", want, r.timeout)
		}
	}
}

func waitFake(t *testing.T, f *fakeat.Modem, what string, cond func(*fakeat.Modem) bool) {
	t.Helper()
	if !f.WaitFor(wait, cond) {
		t.Fatalf("fake modem: %s did not happen within %s; calls %+v", what, wait, f.Calls())
	}
}

// waitState waits until call reaches state, then a little longer: ModemManager
// installs its in-call URC handlers (NO CARRIER) just after it reports the
// state, and a URC sent before that is lost (a real network is never that fast).
func waitState(t *testing.T, call *Call, state CallState) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for call.State() != state {
		if time.Now().After(deadline) {
			t.Fatalf("call state %s, want %s", call.State(), state)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
}

func (r *rig) dial(t *testing.T, number string, p signalling.Poster) *Leg {
	t.Helper()
	d := &Dialer{Client: r.client}
	leg, err := d.Dial(context.Background(), signalling.DialRequest{To: signalling.Party{Number: number}}, p)
	if err != nil {
		t.Fatal(err)
	}
	return leg.(*Leg)
}

func (r *rig) mmCalls(t *testing.T) []dbus.ObjectPath {
	t.Helper()
	var calls []dbus.ObjectPath
	st := r.client.Status()
	err := r.bus.Conn(t).Object(mmService, st.Path).Call(ifVoice+".ListCalls", 0).Store(&calls)
	if err != nil {
		t.Fatal(err)
	}
	return calls
}

func TestOutgoingCallThroughAllStates(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	st := r.client.Status()
	if !st.Present || !st.Registered() || st.Path == "" {
		t.Fatalf("status %+v: want a registered modem", st)
	}
	rec := newRecorder()
	leg := r.dial(t, "+15550100200", rec)
	if got := leg.Call().State(); got != CallDialing && got != CallRingingOut {
		t.Errorf("state after Dial = %s, want dialing", got)
	}
	if d := r.fake.Dialled(); len(d) != 1 || d[0] != "+15550100200" {
		t.Fatalf("modem dialled %v", d)
	}
	if err := r.fake.Alert(); err != nil {
		t.Fatal(err)
	}
	rec.next(t, signalling.EventRinging)
	if err := r.fake.RemoteAnswer(); err != nil {
		t.Fatal(err)
	}
	rec.next(t, signalling.EventAnswered)
	if got := leg.Call().State(); got != CallActive {
		t.Fatalf("state = %s, want active", got)
	}

	// DTMF both ways.
	if err := sendDigits(leg, "12#"); err != nil {
		t.Fatal(err)
	}
	waitFake(t, r.fake, "DTMF 12#", func(f *fakeat.Modem) bool { return f.DTMFSent() == "12#" })
	for _, d := range "5*" {
		if err := r.fake.ReceiveDTMF(d); err != nil {
			t.Fatal(err)
		}
		if ev := rec.next(t, signalling.EventDTMF); ev.Digit != d {
			t.Fatalf("DTMF %q received, want %q", ev.Digit, d)
		}
	}

	// Local hangup: the modem hangs up, the call is deleted, no hangup event.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	leg.Hangup(ctx, signalling.CauseNormal)
	waitFake(t, r.fake, "hangup", func(f *fakeat.Modem) bool { return len(f.Calls()) == 0 })
	if calls := r.mmCalls(t); len(calls) != 0 {
		t.Errorf("ModemManager still lists %v after hangup", calls)
	}
	select {
	case ev := <-rec.ch:
		if ev.Type == signalling.EventHangup {
			t.Errorf("leg posted a hangup for a hangup the call asked for")
		}
	default:
	}
	leg.Hangup(ctx, signalling.CauseNormal) // idempotent
}

func TestIncomingCallAnsweredThenRemoteHangup(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	calls := make(chan *Call, 1)
	r.client.OnIncoming(func(c *Call) { calls <- c })
	if err := r.fake.Ring("+15550100300"); err != nil {
		t.Fatal(err)
	}
	var call *Call
	select {
	case call = <-calls:
	case <-time.After(wait):
		t.Fatal("no incoming call")
	}
	if call.Number() != "+15550100300" || call.Direction() != DirectionIncoming || call.State() != CallRingingIn {
		t.Fatalf("incoming call %s %s %s", call.Number(), call.Direction(), call.State())
	}
	rec := newRecorder()
	leg := NewLeg(call, rec)
	defer leg.Hangup(context.Background(), signalling.CauseNormal)
	if err := leg.Answer(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFake(t, r.fake, "answer", func(f *fakeat.Modem) bool {
		c := f.Calls()
		return len(c) == 1 && c[0].Stat == fakeat.StatActive
	})
	waitState(t, call, CallActive)
	if err := r.fake.RemoteHangup(); err != nil {
		t.Fatal(err)
	}
	ev := rec.next(t, signalling.EventHangup)
	if ev.Cause != signalling.CauseNormal {
		t.Fatalf("remote hangup after answer: cause %s (%s), want normal", ev.Cause, ev.Detail)
	}
	leg.Hangup(context.Background(), ev.Cause)
	deadline := time.Now().Add(wait)
	for len(r.mmCalls(t)) != 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if c := r.mmCalls(t); len(c) != 0 {
		t.Fatalf("terminated call not deleted: %v", c)
	}
}

func TestOutgoingBusy(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	rec := newRecorder()
	leg := r.dial(t, "+15550100400", rec)
	defer leg.Hangup(context.Background(), signalling.CauseBusy)
	waitFake(t, r.fake, "dial", func(f *fakeat.Modem) bool { return len(f.Calls()) == 1 })
	if err := r.fake.Busy(); err != nil {
		t.Fatal(err)
	}
	ev := rec.next(t, signalling.EventHangup)
	if ev.Cause != signalling.CauseBusy {
		t.Fatalf("busy: cause %s (%s), want busy", ev.Cause, ev.Detail)
	}
}

func TestOutgoingRemoteHangupAfterAnswer(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	rec := newRecorder()
	leg := r.dial(t, "+15550100500", rec)
	defer leg.Hangup(context.Background(), signalling.CauseNormal)
	if err := r.fake.RemoteAnswer(); err != nil {
		t.Fatal(err)
	}
	rec.next(t, signalling.EventAnswered)
	if err := r.fake.RemoteHangup(); err != nil {
		t.Fatal(err)
	}
	if ev := rec.next(t, signalling.EventHangup); ev.Cause != signalling.CauseNormal {
		t.Fatalf("cause %s (%s), want normal", ev.Cause, ev.Detail)
	}
}

func TestModemDisappearsMidCall(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	rec := newRecorder()
	leg := r.dial(t, "+15550100600", rec)
	defer leg.Hangup(context.Background(), signalling.CauseNormal)
	if err := r.fake.RemoteAnswer(); err != nil {
		t.Fatal(err)
	}
	rec.next(t, signalling.EventAnswered)
	// The modem dies: it stops answering. ModemManager marks it invalid after
	// consecutive command timeouts and unexports it (without udev, in test
	// mode, a closed port alone is not noticed). DTMF requests keep commands
	// flowing so the timeouts happen.
	r.fake.Mute()
	rec.timeout = 3 * wait // 10 timeouts of 3 s each
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; i < 40; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = leg.Call().SendDTMF(ctx, "1")
			cancel()
		}
	}()
	ev := rec.next(t, signalling.EventHangup)
	if ev.Cause != signalling.CauseUnreachable {
		t.Fatalf("cause %s (%s), want unreachable", ev.Cause, ev.Detail)
	}
	t.Logf("modem gone mid-call: %s", ev.Detail)
	deadline := time.Now().Add(wait)
	for r.client.Status().Present && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if st := r.client.Status(); st.Present {
		t.Fatalf("modem still present after it disappeared: %+v", st)
	}
	if _, err := r.client.Dial(context.Background(), "+15550100601", false); signalling.CauseOf(err) != signalling.CauseUnreachable {
		t.Fatalf("dial without a modem: %v, want an unreachable error", err)
	}
}

func TestModemManagerRestarts(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	rec := newRecorder()
	leg := r.dial(t, "+15550100700", rec)
	defer leg.Hangup(context.Background(), signalling.CauseNormal)
	if err := r.fake.RemoteAnswer(); err != nil {
		t.Fatal(err)
	}
	rec.next(t, signalling.EventAnswered)
	r.mm.Stop()
	ev := rec.next(t, signalling.EventHangup)
	if ev.Cause != signalling.CauseUnreachable {
		t.Fatalf("cause %s (%s), want unreachable", ev.Cause, ev.Detail)
	}
	if st := r.client.Status(); st.Present {
		t.Fatalf("modem present while ModemManager is stopped: %+v", st)
	}
	// ModemManager comes back: the client finds the modem again and calls work.
	r.startMM(t)
	r.ready(t)
	rec2 := newRecorder()
	leg2 := r.dial(t, "+15550100701", rec2)
	defer leg2.Hangup(context.Background(), signalling.CauseNormal)
	if err := r.fake.RemoteAnswer(); err != nil {
		t.Fatal(err)
	}
	rec2.next(t, signalling.EventAnswered)
}

func TestGenericPluginOutgoingCall(t *testing.T) {
	t.Parallel()
	r := startRig(t, "generic")
	r.ready(t)
	rec := newRecorder()
	leg := r.dial(t, "+15550101200", rec)
	if err := r.fake.Alert(); err != nil {
		t.Fatal(err)
	}
	rec.next(t, signalling.EventRinging)
	if err := r.fake.RemoteAnswer(); err != nil {
		t.Fatal(err)
	}
	rec.next(t, signalling.EventAnswered)
	waitState(t, leg.Call(), CallActive)
	if err := r.fake.RemoteHangup(); err != nil {
		t.Fatal(err)
	}
	if ev := rec.next(t, signalling.EventHangup); ev.Cause != signalling.CauseNormal {
		t.Fatalf("cause %s (%s)", ev.Cause, ev.Detail)
	}
	leg.Hangup(context.Background(), signalling.CauseNormal)
}

func TestNumberRejectedByModem(t *testing.T) {
	t.Parallel()
	r := startRig(t, "simtech", fakeat.RejectingPrefix("+999"))
	r.ready(t)
	_, err := (&Dialer{Client: r.client}).Dial(context.Background(), signalling.DialRequest{To: signalling.Party{Number: "+9990001"}}, newRecorder())
	if err == nil {
		t.Fatal("a number the modem rejects was dialled")
	}
	t.Logf("rejected: %v (cause %s)", err, signalling.CauseOf(err))
	if c := signalling.CauseOf(err); c != signalling.CauseForbidden {
		t.Fatalf("cause %s, want forbidden (+CME ERROR: 3, operation not allowed)", c)
	}
	if calls := r.mmCalls(t); len(calls) != 0 {
		t.Fatalf("failed call left in ModemManager: %v", calls)
	}
	// The modem still works afterwards.
	rec := newRecorder()
	leg := r.dial(t, "+15550101300", rec)
	defer leg.Hangup(context.Background(), signalling.CauseNormal)
	waitFake(t, r.fake, "dial", func(f *fakeat.Modem) bool { return len(f.Calls()) == 1 })
}

func TestNoSIM(t *testing.T) {
	t.Parallel()
	r := startRig(t, "simtech", fakeat.WithoutSIM())
	deadline := time.Now().Add(wait)
	for !r.client.Status().Present && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	st := r.client.Status()
	t.Logf("status without SIM: %+v", st)
	if st.Registered() {
		t.Fatalf("registered without a SIM: %+v", st)
	}
	_, err := r.client.Dial(context.Background(), "+15550101400", false)
	if signalling.CauseOf(err) != signalling.CauseUnreachable {
		t.Fatalf("dial without SIM: %v, want unreachable", err)
	}
	if d := r.fake.Dialled(); len(d) != 0 {
		t.Fatalf("modem dialled %v without a SIM", d)
	}
}

func sendDigits(leg *Leg, digits string) error {
	for _, d := range digits {
		if err := leg.SendDTMF(context.Background(), d, 0); err != nil {
			return err
		}
	}
	return nil
}
