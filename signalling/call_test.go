package signalling

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/media"
)

type fakeEndpoint struct {
	name  string
	rates []int
	mu    sync.Mutex
	sink  media.PCMWriter
	rate  int
}

func (e *fakeEndpoint) Rates() []int                        { return e.rates }
func (e *fakeEndpoint) Writer(int) (media.PCMWriter, error) { return e, nil }
func (e *fakeEndpoint) WritePCM([]int16) error              { return nil }
func (e *fakeEndpoint) String() string                      { return e.name }
func (e *fakeEndpoint) SetSink(rate int, w media.PCMWriter) error {
	e.mu.Lock()
	e.sink, e.rate = w, rate
	e.mu.Unlock()
	return nil
}
func (e *fakeEndpoint) sinkSet() (bool, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sink != nil, e.rate
}

type fakeLeg struct {
	kind      string
	ep        *fakeEndpoint
	answerErr error

	mu       sync.Mutex
	answered int
	ringing  int
	hangups  []Cause
	hungup   chan struct{}
	once     sync.Once
}

func newFakeLeg(kind string, rates ...int) *fakeLeg {
	return &fakeLeg{kind: kind, ep: &fakeEndpoint{name: kind, rates: rates}, hungup: make(chan struct{})}
}

func (l *fakeLeg) Kind() string { return l.kind }
func (l *fakeLeg) Answer(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answered++
	return l.answerErr
}
func (l *fakeLeg) Ringing(context.Context) error { l.mu.Lock(); l.ringing++; l.mu.Unlock(); return nil }
func (l *fakeLeg) Audio() media.Endpoint         { return l.ep }
func (l *fakeLeg) Hangup(_ context.Context, c Cause) {
	l.mu.Lock()
	l.hangups = append(l.hangups, c)
	l.mu.Unlock()
	l.once.Do(func() { close(l.hungup) })
}
func (l *fakeLeg) firstHangup(t *testing.T) Cause {
	t.Helper()
	select {
	case <-l.hungup:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s leg was not hung up", l.kind)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hangups[0]
}

type fakeDialer struct {
	leg    *fakeLeg
	err    error
	poster Poster
	req    DialRequest
}

func (d *fakeDialer) Dial(_ context.Context, req DialRequest, p Poster) (Leg, error) {
	d.req, d.poster = req, p
	if d.err != nil {
		return nil, d.err
	}
	return d.leg, nil
}

type fakeAuth struct {
	err      error
	acquired int
	released int
	mu       sync.Mutex
}

func (a *fakeAuth) Authorize(string, string) error { return a.err }
func (a *fakeAuth) Acquire(string) (func(), error) {
	a.mu.Lock()
	a.acquired++
	a.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { a.mu.Lock(); a.released++; a.mu.Unlock() }) }, nil
}

type harness struct {
	mgr  *Manager
	auth *fakeAuth
	dial *fakeDialer
	in   *fakeLeg
	out  *fakeLeg
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{auth: &fakeAuth{}, in: newFakeLeg("matrix", 48000, 24000, 16000, 12000, 8000), out: newFakeLeg("sip", 8000)}
	h.dial = &fakeDialer{leg: h.out}
	m, err := NewManager(ManagerConfig{Log: zerolog.Nop(), Authorizer: h.auth, Router: &StaticRouter{Routes: []Route{{Name: "t", Dialer: h.dial}}}})
	if err != nil {
		t.Fatal(err)
	}
	h.mgr = m
	return h
}

func (h *harness) originate(deadline time.Time) (*Call, error) {
	return h.mgr.Originate(context.Background(), OriginateRequest{
		From:       Party{MatrixUser: "@alice:example.org"},
		To:         Party{Number: "+15550100"},
		Deadline:   deadline,
		NewInbound: func(*Call) (Leg, error) { return h.in, nil },
	})
}

func waitDone(t *testing.T, c *Call) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("call did not end")
	}
}

func TestCallAnsweredBridgedThenFarHangup(t *testing.T) {
	h := newHarness(t)
	c, err := h.originate(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if h.dial.req.To.Number != "+15550100" || h.dial.req.CallID != c.ID {
		t.Fatalf("dial request = %+v", h.dial.req)
	}
	c.Post(Event{Leg: h.out, Type: EventRinging})
	c.Post(Event{Leg: h.out, Type: EventAnswered})
	deadline := time.Now().Add(5 * time.Second)
	for c.State() != StateAnswered && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if c.State() != StateAnswered {
		t.Fatalf("state = %v", c.State())
	}
	if ok, rate := h.in.ep.sinkSet(); !ok || rate != 8000 {
		t.Fatalf("inbound sink set=%v rate=%d, want 8000 (narrowband-native bridge)", ok, rate)
	}
	if ok, rate := h.out.ep.sinkSet(); !ok || rate != 8000 {
		t.Fatalf("outbound sink set=%v rate=%d", ok, rate)
	}
	h.in.mu.Lock()
	if h.in.answered != 1 || h.in.ringing != 1 {
		t.Errorf("inbound answered=%d ringing=%d", h.in.answered, h.in.ringing)
	}
	h.in.mu.Unlock()
	c.Post(Event{Leg: h.out, Type: EventHangup, Cause: CauseNormal})
	waitDone(t, c)
	if got := h.in.firstHangup(t); got != CauseNormal {
		t.Errorf("inbound hangup cause = %v", got)
	}
	if c.EndCause() != CauseNormal {
		t.Errorf("end cause = %v", c.EndCause())
	}
	if ok, _ := h.in.ep.sinkSet(); ok {
		t.Error("media still bridged after the call ended")
	}
	if h.auth.released != 1 {
		t.Errorf("concurrency slot released %d times", h.auth.released)
	}
	if n := len(h.mgr.Calls()); n != 0 {
		t.Errorf("%d calls still tracked", n)
	}
}

func TestCallerCancelsBeforeAnswer(t *testing.T) {
	h := newHarness(t)
	c, err := h.originate(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	c.Post(Event{Leg: h.in, Type: EventHangup, Cause: CauseCancelled})
	waitDone(t, c)
	if got := h.out.firstHangup(t); got != CauseCancelled {
		t.Errorf("outbound hangup cause = %v, want cancelled", got)
	}
	if h.in.answered != 0 {
		t.Error("inbound leg answered")
	}
}

func TestDeadlineEndsUnansweredCall(t *testing.T) {
	h := newHarness(t)
	c, err := h.originate(time.Now().Add(50 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, c)
	if got := h.out.firstHangup(t); got != CauseNoAnswer {
		t.Errorf("outbound cause = %v", got)
	}
	if got := h.in.firstHangup(t); got != CauseNoAnswer {
		t.Errorf("inbound cause = %v", got)
	}
}

func TestFarSideBusyMapsToInbound(t *testing.T) {
	h := newHarness(t)
	c, err := h.originate(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	c.Post(Event{Leg: h.out, Type: EventHangup, Cause: CauseFromSIP(486)})
	waitDone(t, c)
	got := h.in.firstHangup(t)
	if got != CauseBusy || got.MatrixReason() != "user_busy" {
		t.Errorf("inbound cause = %v (%s)", got, got.MatrixReason())
	}
}

func TestRefusedByPolicyCreatesNoLeg(t *testing.T) {
	h := newHarness(t)
	h.auth.err = NewCauseError(CauseForbidden, "number denied", nil)
	made := false
	_, err := h.mgr.Originate(context.Background(), OriginateRequest{
		From: Party{MatrixUser: "@mallory:evil.org"}, To: Party{Number: "+19005550100"},
		NewInbound: func(*Call) (Leg, error) { made = true; return h.in, nil },
	})
	if CauseOf(err) != CauseForbidden {
		t.Fatalf("err = %v, cause %v", err, CauseOf(err))
	}
	if made || h.dial.poster != nil {
		t.Fatal("a leg was created or dialled for a refused call")
	}
}

func TestDialErrorHangsUpInbound(t *testing.T) {
	h := newHarness(t)
	h.dial.err = NewCauseError(CauseUnreachable, "trunk down", errors.New("connection refused"))
	_, err := h.originate(time.Time{})
	if CauseOf(err) != CauseUnreachable {
		t.Fatalf("cause = %v", CauseOf(err))
	}
	if got := h.in.firstHangup(t); got != CauseUnreachable {
		t.Errorf("inbound cause = %v", got)
	}
	if h.auth.released != 1 {
		t.Errorf("slot released %d times", h.auth.released)
	}
}

func TestInboundAnswerFailureEndsBothLegs(t *testing.T) {
	h := newHarness(t)
	h.in.answerErr = errors.New("ICE gathering failed")
	c, err := h.originate(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	c.Post(Event{Leg: h.out, Type: EventAnswered})
	waitDone(t, c)
	if got := h.out.firstHangup(t); got != CauseMediaFailed {
		t.Errorf("outbound cause = %v", got)
	}
}

func TestDrainRefusesNewCallsAndHangsUpLeftovers(t *testing.T) {
	h := newHarness(t)
	c, err := h.originate(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	h.mgr.Drain(ctx)
	waitDone(t, c)
	if c.EndCause() != CauseShutdown {
		t.Errorf("cause = %v", c.EndCause())
	}
	if _, err := h.originate(time.Time{}); CauseOf(err) != CauseShutdown {
		t.Errorf("new call while draining: %v", err)
	}
}

func TestCauseTableComplete(t *testing.T) {
	for c := Cause(0); c < numCauses; c++ {
		info := causeTable[c]
		if info.name == "" || info.matrix == "" || info.text == "" {
			t.Errorf("cause %d has an incomplete table row: %+v", c, info)
		}
	}
	cases := map[int]Cause{486: CauseBusy, 600: CauseBusy, 404: CauseNotFound, 484: CauseInvalidNumber,
		503: CauseCongestion, 500: CauseServerError, 408: CauseNoAnswer, 480: CauseNoAnswer, 603: CauseRejected, 488: CauseIncompatible}
	for code, want := range cases {
		if got := CauseFromSIP(code); got != want {
			t.Errorf("CauseFromSIP(%d) = %v, want %v", code, got, want)
		}
	}
	if CauseFromMatrix("", true) != CauseNormal || CauseFromMatrix("user_hangup", false) != CauseCancelled ||
		CauseFromMatrix("ice_failed", true) != CauseMediaFailed {
		t.Error("CauseFromMatrix mapping wrong")
	}
}
