package modem

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/modem/modemtest"
	"github.com/matrix-gateway/gateway/modem/modemtest/fakeat"
	"github.com/matrix-gateway/gateway/signalling"
)

type diallerRig struct {
	*routeRig
	session *modemtest.Bus
	dialler *Dialler
	api     *DiallerClient
	sigs    <-chan DiallerSignal
}

// newDiallerRig exports the dialler on a second private bus (the phone's
// session bus) in front of the real ModemManager rig; its IP route fails
// with a 5xx so that calls fall back to GSM.
func newDiallerRig(t *testing.T) *diallerRig {
	r := &diallerRig{routeRig: newRouteRig(t, signalling.EventHangup), session: modemtest.StartBus(t)}
	var err error
	r.dialler, err = NewDialler(DiallerConfig{
		Conn: r.session.Conn(t), Router: r.router, Client: r.client,
		Emergency: func(n string) bool { return n == "112" },
		Normalize: func(n string) (string, error) { return signalling.Normalize(n, "1") },
		From:      signalling.Party{DisplayName: "phone"},
		// GSM calls must never touch the phone's audio device (the phone's
		// audio stack carries them): one that cannot be opened proves it.
		LocalAudio: &AudioConfig{Device: "files:/nonexistent/capture,/nonexistent/playback", Rate: 16000},
		Log:        zerolog.New(zerolog.NewTestWriter(t)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.dialler.Close)
	hook := r.dialler.OnRoute
	r.hook.Store(&hook)
	r.api = NewDiallerClient(r.session.Conn(t))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if r.sigs, err = r.api.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}

// expect waits for a signal named name whose arguments start with args.
func (r *diallerRig) expect(t *testing.T, name string, args ...string) DiallerSignal {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case s := <-r.sigs:
			if s.Name == name && len(s.Args) >= len(args) && strings.Join(s.Args[:len(args)], "\x00") == strings.Join(args, "\x00") {
				return s
			}
			t.Logf("signal %s %q (waiting for %s %q)", s.Name, s.Args, name, args)
		case <-timer.C:
			t.Fatalf("no signal %s %q within %s", name, args, wait)
		}
	}
}

func TestDiallerAPIOutgoingWithFallback(t *testing.T) {
	t.Parallel()
	r := newDiallerRig(t)
	ctx := context.Background()
	xml, err := r.api.Introspect(ctx)
	if err != nil || !strings.Contains(xml, `<interface name="org.matrixgateway.Dialler1">`) || !strings.Contains(xml, `<method name="Dial">`) {
		t.Fatalf("introspection: %v\n%s", err, xml)
	}

	id, route, err := r.api.Dial(ctx, "(555) 010-1000")
	if err != nil {
		t.Fatal(err)
	}
	if route != "matrix" {
		t.Errorf("first route %q, want matrix (IP first)", route)
	}
	r.expect(t, "CallAdded", id, "+15550101000", "outgoing")
	r.expect(t, "RouteChosen", id, "matrix")
	// The IP set-up fails (5xx): the user hears ringing while the call
	// moves to GSM.
	r.expect(t, "CallStateChanged", id, StateRinging)
	r.expect(t, "RouteChosen", id, "modem")
	waitFake(t, r.fake, "GSM dial", func(f *fakeat.Modem) bool { return len(f.Dialled()) == 1 && f.Dialled()[0] == "+15550101000" })
	if err := r.fake.RemoteAnswer(); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "CallStateChanged", id, StateActive)
	calls, err := r.api.ListCalls(ctx)
	if err != nil || len(calls) != 1 || calls[0] != (CallInfo{ID: id, Number: "+15550101000", Direction: "outgoing", State: StateActive, Route: "modem"}) {
		t.Fatalf("ListCalls = %+v, %v", calls, err)
	}
	if err := r.api.SendDtmf(ctx, id, "9#"); err != nil {
		t.Fatal(err)
	}
	waitFake(t, r.fake, "DTMF", func(f *fakeat.Modem) bool { return f.DTMFSent() == "9#" })
	time.Sleep(300 * time.Millisecond) // see waitState: URC handlers follow the state change
	if err := r.fake.ReceiveDTMF('7'); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "DtmfReceived", id, "7")
	if err := r.api.Hangup(ctx, id); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "CallStateChanged", id, StateEnded, "normal")
	waitFake(t, r.fake, "hangup", func(f *fakeat.Modem) bool { return len(f.Calls()) == 0 })
	if calls, _ := r.api.ListCalls(ctx); len(calls) != 0 {
		t.Fatalf("calls after hangup: %+v", calls)
	}
	var de dbus.Error
	if err := r.api.Hangup(ctx, id); !errors.As(err, &de) || de.Name != DiallerIface+".Error.NotFound" {
		t.Fatalf("hangup of an ended call: %v", err)
	}
}

func TestDiallerAPIIncomingAnswered(t *testing.T) {
	t.Parallel()
	r := newDiallerRig(t)
	ctx := context.Background()
	if err := r.fake.Ring("+15550101100"); err != nil {
		t.Fatal(err)
	}
	s := r.expect(t, "CallAdded")
	id := s.Args[0]
	if s.Args[1] != "+15550101100" || s.Args[2] != "incoming" {
		t.Fatalf("CallAdded %q", s.Args)
	}
	r.expect(t, "CallStateChanged", id, StateRingingIn)
	var de dbus.Error
	if _, _, err := r.api.Dial(ctx, "not a number"); !errors.As(err, &de) || de.Name != DiallerIface+".Error.InvalidNumber" {
		t.Fatalf("Dial of a bad number: %v", err)
	}
	if err := r.api.Answer(ctx, id); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "CallStateChanged", id, StateActive)
	waitFake(t, r.fake, "answer", func(f *fakeat.Modem) bool { c := f.Calls(); return len(c) == 1 && c[0].Stat == fakeat.StatActive })
	time.Sleep(300 * time.Millisecond)
	if err := r.fake.RemoteHangup(); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "CallStateChanged", id, StateEnded, "normal")
}
