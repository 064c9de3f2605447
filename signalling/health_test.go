package signalling

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/media"
)

// watchedEndpoint is a fake endpoint that reports health and lets the test
// play a peer that stops sending.
type watchedEndpoint struct {
	fakeEndpoint
	health media.Health
	wmu    sync.Mutex
	dead   func(time.Duration)
}

func (e *watchedEndpoint) Health() media.Health { return e.health }
func (e *watchedEndpoint) OnDeadMedia(fn func(time.Duration)) {
	e.wmu.Lock()
	e.dead = fn
	e.wmu.Unlock()
}
func (e *watchedEndpoint) watching() func(time.Duration) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	return e.dead
}

type watchedLeg struct {
	*fakeLeg
	wep *watchedEndpoint
}

func (l *watchedLeg) Audio() media.Endpoint { return l.wep }

type endRecorder struct {
	mu  sync.Mutex
	end *CallRecord
}

func (r *endRecorder) CallStarted(CallRecord)  {}
func (r *endRecorder) CallAnswered(CallRecord) {}
func (r *endRecorder) CallEnded(c CallRecord) {
	r.mu.Lock()
	r.end = &c
	r.mu.Unlock()
}

// A phone whose RTP stops ends the call with media_failed and a clear
// detail; the record carries each side's health and names the dead leg.
func TestDeadMediaEndsCall(t *testing.T) {
	h := newHarness(t)
	rec := &endRecorder{}
	phone := &watchedEndpoint{fakeEndpoint: fakeEndpoint{name: "sip", rates: []int{8000}},
		health: media.Health{JitterIn: 3 * time.Millisecond, RTT: 40 * time.Millisecond, MOS: 4.3, HaveRemote: true, RemoteLost: 7}}
	web := &watchedEndpoint{fakeEndpoint: fakeEndpoint{name: "matrix", rates: []int{48000, 8000}},
		health: media.Health{JitterIn: 1500 * time.Microsecond, MOS: 4.1}}
	out := &watchedLeg{fakeLeg: h.out, wep: phone}
	d := &legDialer{leg: out}
	mgr, err := NewManager(ManagerConfig{Log: zerolog.Nop(), Authorizer: h.auth, Recorder: rec,
		Router: &StaticRouter{Routes: []Route{{Name: "t", Dialer: d}}}})
	if err != nil {
		t.Fatal(err)
	}
	in := &watchedLeg{fakeLeg: h.in, wep: web}
	c, err := mgr.Originate(t.Context(), OriginateRequest{
		From: Party{MatrixUser: "@alice:example.org"}, To: Party{Number: "+15550100"},
		NewInbound: func(*Call) (Leg, error) { return in, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Post(Event{Leg: out, Type: EventAnswered})
	deadline := time.Now().Add(5 * time.Second)
	for phone.watching() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	fn := phone.watching()
	if fn == nil || web.watching() == nil {
		t.Fatal("the call did not watch its endpoints")
	}
	fn(30 * time.Second)
	waitDone(t, c)
	if c.EndCause() != CauseMediaFailed {
		t.Errorf("cause %v", c.EndCause())
	}
	if got := h.out.firstHangup(t); got != CauseMediaFailed {
		t.Errorf("phone leg hung up with %v", got)
	}
	if phone.watching() != nil {
		t.Error("watch not stopped at the end")
	}
	rec.mu.Lock()
	r := rec.end
	rec.mu.Unlock()
	if r == nil {
		t.Fatal("no end record")
	}
	if r.Detail != "no RTP from the phone for 30s" || r.DeadMedia != "sip" || r.EndedBy != "" {
		t.Errorf("detail %q dead %q ended by %q", r.Detail, r.DeadMedia, r.EndedBy)
	}
	if r.PhoneJitterMS != 3 || r.PhoneRTTMS != 40 || r.PhoneMOS != 4.3 || r.PhoneLostByPeer != 7 ||
		r.MatrixJitterMS != 1.5 || r.MatrixMOS != 4.1 || r.MatrixRTTMS != 0 {
		t.Errorf("health in record: %+v", r)
	}
}

type legDialer struct{ leg Leg }

func (d *legDialer) Dial(_ context.Context, _ DialRequest, _ Poster) (Leg, error) { return d.leg, nil }
