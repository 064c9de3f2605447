package signalling

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/media"
)

// This file is the IP-first, GSM-fallback router: ordered candidate routes
// per destination pattern, each with conditions on the IP links it needs
// (kept current by a LinkEstimator, so a decision is a few map look-ups), a
// bounded IP set-up that is retried over the next candidate (GSM) when it
// fails, and emergency numbers that always go over GSM.

// LinkProbe checks one IP dependency (the homeserver, a SIP trunk). Probe
// returns nil when the dependency answered; its round-trip time is measured
// around the call.
type LinkProbe struct {
	Name  string
	Probe func(ctx context.Context) error
}

// LinkConfig configures a LinkEstimator.
type LinkConfig struct {
	Probes   []LinkProbe
	Interval time.Duration // between probe rounds; default 5 s
	Timeout  time.Duration // per probe; default 2 s
	Window   int           // probes the loss rate is computed over; default 10
	Log      zerolog.Logger
}

// LinkStatus is the estimate for one link.
type LinkStatus struct {
	Name    string
	Up      bool          // the last probe succeeded
	RTT     time.Duration // moving average of successful probes' round-trip times
	Loss    float64       // failed fraction of the last Window probes
	Samples int           // probes in the window
	Checked time.Time     // time of the last probe
	Err     string        // last probe error
}

type linkState struct {
	st   LinkStatus
	hist []bool // ring of the last Window results, true = ok
	next int
}

// LinkEstimator keeps an estimate of the IP links' health current by
// probing them in the background, so routing decisions never wait for the
// network. Its methods are safe for concurrent use.
type LinkEstimator struct {
	cfg   LinkConfig
	mu    sync.RWMutex
	links map[string]*linkState
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
	start sync.Once
}

// NewLinkEstimator returns an estimator for cfg.Probes; Start begins probing.
func NewLinkEstimator(cfg LinkConfig) (*LinkEstimator, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Window <= 0 {
		cfg.Window = 10
	}
	e := &LinkEstimator{cfg: cfg, links: map[string]*linkState{}, stop: make(chan struct{})}
	for _, p := range cfg.Probes {
		if p.Name == "" || p.Probe == nil {
			return nil, errors.New("signalling: a link probe needs a name and a probe function")
		}
		if _, dup := e.links[p.Name]; dup {
			return nil, fmt.Errorf("signalling: duplicate link probe %q", p.Name)
		}
		e.links[p.Name] = &linkState{st: LinkStatus{Name: p.Name}, hist: make([]bool, 0, cfg.Window)}
	}
	return e, nil
}

// Start probes every link once (bounded by the probe timeout) and then
// keeps probing every Interval until Close.
func (e *LinkEstimator) Start(ctx context.Context) {
	e.start.Do(func() {
		e.ProbeNow(ctx)
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			t := time.NewTicker(e.cfg.Interval)
			defer t.Stop()
			for {
				select {
				case <-e.stop:
					return
				case <-t.C:
					e.ProbeNow(context.Background())
				}
			}
		}()
	})
}

// Close stops probing and waits for the prober. It is idempotent.
func (e *LinkEstimator) Close() {
	e.once.Do(func() { close(e.stop) })
	e.wg.Wait()
}

// ProbeNow runs every probe once, concurrently, and records the results.
func (e *LinkEstimator) ProbeNow(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range e.cfg.Probes {
		wg.Add(1)
		go func(p LinkProbe) {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
			defer cancel()
			t0 := time.Now()
			err := p.Probe(pctx)
			e.Observe(p.Name, time.Since(t0), err)
		}(p)
	}
	wg.Wait()
}

// Observe records one probe result for link name (from the prober, or from
// call set-ups that measured the link themselves).
func (e *LinkEstimator) Observe(name string, rtt time.Duration, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.links[name]
	if l == nil {
		l = &linkState{st: LinkStatus{Name: name}, hist: make([]bool, 0, e.cfg.Window)}
		e.links[name] = l
	}
	ok := err == nil
	if len(l.hist) < e.cfg.Window {
		l.hist = append(l.hist, ok)
	} else {
		l.hist[l.next] = ok
		l.next = (l.next + 1) % e.cfg.Window
	}
	failed := 0
	for _, h := range l.hist {
		if !h {
			failed++
		}
	}
	l.st.Up = ok
	l.st.Samples = len(l.hist)
	l.st.Loss = float64(failed) / float64(len(l.hist))
	l.st.Checked = time.Now()
	l.st.Err = ""
	if ok {
		if l.st.RTT == 0 {
			l.st.RTT = rtt
		} else {
			l.st.RTT = (l.st.RTT*7 + rtt) / 8
		}
	} else {
		l.st.Err = err.Error()
	}
	if !ok && e.cfg.Probes != nil {
		e.cfg.Log.Debug().Str("link", name).Err(err).Float64("loss", l.st.Loss).Msg("link probe failed")
	}
}

// Status returns the estimate for link name.
func (e *LinkEstimator) Status(name string) (LinkStatus, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	l := e.links[name]
	if l == nil {
		return LinkStatus{Name: name}, false
	}
	return l.st, true
}

// Statuses returns every link's estimate.
func (e *LinkEstimator) Statuses() []LinkStatus {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]LinkStatus, 0, len(e.links))
	for _, l := range e.links {
		out = append(out, l.st)
	}
	return out
}

// RouteCandidate is one way to carry a call, with the conditions under
// which it may be used.
type RouteCandidate struct {
	Name   string // e.g. "sip:main", "matrix", "modem"
	Dialer Dialer
	// IP marks a route over the data link: when its set-up fails (timeout,
	// 5xx, unreachable, ICE/media failure) the next candidate is tried.
	IP bool
	// Links must all be up, with RTT and loss within the limits below.
	Links   []string
	MaxRTT  time.Duration // 0: no limit
	MaxLoss float64       // 0: no limit; else the highest loss fraction allowed
	// Available, when set, must report true (e.g. the modem is registered).
	Available func() bool
}

// PatternRoute is the ordered list of candidates for the numbers Match accepts.
type PatternRoute struct {
	Name       string
	Match      func(e164 string) bool // nil matches every number
	Candidates []RouteCandidate
}

// FallbackConfig configures a FallbackRouter.
type FallbackConfig struct {
	Routes []PatternRoute // first match wins
	Links  *LinkEstimator // required when a candidate names links
	// Emergency reports emergency numbers; they always go to EmergencyRoute.
	Emergency      func(number string) bool
	EmergencyRoute *RouteCandidate
	// SetupTimeout bounds an IP candidate's set-up: without ringing or answer
	// by then the call is retried over the next candidate. Default 8 s.
	SetupTimeout time.Duration
	// OnRoute, when set, is told each time a call is handed to a candidate
	// (the first choice and every fallback). It must not block.
	OnRoute func(id CallID, route, reason string)
	Log     zerolog.Logger
}

// Decision is the outcome of routing one number.
type Decision struct {
	Number    string
	Pattern   string
	Emergency bool
	Viable    []string          // candidates that may be used, in order
	Rejected  map[string]string // candidate -> why it was skipped
}

// FallbackRouter implements Router with ordered candidates, link conditions
// and fallback on IP set-up failure.
type FallbackRouter struct {
	cfg FallbackConfig
}

var _ Router = (*FallbackRouter)(nil)

// NewFallbackRouter validates cfg and returns the router.
func NewFallbackRouter(cfg FallbackConfig) (*FallbackRouter, error) {
	if cfg.SetupTimeout <= 0 {
		cfg.SetupTimeout = 8 * time.Second
	}
	for _, pr := range cfg.Routes {
		if len(pr.Candidates) == 0 {
			return nil, fmt.Errorf("signalling: route %q has no candidates", pr.Name)
		}
		for _, c := range pr.Candidates {
			if c.Dialer == nil {
				return nil, fmt.Errorf("signalling: route %q candidate %q has no dialer", pr.Name, c.Name)
			}
			if len(c.Links) > 0 && cfg.Links == nil {
				return nil, fmt.Errorf("signalling: route %q candidate %q needs links but there is no link estimator", pr.Name, c.Name)
			}
		}
	}
	if cfg.Emergency != nil && (cfg.EmergencyRoute == nil || cfg.EmergencyRoute.Dialer == nil) {
		return nil, errors.New("signalling: emergency numbers need an emergency route")
	}
	return &FallbackRouter{cfg: cfg}, nil
}

// Decide picks the viable candidates for a number, in order. It reads only
// cached estimates: it never waits for the network.
func (r *FallbackRouter) Decide(number string) (Decision, []RouteCandidate, error) {
	d := Decision{Number: number, Rejected: map[string]string{}}
	if r.cfg.Emergency != nil && r.cfg.Emergency(number) {
		d.Emergency = true
		d.Pattern = "emergency"
		d.Viable = []string{r.cfg.EmergencyRoute.Name}
		return d, []RouteCandidate{*r.cfg.EmergencyRoute}, nil
	}
	for _, pr := range r.cfg.Routes {
		if pr.Match != nil && !pr.Match(number) {
			continue
		}
		d.Pattern = pr.Name
		var out []RouteCandidate
		for _, c := range pr.Candidates {
			if why := r.unusable(c); why != "" {
				d.Rejected[c.Name] = why
				continue
			}
			out = append(out, c)
			d.Viable = append(d.Viable, c.Name)
		}
		if len(out) == 0 {
			return d, nil, NewCauseError(CauseUnreachable, fmt.Sprintf("no usable route to %s (%s)", number, d.rejectedText()), nil)
		}
		return d, out, nil
	}
	return d, nil, NewCauseError(CauseNotFound, fmt.Sprintf("no route to %s", number), nil)
}

func (d Decision) rejectedText() string {
	parts := make([]string, 0, len(d.Rejected))
	for k, v := range d.Rejected {
		parts = append(parts, k+": "+v)
	}
	return strings.Join(parts, "; ")
}

// unusable says why a candidate cannot be used now, or "".
func (r *FallbackRouter) unusable(c RouteCandidate) string {
	if c.Available != nil && !c.Available() {
		return "not available"
	}
	for _, name := range c.Links {
		st, ok := r.cfg.Links.Status(name)
		switch {
		case !ok || st.Samples == 0:
			return "link " + name + " not measured yet"
		case !st.Up:
			return "link " + name + " down: " + st.Err
		case c.MaxRTT > 0 && st.RTT > c.MaxRTT:
			return fmt.Sprintf("link %s rtt %s over %s", name, st.RTT.Round(time.Millisecond), c.MaxRTT)
		case c.MaxLoss > 0 && st.Loss > c.MaxLoss:
			return fmt.Sprintf("link %s loss %.0f%% over %.0f%%", name, st.Loss*100, c.MaxLoss*100)
		}
	}
	return ""
}

// Route implements Router: the returned Dialer dials the first viable
// candidate and falls back to the next ones as described on FallbackConfig.
func (r *FallbackRouter) Route(_ context.Context, _, to Party) (Dialer, error) {
	d, cands, err := r.Decide(to.Number)
	if err != nil {
		return nil, err
	}
	r.cfg.Log.Debug().Str("to", to.Number).Strs("viable", d.Viable).Interface("rejected", d.Rejected).Msg("route decision")
	return &fallbackDialer{r: r, cands: cands, decision: d}, nil
}

type fallbackDialer struct {
	r        *FallbackRouter
	cands    []RouteCandidate
	decision Decision
}

// retryable reports whether an IP set-up that ended with cause should be
// retried over the next candidate; ringing tells whether the far side
// already rang (then a plain no-answer is the callee's, not the network's).
func retryable(cause Cause, ringing bool) bool {
	switch cause {
	case CauseUnreachable, CauseServerError, CauseCongestion, CauseMediaFailed, CauseProtocolError, CauseUnknown, CauseIncompatible:
		return true
	case CauseNoAnswer:
		return !ringing
	}
	return false
}

func (d *fallbackDialer) Dial(ctx context.Context, req DialRequest, p Poster) (Leg, error) {
	f := &fallbackLeg{r: d.r, req: req, up: p, cands: d.cands, idx: -1}
	reason := "first choice"
	if d.decision.Emergency {
		reason = "emergency number"
	} else if len(d.decision.Rejected) > 0 {
		reason = "first viable: " + d.decision.rejectedText()
	}
	var lastErr error
	for i := range d.cands {
		err := f.dialCandidate(ctx, i, reason)
		if err == nil {
			return f, nil
		}
		lastErr = err
		if !d.cands[i].IP || !retryable(CauseOf(err), false) {
			return nil, err
		}
		reason = fmt.Sprintf("%s failed: %v", d.cands[i].Name, err)
	}
	return nil, lastErr
}

// fallbackLeg is the Leg the call sees: it holds the current candidate's leg
// and swaps it for the next candidate's when the IP set-up fails.
type fallbackLeg struct {
	r     *FallbackRouter
	req   DialRequest
	up    Poster
	cands []RouteCandidate

	mu       sync.Mutex
	idx      int
	gen      int
	cur      Leg
	ringing  bool
	answered bool
	ended    bool
	timer    *time.Timer
}

var _ Describer = (*fallbackLeg)(nil)

// dialCandidate dials candidate i; the caller holds no lock.
func (f *fallbackLeg) dialCandidate(ctx context.Context, i int, reason string) error {
	f.mu.Lock()
	f.gen++
	gen := f.gen
	f.idx = i
	f.ringing = false
	f.mu.Unlock()
	c := f.cands[i]
	if f.r.cfg.OnRoute != nil {
		f.r.cfg.OnRoute(f.req.CallID, c.Name, reason)
	}
	f.r.cfg.Log.Info().Str("call", string(f.req.CallID)).Str("route", c.Name).Str("reason", reason).Msg("route chosen")
	leg, err := c.Dialer.Dial(ctx, f.req, &candidatePoster{f: f, gen: gen})
	if err != nil {
		return err
	}
	f.mu.Lock()
	if f.ended || gen != f.gen {
		f.mu.Unlock()
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
		leg.Hangup(hctx, CauseCancelled)
		cancel()
		return nil
	}
	f.cur = leg
	if c.IP && i+1 < len(f.cands) {
		f.timer = time.AfterFunc(f.r.cfg.SetupTimeout, func() { f.setupTimeout(gen) })
	}
	f.mu.Unlock()
	return nil
}

func (f *fallbackLeg) setupTimeout(gen int) {
	f.mu.Lock()
	if f.ended || gen != f.gen || f.ringing || f.answered {
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	f.fallback(gen, fmt.Sprintf("%s: no ringing or answer within %s", f.cands[f.idx].Name, f.r.cfg.SetupTimeout))
}

// fallback abandons the current candidate (generation gen) and dials the
// next ones until one starts; the caller hears ringing meanwhile.
func (f *fallbackLeg) fallback(gen int, reason string) {
	f.mu.Lock()
	if f.ended || gen != f.gen {
		f.mu.Unlock()
		return
	}
	old, next := f.cur, f.idx+1
	f.cur = nil
	f.gen++ // events of the old leg are dropped from now on
	if f.timer != nil {
		f.timer.Stop()
	}
	f.mu.Unlock()
	f.up.Post(Event{Leg: f, Type: EventRinging, Detail: "falling back: " + reason})
	ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
	if old != nil {
		old.Hangup(ctx, CauseCancelled)
	}
	cancel()
	for i := next; i < len(f.cands); i++ {
		dctx, dcancel := context.WithTimeout(context.Background(), f.r.cfg.SetupTimeout)
		err := f.dialCandidate(dctx, i, "fallback: "+reason)
		dcancel()
		if err == nil {
			return
		}
		reason = fmt.Sprintf("%s failed: %v", f.cands[i].Name, err)
		if !f.cands[i].IP || !retryable(CauseOf(err), false) {
			f.up.Post(Event{Leg: f, Type: EventHangup, Cause: causeOrUnreachable(err), Detail: reason})
			return
		}
	}
	f.up.Post(Event{Leg: f, Type: EventHangup, Cause: CauseUnreachable, Detail: "every route failed: " + reason})
}

func causeOrUnreachable(err error) Cause {
	if c := CauseOf(err); c != CauseUnknown {
		return c
	}
	return CauseUnreachable
}

// candidatePoster forwards one candidate leg's events while it is current.
type candidatePoster struct {
	f   *fallbackLeg
	gen int
}

func (p *candidatePoster) Post(ev Event) {
	f := p.f
	f.mu.Lock()
	if f.ended || p.gen != f.gen {
		f.mu.Unlock()
		return
	}
	switch ev.Type {
	case EventRinging, EventProgress:
		f.ringing = true
		if f.timer != nil {
			f.timer.Stop()
		}
	case EventAnswered:
		f.answered = true
		if f.timer != nil {
			f.timer.Stop()
		}
	case EventHangup:
		c := f.cands[f.idx]
		if !f.answered && c.IP && f.idx+1 < len(f.cands) && retryable(ev.Cause, f.ringing) {
			gen := f.gen
			f.mu.Unlock()
			go f.fallback(gen, fmt.Sprintf("%s: %s (%s)", c.Name, ev.Cause, ev.Detail))
			return
		}
	}
	f.mu.Unlock()
	ev.Leg = f
	f.up.Post(ev)
}

// Route returns the name of the candidate currently carrying the call.
func (f *fallbackLeg) Route() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.idx < 0 {
		return ""
	}
	return f.cands[f.idx].Name
}

// Current returns the leg of the candidate currently carrying the call.
func (f *fallbackLeg) Current() Leg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

// SendDTMF implements DTMFSender by passing digits to the current leg.
func (f *fallbackLeg) SendDTMF(ctx context.Context, digit rune, d time.Duration) error {
	if s, ok := f.Current().(DTMFSender); ok {
		return s.SendDTMF(ctx, digit, d)
	}
	return errors.New("signalling: the current route cannot send DTMF")
}

func (f *fallbackLeg) Kind() string {
	if l := f.Current(); l != nil {
		return l.Kind()
	}
	return "fallback"
}

func (f *fallbackLeg) Answer(ctx context.Context) error {
	if l := f.Current(); l != nil {
		return l.Answer(ctx)
	}
	return nil
}

func (f *fallbackLeg) Audio() media.Endpoint {
	if l := f.Current(); l != nil {
		return l.Audio()
	}
	return nil
}

func (f *fallbackLeg) Hangup(ctx context.Context, cause Cause) {
	f.mu.Lock()
	if f.ended {
		f.mu.Unlock()
		return
	}
	f.ended = true
	if f.timer != nil {
		f.timer.Stop()
	}
	l := f.cur
	f.mu.Unlock()
	if l != nil {
		l.Hangup(ctx, cause)
	}
}

func (f *fallbackLeg) Describe(r *CallRecord) {
	if d, ok := f.Current().(Describer); ok {
		d.Describe(r)
	}
}

// RouteOf returns the name of the route carrying an outbound leg made by a
// FallbackRouter's dialer, or "" for other legs.
func RouteOf(l Leg) string {
	if f, ok := l.(*fallbackLeg); ok {
		return f.Route()
	}
	return ""
}

// CurrentLeg returns the leg actually carrying l (the current candidate's
// leg when l was made by a FallbackRouter's dialer), else l itself.
func CurrentLeg(l Leg) Leg {
	if f, ok := l.(*fallbackLeg); ok {
		if c := f.Current(); c != nil {
			return c
		}
	}
	return l
}
