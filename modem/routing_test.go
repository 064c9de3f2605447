package modem

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/modem/modemtest/fakeat"
	"github.com/matrix-gateway/gateway/signalling"
)

// ipLeg and ipDialer stand in for the IP route (SIP trunk or Matrix): the
// set-up outcome is scripted; the link it depends on is a real HTTP peer.
type ipLeg struct{ hungUp chan struct{} }

func (l *ipLeg) Kind() string                 { return "sip" }
func (l *ipLeg) Answer(context.Context) error { return nil }
func (l *ipLeg) Audio() media.Endpoint        { return ControlOnlyAudio{} }
func (l *ipLeg) Hangup(context.Context, signalling.Cause) {
	select {
	case <-l.hungUp:
	default:
		close(l.hungUp)
	}
}

type ipDialer struct {
	outcome signalling.EventType // EventAnswered, EventHangup (5xx), or 0 (no answer at all)
	dialled chan struct{}
}

func (d *ipDialer) Dial(_ context.Context, _ signalling.DialRequest, p signalling.Poster) (signalling.Leg, error) {
	l := &ipLeg{hungUp: make(chan struct{})}
	d.dialled <- struct{}{}
	switch d.outcome {
	case signalling.EventAnswered:
		go p.Post(signalling.Event{Leg: l, Type: signalling.EventAnswered})
	case signalling.EventHangup:
		go p.Post(signalling.Event{Leg: l, Type: signalling.EventHangup, Cause: signalling.CauseServerError, Detail: "SIP 500 Server Internal Error"})
	}
	return l, nil
}

// localLeg is the caller's side of the call (the phone user, control-only).
type localLeg struct{}

func (localLeg) Kind() string                             { return "local" }
func (localLeg) Answer(context.Context) error             { return nil }
func (localLeg) Audio() media.Endpoint                    { return ControlOnlyAudio{} }
func (localLeg) Hangup(context.Context, signalling.Cause) {}

type routeRig struct {
	*rig
	hs      *httptest.Server
	links   *signalling.LinkEstimator
	router  *signalling.FallbackRouter
	ip      *ipDialer
	mgr     *signalling.Manager
	routes  chan string
	timeout time.Duration
	hook    atomic.Pointer[func(signalling.CallID, string, string)]
}

func newRouteRig(t *testing.T, outcome signalling.EventType) *routeRig {
	r := &routeRig{rig: newRig(t), ip: &ipDialer{outcome: outcome, dialled: make(chan struct{}, 4)}, routes: make(chan string, 8), timeout: 2 * time.Second}
	r.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"versions":["v1.11"]}`)) }))
	t.Cleanup(r.hs.Close)
	url := r.hs.URL + "/_matrix/client/versions"
	var err error
	r.links, err = signalling.NewLinkEstimator(signalling.LinkConfig{Interval: time.Hour, Timeout: 10 * time.Second, Probes: []signalling.LinkProbe{{
		Name: "homeserver", Probe: func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			return resp.Body.Close()
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	r.links.Start(context.Background())
	t.Cleanup(r.links.Close)
	// The tests are about routing, not about a loaded CI machine: make sure
	// the healthy homeserver was measured as up before they dial (bounded).
	// Up is not enough: a probe that failed while the machine was busy counts
	// as loss, and the IP route is refused above 50 % (MaxLoss below), so
	// probe until the window has rolled past such failures.
	for i := 0; ; i++ {
		st, ok := r.links.Status("homeserver")
		if ok && st.Up && st.Loss <= 0.25 {
			break
		}
		if i == 40 {
			t.Fatalf("the test homeserver does not measure as healthy: %+v", st)
		}
		r.links.ProbeNow(context.Background())
	}
	gsm := signalling.RouteCandidate{Name: "modem", Dialer: &Dialer{Client: r.client},
		Available: func() bool { return r.client.Status().Registered() }}
	emergencyGSM := gsm
	emergencyGSM.Available = nil
	emergencyGSM.Dialer = &Dialer{Client: r.client, Emergency: func(string) bool { return true }}
	r.router, err = signalling.NewFallbackRouter(signalling.FallbackConfig{
		Routes: []signalling.PatternRoute{{Name: "all", Candidates: []signalling.RouteCandidate{
			{Name: "matrix", Dialer: r.ip, IP: true, Links: []string{"homeserver"}, MaxRTT: 10 * time.Second, MaxLoss: 0.5}, gsm}}},
		Links:          r.links,
		Emergency:      func(n string) bool { return n == "112" || n == "911" },
		EmergencyRoute: &emergencyGSM,
		SetupTimeout:   r.timeout,
		OnRoute: func(id signalling.CallID, route, reason string) {
			select {
			case r.routes <- route:
			default:
			}
			if h := r.hook.Load(); h != nil {
				(*h)(id, route, reason)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := signalling.NewPolicy(signalling.PolicyConfig{Users: []string{"*"}, Numbers: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	r.mgr, err = signalling.NewManager(signalling.ManagerConfig{Log: zerolog.New(zerolog.NewTestWriter(t)), Authorizer: policy, Router: r.router})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *routeRig) originate(t *testing.T, number string) *signalling.Call {
	t.Helper()
	c, err := r.mgr.Originate(context.Background(), signalling.OriginateRequest{
		From: signalling.Party{MatrixUser: "@phone:local"}, To: signalling.Party{Number: number},
		NewInbound: func(*signalling.Call) (signalling.Leg, error) { return localLeg{}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Hangup(signalling.CauseNormal)
		select {
		case <-c.Done():
		case <-time.After(wait):
			t.Error("call did not end")
		}
	})
	return c
}

func (r *routeRig) nextRoute(t *testing.T) string {
	t.Helper()
	select {
	case rt := <-r.routes:
		return rt
	case <-time.After(wait):
		t.Fatal("no route chosen")
	}
	return ""
}

func waitCallState(t *testing.T, c *signalling.Call, s signalling.State) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for c.State() != s {
		if time.Now().After(deadline) {
			t.Fatalf("call state %s, want %s", c.State(), s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRoutingIPWhenHealthyGSMWhenPeerStopped(t *testing.T) {
	t.Parallel()
	r := newRouteRig(t, signalling.EventAnswered)

	// IP path healthy: the call goes over IP, the modem is not touched.
	c := r.originate(t, "+15550100800")
	if rt := r.nextRoute(t); rt != "matrix" {
		t.Fatalf("healthy IP: route %q, want matrix", rt)
	}
	waitCallState(t, c, signalling.StateAnswered)
	if d := r.fake.Dialled(); len(d) != 0 {
		t.Fatalf("modem dialled %v with a healthy IP path", d)
	}
	c.Hangup(signalling.CauseNormal)
	<-c.Done()

	// The homeserver stops: the same request goes over GSM, through the real modem.
	r.hs.Close()
	r.links.ProbeNow(context.Background())
	t0 := time.Now()
	d, _, err := r.router.Decide("+15550100800")
	took := time.Since(t0)
	if err != nil || strings.Join(d.Viable, ",") != "modem" {
		t.Fatalf("decision %+v, %v", d, err)
	}
	t.Logf("routing decision with the homeserver down: %s (rejected: %v)", took, d.Rejected)
	c2 := r.originate(t, "+15550100800")
	if rt := r.nextRoute(t); rt != "modem" {
		t.Fatalf("peer stopped: route %q, want modem", rt)
	}
	waitFake(t, r.fake, "GSM dial", func(f *fakeat.Modem) bool { return len(f.Dialled()) == 1 })
	if err := r.fake.RemoteAnswer(); err != nil {
		t.Fatal(err)
	}
	waitCallState(t, c2, signalling.StateAnswered)
	if len(r.ip.dialled) != 1 {
		t.Fatalf("IP route dialled %d times, want only for the first call", len(r.ip.dialled))
	}
}

func TestRoutingIPSetupFailureFallsBackToGSM(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		outcome signalling.EventType
	}{{"5xx", signalling.EventHangup}, {"timeout", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRouteRig(t, tc.outcome)
			t0 := time.Now()
			c := r.originate(t, "+15550100900")
			if rt := r.nextRoute(t); rt != "matrix" {
				t.Fatalf("first route %q, want matrix", rt)
			}
			if rt := r.nextRoute(t); rt != "modem" {
				t.Fatalf("fallback route %q, want modem", rt)
			}
			waitFake(t, r.fake, "GSM dial", func(f *fakeat.Modem) bool { return len(f.Dialled()) == 1 })
			took := time.Since(t0)
			t.Logf("IP set-up failure (%s) to GSM dial on the modem: %s (bound %s)", tc.name, took, r.timeout)
			if took > r.timeout+wait {
				t.Fatalf("fallback took %s", took)
			}
			if c.State() == signalling.StateEnded {
				t.Fatalf("call ended (%s) instead of falling back", c.EndCause())
			}
			if err := r.fake.RemoteAnswer(); err != nil {
				t.Fatal(err)
			}
			waitCallState(t, c, signalling.StateAnswered)
		})
	}
}

func TestRoutingEmergencyAlwaysGSM(t *testing.T) {
	t.Parallel()
	r := newRouteRig(t, signalling.EventAnswered)
	// Emergency numbers are not E.164, so they bypass the toll-fraud policy:
	// the dialler hands them straight to the router.
	d, err := r.router.Route(context.Background(), signalling.Party{}, signalling.Party{Number: "112"})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	leg, err := d.Dial(context.Background(), signalling.DialRequest{CallID: "sos", To: signalling.Party{Number: "112"}}, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer leg.Hangup(context.Background(), signalling.CauseNormal)
	if rt := r.nextRoute(t); rt != "modem" {
		t.Fatalf("emergency route %q with a healthy IP path, want modem", rt)
	}
	waitFake(t, r.fake, "emergency dial", func(f *fakeat.Modem) bool {
		d := f.Dialled()
		return len(d) == 1 && d[0] == "112"
	})
	if len(r.ip.dialled) != 0 {
		t.Fatal("emergency call tried over IP")
	}
	if signalling.RouteOf(leg) != "modem" {
		t.Fatalf("leg route %q", signalling.RouteOf(leg))
	}
}
