package conference

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
)

// toneEP is a participant's media endpoint: it sends a tone into whatever
// the call bridged it to and keeps what it hears.
type toneEP struct {
	rate int
	freq float64

	mu    sync.Mutex
	sink  media.PCMWriter
	got   []int16
	stop  chan struct{}
	once  sync.Once
	phase float64
}

func newToneEP(rate int, freq float64) *toneEP {
	e := &toneEP{rate: rate, freq: freq, stop: make(chan struct{})}
	go e.feed()
	return e
}

func (e *toneEP) Rates() []int                             { return []int{e.rate} }
func (e *toneEP) Writer(rate int) (media.PCMWriter, error) { return e, nil }
func (e *toneEP) String() string                           { return fmt.Sprintf("tone/%d", e.rate) }
func (e *toneEP) SetSink(rate int, w media.PCMWriter) error {
	e.mu.Lock()
	e.sink = w
	e.mu.Unlock()
	return nil
}

// WritePCM keeps what the participant hears (bounded to 30 s).
func (e *toneEP) WritePCM(pcm []int16) error {
	e.mu.Lock()
	if len(e.got) < 30*e.rate {
		e.got = append(e.got, pcm...)
	}
	e.mu.Unlock()
	return nil
}

// feed sends 20 ms tone frames in real time for at most 30 s.
func (e *toneEP) feed() {
	n := media.SamplesPerFrame(e.rate)
	frame := make([]int16, n)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for range 1500 {
		select {
		case <-e.stop:
			return
		case <-tick.C:
		}
		for i := range frame {
			frame[i] = int16(6000 * math.Sin(e.phase))
			e.phase += 2 * math.Pi * e.freq / float64(e.rate)
		}
		e.mu.Lock()
		w := e.sink
		e.mu.Unlock()
		if w != nil {
			_ = w.WritePCM(frame)
		}
	}
}

func (e *toneEP) close() { e.once.Do(func() { close(e.stop) }) }

// heard returns the last d of what the participant heard.
func (e *toneEP) heard(d time.Duration) []int16 {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := int(d.Seconds() * float64(e.rate))
	if n > len(e.got) {
		n = len(e.got)
	}
	return append([]int16(nil), e.got[len(e.got)-n:]...)
}

// partLeg is a participant's own leg (as a Matrix session or SIP dialog would be).
type partLeg struct {
	kind string
	ep   *toneEP
	call *signalling.Call

	mu     sync.Mutex
	causes []signalling.Cause
}

func (l *partLeg) Kind() string                 { return l.kind }
func (l *partLeg) Answer(context.Context) error { return nil }
func (l *partLeg) Audio() media.Endpoint        { return l.ep }
func (l *partLeg) Hangup(_ context.Context, c signalling.Cause) {
	l.mu.Lock()
	l.causes = append(l.causes, c)
	l.mu.Unlock()
	l.ep.close()
}

func (l *partLeg) hungUp() (signalling.Cause, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.causes) == 0 {
		return 0, false
	}
	return l.causes[0], true
}

func (l *partLeg) press(digits string) {
	for _, d := range digits {
		l.call.Post(signalling.Event{Leg: l, Type: signalling.EventDTMF, Digit: d, Duration: 100 * time.Millisecond})
	}
}

func (l *partLeg) leave() {
	l.call.Post(signalling.Event{Leg: l, Type: signalling.EventHangup, Cause: signalling.CauseNormal, Detail: "bye"})
}

type allowAll struct{ deny string }

func (a allowAll) Authorize(user, number string) error {
	if a.deny != "" && number == a.deny {
		return signalling.NewCauseError(signalling.CauseForbidden, "number not allowed", nil)
	}
	return nil
}
func (allowAll) Acquire(string) (func(), error) { return func() {}, nil }

// phoneDialer "dials" a phone that answers at once with a tone.
type phoneDialer struct {
	freq float64
	mu   sync.Mutex
	legs []*partLeg
}

func (d *phoneDialer) Route(context.Context, signalling.Party, signalling.Party) (signalling.Dialer, error) {
	return d, nil
}

func (d *phoneDialer) Dial(_ context.Context, req signalling.DialRequest, p signalling.Poster) (signalling.Leg, error) {
	l := &partLeg{kind: "sip", ep: newToneEP(8000, d.freq), call: p.(*signalling.Call)}
	d.mu.Lock()
	d.legs = append(d.legs, l)
	d.mu.Unlock()
	p.Post(signalling.Event{Leg: l, Type: signalling.EventAnswered})
	return l, nil
}

// recAnnouncer keeps the notices and rosters sent to rooms.
type recAnnouncer struct {
	mu      sync.Mutex
	notices []string
	rosters []Roster
}

func (a *recAnnouncer) Notice(_ context.Context, room, text string) {
	a.mu.Lock()
	a.notices = append(a.notices, text)
	a.mu.Unlock()
}

func (a *recAnnouncer) Roster(_ context.Context, room string, r Roster) {
	a.mu.Lock()
	a.rosters = append(a.rosters, r)
	a.mu.Unlock()
}

func (a *recAnnouncer) saw(sub string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range a.notices {
		if strings.Contains(n, sub) {
			return true
		}
	}
	return false
}

type env struct {
	t     *testing.T
	mgr   *signalling.Manager
	reg   *Registry
	ann   *recAnnouncer
	phone *phoneDialer
}

func newEnv(t *testing.T, auth allowAll, cfg Config) *env {
	t.Helper()
	e := &env{t: t, ann: &recAnnouncer{}, phone: &phoneDialer{freq: 2300}}
	var err error
	e.mgr, err = signalling.NewManager(signalling.ManagerConfig{Log: zerolog.Nop(), Authorizer: auth, Router: e.phone})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Manager, cfg.Announce, cfg.Log = e.mgr, e.ann, zerolog.Nop()
	if cfg.DialIn == nil {
		cfg.DialIn = []string{"+15553330000"}
	}
	e.reg, err = NewRegistry(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.mgr.HangupAll()
		e.reg.Close()
	})
	return e
}

// join seats a participant through dialer and returns its leg.
func (e *env) join(dialer signalling.Dialer, from signalling.Party, kind string, rate int, freq float64) (*partLeg, error) {
	l := &partLeg{kind: kind, ep: newToneEP(rate, freq)}
	_, err := e.mgr.Originate(context.Background(), signalling.OriginateRequest{
		From: from, To: signalling.Party{DisplayName: "conference"}, Inbound: true, Dialer: dialer,
		Direction: signalling.DirectionConference,
		NewInbound: func(c *signalling.Call) (signalling.Leg, error) {
			l.call = c
			return l, nil
		},
	})
	if err != nil {
		l.ep.close()
		return nil, err
	}
	return l, nil
}

func (e *env) mustJoin(room, user string, rate int, freq float64) *partLeg {
	e.t.Helper()
	d, err := e.reg.JoinDialer(room, "matrix", "matrix")
	if err != nil {
		e.t.Fatal(err)
	}
	l, err := e.join(d, signalling.Party{MatrixUser: user}, "matrix", rate, freq)
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func (e *env) cmd(room, user string, level int, body string) string {
	e.t.Helper()
	reply, ok := e.reg.Command(context.Background(), CommandRequest{
		Room: room, Sender: signalling.Party{MatrixUser: user, Number: "+15551230000"}, Body: body,
		PowerLevel: level, Required: 50, DefaultCC: "1",
	})
	if !ok {
		e.t.Fatalf("%q was not taken as a command", body)
	}
	return reply
}

const room = "!conf:hs"

func TestMixEveryoneButYourselfMuteKickAndEnd(t *testing.T) {
	e := newEnv(t, allowAll{}, Config{})
	if _, err := e.reg.Create(context.Background(), room, "@mod:hs", ""); err != nil {
		t.Fatal(err)
	}
	a := e.mustJoin(room, "@a:hs", 16000, 500)
	b := e.mustJoin(room, "@b:hs", 8000, 700)
	c := e.mustJoin(room, "@c:hs", 16000, 1100)
	waitFor(t, "three participants", func() bool { return len(e.reg.Participants(room)) == 3 })
	time.Sleep(800 * time.Millisecond)

	legs := []*partLeg{a, b, c}
	freqs := []float64{500, 700, 1100}
	for i, l := range legs {
		pcm := l.ep.heard(400 * time.Millisecond)
		for j, f := range freqs {
			lvl := media.Goertzel(pcm, l.ep.rate, f)
			if i == j && lvl > 0.01 {
				t.Errorf("participant %d hears its own %v Hz tone (%.3f)", i, f, lvl)
			}
			if i != j && lvl < 0.2 {
				t.Errorf("participant %d hears participant %d's %v Hz tone only at %.3f", i, j, f, lvl)
			}
		}
	}

	// A member below the power level cannot mute; a moderator can.
	if r := e.cmd(room, "@b:hs", 0, "!conf mute @b:hs"); !strings.Contains(r, "power level 50") {
		t.Errorf("non-moderator mute: %q", r)
	}
	if r := e.cmd(room, "@mod:hs", 100, "!conf mute @b:hs"); !strings.Contains(r, "is muted") {
		t.Fatalf("mute: %q", r)
	}
	time.Sleep(400 * time.Millisecond)
	if lvl := media.Goertzel(a.ep.heard(300*time.Millisecond), 16000, 700); lvl > 0.01 {
		t.Errorf("a still hears muted b (%.3f)", lvl)
	}
	if lvl := media.Goertzel(b.ep.heard(300*time.Millisecond), 8000, 500); lvl < 0.2 {
		t.Errorf("muted b no longer hears a (%.3f)", lvl)
	}
	if r := e.cmd(room, "@mod:hs", 100, "!conf info"); !strings.Contains(r, "(muted)") || !strings.Contains(r, "On the call (3)") {
		t.Errorf("info: %q", r)
	}

	// Kick c: its call ends, the others stay.
	if r := e.cmd(room, "@mod:hs", 100, "!conf kick @c:hs"); !strings.Contains(r, "removed") {
		t.Fatalf("kick: %q", r)
	}
	waitFor(t, "c hung up", func() bool { _, ok := c.hungUp(); return ok })
	if cause, _ := c.hungUp(); cause != signalling.CauseNormal {
		t.Errorf("kicked participant's cause = %v", cause)
	}
	waitFor(t, "two participants", func() bool { return len(e.reg.Participants(room)) == 2 })
	if _, ok := a.hungUp(); ok {
		t.Error("kicking c hung up a")
	}

	a.leave()
	b.leave()
	waitFor(t, "the conference to end", func() bool { return e.ann.saw("The conference call ended.") })
	if p := e.reg.Participants(room); len(p) != 0 {
		t.Errorf("participants after everyone left: %v", p)
	}
	if !e.ann.saw("@c:hs left the conference call: removed from the conference by @mod:hs") {
		t.Errorf("no notice for the kick: %v", e.ann.notices)
	}
	// The room keeps its conference for the next call.
	if _, ok := e.reg.Lookup(room); !ok {
		t.Error("the conference room was forgotten when the call ended")
	}
}

func TestDialInPIN(t *testing.T) {
	e := newEnv(t, allowAll{}, Config{PINDigits: 4, PINAttempts: 2, PINFailures: 3})
	if _, err := e.reg.Create(context.Background(), room, "@mod:hs", "4321"); err != nil {
		t.Fatal(err)
	}
	caller := signalling.Party{Number: "+15551110001"}
	p1, err := e.join(e.reg.IVRDialer(), caller, "sip", 8000, 1700)
	if err != nil {
		t.Fatal(err)
	}
	// The caller hears the PIN prompt (660 Hz beeps) before entering anything.
	waitFor(t, "the PIN prompt", func() bool { return media.Goertzel(p1.ep.heard(200*time.Millisecond), 8000, 660) > 0.5 })
	p1.press("1111") // wrong: one failure, one try left
	time.Sleep(300 * time.Millisecond)
	if _, ok := p1.hungUp(); ok {
		t.Fatal("hung up after the first wrong PIN")
	}
	p1.press("4321")
	waitFor(t, "the caller seated", func() bool { return len(e.reg.Participants(room)) == 1 })
	if got := e.reg.Participants(room)[0]; got.Name != caller.Number || got.Via != "dial_in" {
		t.Errorf("participant = %+v", got)
	}
	// A Matrix participant and the phone hear each other.
	m := e.mustJoin(room, "@a:hs", 16000, 500)
	time.Sleep(700 * time.Millisecond)
	if lvl := media.Goertzel(p1.ep.heard(300*time.Millisecond), 8000, 500); lvl < 0.3 {
		t.Errorf("dial-in phone hears the Matrix participant at %.3f", lvl)
	}
	if lvl := media.Goertzel(m.ep.heard(300*time.Millisecond), 16000, 1700); lvl < 0.3 {
		t.Errorf("Matrix participant hears the phone at %.3f", lvl)
	}
	// A flood of digits in the conference changes nothing.
	for range 20 {
		p1.press("1234567890#")
	}
	time.Sleep(200 * time.Millisecond)
	if _, ok := p1.hungUp(); ok {
		t.Fatal("a DTMF flood hung the participant up")
	}

	// Another call from the same number: two wrong PINs end it.
	p2, err := e.join(e.reg.IVRDialer(), caller, "sip", 8000, 1900)
	if err != nil {
		t.Fatal(err)
	}
	p2.press("0000#") // the '#' after a complete PIN is not a second attempt
	time.Sleep(300 * time.Millisecond)
	if _, ok := p2.hungUp(); ok {
		t.Fatal("one wrong PIN followed by # counted as two attempts")
	}
	p2.press("9999#")
	waitFor(t, "the second caller hung up", func() bool { _, ok := p2.hungUp(); return ok })
	if cause, _ := p2.hungUp(); cause != signalling.CauseForbidden {
		t.Errorf("wrong-PIN hangup cause = %v", cause)
	}
	// The seated caller's success cleared its first failure: two now. A third
	// call's wrong PIN makes three, which ends that call at once ...
	p4, err := e.join(e.reg.IVRDialer(), caller, "sip", 8000, 1900)
	if err != nil {
		t.Fatalf("third call (two failures so far) refused: %v", err)
	}
	p4.press("5555")
	waitFor(t, "the third caller hung up", func() bool { _, ok := p4.hungUp(); return ok })
	// ... and the next dial-in from this number is refused before answer.
	_, err = e.join(e.reg.IVRDialer(), caller, "sip", 8000, 1900)
	if signalling.CauseOf(err) != signalling.CauseForbidden {
		t.Fatalf("dial-in after too many wrong PINs: %v", err)
	}
	// Another caller is not affected.
	p3, err := e.join(e.reg.IVRDialer(), signalling.Party{Number: "+15551110003"}, "sip", 8000, 2000)
	if err != nil {
		t.Fatalf("another caller was refused: %v", err)
	}
	p3.press("4321")
	waitFor(t, "the other caller seated", func() bool { return len(e.reg.Participants(room)) == 3 })
	if f, l, n := value(e.reg.m.pinFailures), value(e.reg.m.pinLockouts), value(e.reg.m.participants); f != 4 || l != 1 || n != 3 {
		t.Errorf("metrics: pin failures %v (want 4), lockouts %v (want 1), participants %v (want 3)", f, l, n)
	}
}

func TestPINTimeout(t *testing.T) {
	e := newEnv(t, allowAll{}, Config{PINTimeout: 300 * time.Millisecond})
	p, err := e.join(e.reg.IVRDialer(), signalling.Party{Number: "+15551110001"}, "sip", 8000, 1700)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the silent caller hung up", func() bool { _, ok := p.hungUp(); return ok })
	if cause, _ := p.hungUp(); cause != signalling.CauseNoAnswer {
		t.Errorf("cause = %v", cause)
	}
}

func TestCommandsAndDialOut(t *testing.T) {
	e := newEnv(t, allowAll{deny: "+19005550100"}, Config{})
	if r := e.cmd(room, "@a:hs", 100, "!conf info"); !strings.Contains(r, "has no conference") {
		t.Errorf("info without conference: %q", r)
	}
	if r := e.cmd(room, "@a:hs", 10, "!conf start"); !strings.Contains(r, "power level 50") {
		t.Errorf("start by a non-moderator: %q", r)
	}
	r := e.cmd(room, "@a:hs", 50, "!conf start")
	s, ok := e.reg.Lookup(room)
	if !ok || !strings.Contains(r, s.PIN) || !strings.Contains(r, "+15553330000") {
		t.Fatalf("start: %q (%+v)", r, s)
	}
	if len(s.PIN) != 6 || s.PIN[0] == '0' {
		t.Errorf("PIN %q", s.PIN)
	}
	if r := e.cmd(room, "@a:hs", 50, "!conf start"); !strings.Contains(r, "already has") {
		t.Errorf("second start: %q", r)
	}
	if r := e.cmd(room, "@a:hs", 50, "!conf dial +19005550100"); !strings.Contains(r, "Could not call") {
		t.Errorf("dial-out to a denied number: %q", r)
	}
	if r := e.cmd(room, "@a:hs", 50, "!conf dial not-a-number"); !strings.Contains(r, "not a phone number") {
		t.Errorf("dial-out to garbage: %q", r)
	}
	m := e.mustJoin(room, "@a:hs", 16000, 500)
	if r := e.cmd(room, "@a:hs", 50, "!conf dial 5550100"); !strings.Contains(r, "Calling +15550100") {
		t.Fatalf("dial-out: %q", r)
	}
	waitFor(t, "the dialled phone seated", func() bool { return len(e.reg.Participants(room)) == 2 })
	time.Sleep(600 * time.Millisecond)
	if lvl := media.Goertzel(m.ep.heard(300*time.Millisecond), 16000, 2300); lvl < 0.3 {
		t.Errorf("Matrix participant hears the dialled phone at %.3f", lvl)
	}
	if r := e.cmd(room, "@a:hs", 50, "!conf frobnicate"); !strings.Contains(r, "Unknown command") {
		t.Errorf("unknown: %q", r)
	}
	if _, ok := e.reg.Command(context.Background(), CommandRequest{Room: room, Body: "hello !conf"}); ok {
		t.Error("an ordinary message was taken as a command")
	}
	// Stopping the conference ends the call for everyone.
	if r := e.cmd(room, "@a:hs", 50, "!conf stop"); !strings.Contains(r, "removed") {
		t.Fatalf("stop: %q", r)
	}
	waitFor(t, "the Matrix participant hung up", func() bool { _, ok := m.hungUp(); return ok })
	e.phone.mu.Lock()
	ph := e.phone.legs[0]
	e.phone.mu.Unlock()
	waitFor(t, "the phone hung up", func() bool { _, ok := ph.hungUp(); return ok })
	if _, err := e.reg.JoinDialer(room, "matrix", "matrix"); !errors.Is(err, ErrNoConference) {
		t.Errorf("join after stop: %v", err)
	}
}

func TestFullConferenceRefusesMore(t *testing.T) {
	e := newEnv(t, allowAll{}, Config{MaxParticipants: 2})
	if _, err := e.reg.Create(context.Background(), room, "@mod:hs", ""); err != nil {
		t.Fatal(err)
	}
	e.mustJoin(room, "@a:hs", 16000, 500)
	e.mustJoin(room, "@b:hs", 16000, 700)
	d, _ := e.reg.JoinDialer(room, "matrix", "matrix")
	_, err := e.join(d, signalling.Party{MatrixUser: "@c:hs"}, "matrix", 16000, 900)
	if signalling.CauseOf(err) != signalling.CauseLimit {
		t.Fatalf("third participant of two: %v", err)
	}
}

func TestCommandParsing(t *testing.T) {
	for body, want := range map[string]bool{
		"!conf":             true,
		"!conf help":        true,
		"  !CONFERENCE who": true,
		"!config":           false,
		"conf start":        false,
		"":                  false,
	} {
		if got := IsCommand(body); got != want {
			t.Errorf("IsCommand(%q) = %v", body, got)
		}
	}
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return math.NaN()
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// TestJoinByCallingTheMember: "!conf join" rings the member (a Matrix call
// from the bot) and seats them when they answer.
func TestJoinByCallingTheMember(t *testing.T) {
	member := &phoneDialer{freq: 900}
	e := newEnv(t, allowAll{}, Config{MatrixDialer: member})
	if r := e.cmd(room, "@a:hs", 0, "!conf join"); !strings.Contains(r, "has no conference") {
		t.Errorf("join without a conference: %q", r)
	}
	if _, err := e.reg.Create(context.Background(), room, "@mod:hs", ""); err != nil {
		t.Fatal(err)
	}
	other := e.mustJoin(room, "@b:hs", 16000, 500)
	if r := e.cmd(room, "@a:hs", 0, "!conf join"); !strings.Contains(r, "Calling @a:hs") {
		t.Fatalf("join: %q", r)
	}
	waitFor(t, "the member seated", func() bool { return len(e.reg.Participants(room)) == 2 })
	var seated Participant
	for _, p := range e.reg.Participants(room) {
		if p.Name == "@a:hs" {
			seated = p
		}
	}
	if seated.Kind != "matrix" || seated.Via != "call_me" {
		t.Errorf("participant %+v", seated)
	}
	time.Sleep(600 * time.Millisecond)
	if lvl := media.Goertzel(other.ep.heard(300*time.Millisecond), 16000, 900); lvl < 0.3 {
		t.Errorf("the others hear the called member at %.3f", lvl)
	}
}
