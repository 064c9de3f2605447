package signalling

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/media"
)

// scriptLeg and scriptDialer are a scripted technology for routing tests.
type scriptLeg struct {
	kind   string
	hungUp atomic.Int32
}

func (l *scriptLeg) Kind() string                        { return l.kind }
func (l *scriptLeg) Answer(context.Context) error        { return nil }
func (l *scriptLeg) Audio() media.Endpoint               { return nil }
func (l *scriptLeg) Hangup(context.Context, Cause)       { l.hungUp.Add(1) }
func (l *scriptLeg) Describe(r *CallRecord)              { r.Trunk = l.kind }
func (l *scriptLeg) post(p Poster, t EventType, c Cause) { p.Post(Event{Leg: l, Type: t, Cause: c}) }

type scriptDialer struct {
	kind    string
	err     error                        // returned by Dial
	script  func(l *scriptLeg, p Poster) // run in a goroutine after Dial
	mu      sync.Mutex
	legs    []*scriptLeg
	dialled atomic.Int32
}

func (d *scriptDialer) Dial(_ context.Context, _ DialRequest, p Poster) (Leg, error) {
	d.dialled.Add(1)
	if d.err != nil {
		return nil, d.err
	}
	l := &scriptLeg{kind: d.kind}
	d.mu.Lock()
	d.legs = append(d.legs, l)
	d.mu.Unlock()
	if d.script != nil {
		go d.script(l, p)
	}
	return l, nil
}

type chanPoster chan Event

func (c chanPoster) Post(ev Event) { c <- ev }

func (c chanPoster) next(t *testing.T) Event {
	t.Helper()
	select {
	case ev := <-c:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	return Event{}
}

func healthyLinks(t *testing.T, names ...string) *LinkEstimator {
	t.Helper()
	e, err := NewLinkEstimator(LinkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		e.Observe(n, 20*time.Millisecond, nil)
	}
	return e
}

func newTestRouter(t *testing.T, links *LinkEstimator, ip, gsm Dialer, onRoute func(CallID, string, string)) *FallbackRouter {
	t.Helper()
	gsmRoute := RouteCandidate{Name: "modem", Dialer: gsm}
	r, err := NewFallbackRouter(FallbackConfig{
		Routes: []PatternRoute{
			{Name: "local", Match: func(n string) bool { return strings.HasPrefix(n, "+49") },
				Candidates: []RouteCandidate{
					{Name: "sip:main", Dialer: ip, IP: true, Links: []string{"trunk", "homeserver"}, MaxRTT: 300 * time.Millisecond, MaxLoss: 0.2},
					gsmRoute,
				}},
		},
		Links:          links,
		Emergency:      func(n string) bool { return n == "112" || n == "+49112" },
		EmergencyRoute: &gsmRoute,
		SetupTimeout:   300 * time.Millisecond,
		OnRoute:        onRoute,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestFallbackDecide(t *testing.T) {
	ip, gsm := &scriptDialer{kind: "sip"}, &scriptDialer{kind: "modem"}
	for _, tc := range []struct {
		name    string
		observe func(e *LinkEstimator)
		number  string
		want    []string
		cause   Cause
	}{
		{"healthy goes over IP first", nil, "+4930123", []string{"sip:main", "modem"}, 0},
		{"trunk down goes over GSM", func(e *LinkEstimator) { e.Observe("trunk", 0, errors.New("refused")) }, "+4930123", []string{"modem"}, 0},
		{"slow link goes over GSM", func(e *LinkEstimator) {
			for i := 0; i < 20; i++ {
				e.Observe("homeserver", 2*time.Second, nil)
			}
		}, "+4930123", []string{"modem"}, 0},
		{"lossy link goes over GSM", func(e *LinkEstimator) {
			for i := 0; i < 4; i++ {
				e.Observe("trunk", 0, errors.New("timeout"))
				e.Observe("trunk", 10*time.Millisecond, nil)
			}
		}, "+4930123", []string{"modem"}, 0},
		{"emergency always GSM", nil, "112", []string{"modem"}, 0},
		{"no pattern", nil, "+1555", nil, CauseNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			links := healthyLinks(t, "trunk", "homeserver")
			if tc.observe != nil {
				tc.observe(links)
			}
			r := newTestRouter(t, links, ip, gsm, nil)
			d, _, err := r.Decide(tc.number)
			if tc.cause != 0 || err != nil {
				if CauseOf(err) != tc.cause {
					t.Fatalf("err %v (cause %s), want cause %s", err, CauseOf(err), tc.cause)
				}
				return
			}
			if strings.Join(d.Viable, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("viable %v (rejected %v), want %v", d.Viable, d.Rejected, tc.want)
			}
		})
	}
}

func TestFallbackNoUsableRoute(t *testing.T) {
	links := healthyLinks(t, "homeserver")
	links.Observe("trunk", 0, errors.New("down"))
	gsm := RouteCandidate{Name: "modem", Dialer: &scriptDialer{}, Available: func() bool { return false }}
	r, err := NewFallbackRouter(FallbackConfig{Links: links, Routes: []PatternRoute{{Name: "all", Candidates: []RouteCandidate{
		{Name: "sip", Dialer: &scriptDialer{}, IP: true, Links: []string{"trunk"}}, gsm}}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Route(context.Background(), Party{}, Party{Number: "+4930"})
	if CauseOf(err) != CauseUnreachable || !strings.Contains(err.Error(), "not available") {
		t.Fatalf("err %v, want unreachable naming why each route was skipped", err)
	}
}

func TestFallbackOn5xxRetriesOverGSM(t *testing.T) {
	ip := &scriptDialer{kind: "sip", script: func(l *scriptLeg, p Poster) { l.post(p, EventHangup, CauseServerError) }}
	gsm := &scriptDialer{kind: "modem", script: func(l *scriptLeg, p Poster) {
		l.post(p, EventRinging, 0)
		l.post(p, EventAnswered, 0)
	}}
	var routes []string
	var mu sync.Mutex
	r := newTestRouter(t, healthyLinks(t, "trunk", "homeserver"), ip, gsm, func(_ CallID, route, reason string) {
		mu.Lock()
		routes = append(routes, route+": "+reason)
		mu.Unlock()
	})
	d, err := r.Route(context.Background(), Party{}, Party{Number: "+4930123"})
	if err != nil {
		t.Fatal(err)
	}
	p := make(chanPoster, 16)
	leg, err := d.Dial(context.Background(), DialRequest{CallID: "c1", To: Party{Number: "+4930123"}}, p)
	if err != nil {
		t.Fatal(err)
	}
	ev := p.next(t)
	if ev.Type != EventRinging || ev.Leg != leg {
		t.Fatalf("first event %s from %v, want ringing from the call's leg (the caller hears ringing, not an error)", ev.Type, ev.Leg)
	}
	for ev.Type != EventAnswered {
		if ev = p.next(t); ev.Type == EventHangup {
			t.Fatalf("hangup %s: %s", ev.Cause, ev.Detail)
		}
	}
	if ev.Leg != leg || RouteOf(leg) != "modem" || leg.Kind() != "modem" || CurrentLeg(leg) != gsm.legs[0] {
		t.Fatalf("answered on route %q kind %q", RouteOf(leg), leg.Kind())
	}
	if ip.legs[0].hungUp.Load() != 1 {
		t.Errorf("failed IP leg hung up %d times, want 1", ip.legs[0].hungUp.Load())
	}
	mu.Lock()
	if len(routes) != 2 || !strings.HasPrefix(routes[0], "sip:main") || !strings.Contains(routes[1], "server_error") {
		t.Errorf("routes announced %q", routes)
	}
	mu.Unlock()
	leg.Hangup(context.Background(), CauseNormal)
	if gsm.legs[0].hungUp.Load() != 1 {
		t.Errorf("GSM leg not hung up")
	}
}

func TestFallbackOnSetupTimeout(t *testing.T) {
	ip := &scriptDialer{kind: "sip"} // never rings: a trunk that does not answer
	gsm := &scriptDialer{kind: "modem", script: func(l *scriptLeg, p Poster) { l.post(p, EventRinging, 0) }}
	r := newTestRouter(t, healthyLinks(t, "trunk", "homeserver"), ip, gsm, nil)
	d, _ := r.Route(context.Background(), Party{}, Party{Number: "+4930123"})
	p := make(chanPoster, 16)
	leg, err := d.Dial(context.Background(), DialRequest{CallID: "c2"}, p)
	if err != nil {
		t.Fatal(err)
	}
	if ev := p.next(t); ev.Type != EventRinging || !strings.Contains(ev.Detail, "no ringing or answer within") {
		t.Fatalf("event %s %q, want ringing while falling back", ev.Type, ev.Detail)
	}
	if ev := p.next(t); ev.Type != EventRinging || RouteOf(leg) != "modem" {
		t.Fatalf("event %s on %q, want GSM ringing", ev.Type, RouteOf(leg))
	}
	if ip.legs[0].hungUp.Load() != 1 {
		t.Error("timed-out IP leg not hung up")
	}
	leg.Hangup(context.Background(), CauseCancelled)
}

func TestFallbackKeepsCalleeAnswers(t *testing.T) {
	// Busy is the callee's answer: it is not retried over GSM.
	ip := &scriptDialer{kind: "sip", script: func(l *scriptLeg, p Poster) { l.post(p, EventHangup, CauseBusy) }}
	gsm := &scriptDialer{kind: "modem"}
	r := newTestRouter(t, healthyLinks(t, "trunk", "homeserver"), ip, gsm, nil)
	d, _ := r.Route(context.Background(), Party{}, Party{Number: "+4930123"})
	p := make(chanPoster, 16)
	leg, err := d.Dial(context.Background(), DialRequest{}, p)
	if err != nil {
		t.Fatal(err)
	}
	if ev := p.next(t); ev.Type != EventHangup || ev.Cause != CauseBusy || ev.Leg != leg {
		t.Fatalf("event %s %s, want busy hangup", ev.Type, ev.Cause)
	}
	if gsm.dialled.Load() != 0 {
		t.Fatal("busy was retried over GSM")
	}
}

func TestFallbackDialErrorTriesNext(t *testing.T) {
	ip := &scriptDialer{kind: "sip", err: NewCauseError(CauseUnreachable, "trunk unreachable", nil)}
	gsm := &scriptDialer{kind: "modem"}
	r := newTestRouter(t, healthyLinks(t, "trunk", "homeserver"), ip, gsm, nil)
	d, _ := r.Route(context.Background(), Party{}, Party{Number: "+4930123"})
	leg, err := d.Dial(context.Background(), DialRequest{}, make(chanPoster, 4))
	if err != nil {
		t.Fatal(err)
	}
	if RouteOf(leg) != "modem" || gsm.dialled.Load() != 1 {
		t.Fatalf("route %q", RouteOf(leg))
	}
}

func TestLinkEstimatorProbes(t *testing.T) {
	var fail atomic.Bool
	e, err := NewLinkEstimator(LinkConfig{Window: 4, Interval: time.Hour, Probes: []LinkProbe{{Name: "hs", Probe: func(ctx context.Context) error {
		if fail.Load() {
			return errors.New("connection refused")
		}
		return nil
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	e.Start(context.Background())
	defer e.Close()
	if st, _ := e.Status("hs"); !st.Up || st.Samples != 1 || st.Loss != 0 {
		t.Fatalf("after start: %+v", st)
	}
	fail.Store(true)
	e.ProbeNow(context.Background())
	if st, _ := e.Status("hs"); st.Up || st.Loss != 0.5 || st.Err == "" {
		t.Fatalf("after a failure: %+v", st)
	}
	fail.Store(false)
	for i := 0; i < 4; i++ {
		e.ProbeNow(context.Background())
	}
	if st, _ := e.Status("hs"); !st.Up || st.Loss != 0 || st.Samples != 4 {
		t.Fatalf("window did not slide: %+v", st)
	}
	if _, err := NewLinkEstimator(LinkConfig{Probes: []LinkProbe{{Name: "a", Probe: func(context.Context) error { return nil }}, {Name: "a", Probe: func(context.Context) error { return nil }}}}); err == nil {
		t.Fatal("duplicate probe names accepted")
	}
}

// BenchmarkFallbackDecide measures a routing decision (cached link estimates).
func BenchmarkFallbackDecide(b *testing.B) {
	links, _ := NewLinkEstimator(LinkConfig{})
	links.Observe("trunk", 20*time.Millisecond, nil)
	links.Observe("homeserver", 20*time.Millisecond, nil)
	gsm := RouteCandidate{Name: "modem", Dialer: &scriptDialer{}}
	r, _ := NewFallbackRouter(FallbackConfig{Links: links, Emergency: func(n string) bool { return n == "112" }, EmergencyRoute: &gsm,
		Routes: []PatternRoute{{Name: "all", Candidates: []RouteCandidate{
			{Name: "sip", Dialer: &scriptDialer{}, IP: true, Links: []string{"trunk", "homeserver"}, MaxRTT: time.Second, MaxLoss: 0.2}, gsm}}}})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Route(context.Background(), Party{}, Party{Number: "+4930123"}); err != nil {
			b.Fatal(err)
		}
	}
}
