package signalling

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Router picks the Dialer that should carry a call to a destination.
type Router interface {
	Route(ctx context.Context, from, to Party) (Dialer, error)
}

// Authorizer decides whether a caller may place a call (toll-fraud rules) and
// holds a concurrency slot for it. *Policy implements it.
type Authorizer interface {
	Authorize(user, number string) error
	Acquire(user string) (release func(), err error)
}

// CauseError is an error that knows the hangup cause it stands for.
type CauseError struct {
	Cause  Cause
	Detail string
	Err    error
}

func (e *CauseError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Cause, e.Detail, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Cause, e.Detail)
}

func (e *CauseError) Unwrap() error { return e.Err }

// HangupCause returns the error's cause.
func (e *CauseError) HangupCause() Cause { return e.Cause }

// NewCauseError makes an error carrying cause.
func NewCauseError(cause Cause, detail string, err error) error {
	return &CauseError{Cause: cause, Detail: detail, Err: err}
}

// CauseOf returns the hangup cause an error stands for: the cause of the first
// error in its chain with a HangupCause method, else CauseUnknown.
func CauseOf(err error) Cause {
	var hc interface{ HangupCause() Cause }
	if errors.As(err, &hc) {
		return hc.HangupCause()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return CauseNoAnswer
	}
	return CauseUnknown
}

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	Log        zerolog.Logger
	Authorizer Authorizer // required: who may call what
	Router     Router     // required: which dialer carries a call
	Metrics    *Metrics   // optional
	Recorder   Recorder   // optional: call records
}

// Manager creates calls, keeps track of the live ones and drains them on
// shutdown.
type Manager struct {
	log     zerolog.Logger
	auth    Authorizer
	router  Router
	metrics *Metrics
	rec     Recorder

	draining atomic.Bool
	mu       sync.Mutex
	calls    map[CallID]*Call
	idle     chan struct{} // closed and replaced when calls becomes empty
}

// NewManager returns a Manager.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Authorizer == nil || cfg.Router == nil {
		return nil, errors.New("signalling: manager needs an authorizer and a router")
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Recorder == nil {
		cfg.Recorder = nopRecorder{}
	}
	return &Manager{
		log:     cfg.Log,
		auth:    cfg.Authorizer,
		router:  cfg.Router,
		metrics: cfg.Metrics,
		rec:     cfg.Recorder,
		calls:   make(map[CallID]*Call),
	}, nil
}

// AddRecorder adds a recorder that gets every call record too (an exporter,
// a measurement). Call it before the first call: it is not synchronised
// with calls in progress.
func (m *Manager) AddRecorder(r Recorder) {
	m.rec = Recorders{m.rec, r}
}

// OriginateRequest describes a call an inbound leg wants to place.
type OriginateRequest struct {
	From     Party     // the caller; From.MatrixUser is checked against the policy
	To       Party     // the destination; To.Number is E.164
	Deadline time.Time // the caller's own give-up time (Matrix invite lifetime)
	// Direction is recorded in the call record; default DirectionToPhone.
	Direction Direction
	// Inbound marks a call from an authenticated trunk: the toll-fraud
	// rules (who may call which number) do not apply, the total call limit
	// does.
	Inbound bool
	// Dialer, when set, carries the call instead of the Router's choice.
	Dialer Dialer
	// NewInbound makes the inbound leg for the call once it is authorised.
	// The leg posts its events to the call.
	NewInbound func(c *Call) (Leg, error)
	// Log is the parent logger for the call (e.g. carrying the Matrix call_id).
	Log *zerolog.Logger
}

// Originate authorises a call, creates the inbound leg, dials the outbound
// leg and starts the call's loop. The returned error carries a cause (CauseOf)
// and means no leg was left running.
func (m *Manager) Originate(ctx context.Context, req OriginateRequest) (*Call, error) {
	if m.draining.Load() {
		m.metrics.refused(CauseShutdown)
		return nil, NewCauseError(CauseShutdown, "the gateway is shutting down", nil)
	}
	user := ""
	if !req.Inbound {
		if err := m.auth.Authorize(req.From.MatrixUser, req.To.Number); err != nil {
			m.metrics.refused(CauseOf(err))
			return nil, err
		}
		user = req.From.MatrixUser
	}
	release, err := m.auth.Acquire(user)
	if err != nil {
		m.metrics.refused(CauseOf(err))
		return nil, err
	}
	dialer := req.Dialer
	if dialer == nil {
		dialer, err = m.router.Route(ctx, req.From, req.To)
		if err != nil {
			release()
			m.metrics.refused(CauseOf(err))
			return nil, err
		}
	}
	id := NewCallID()
	parent := m.log
	if req.Log != nil {
		parent = *req.Log
	}
	cctx, cancel := context.WithCancelCause(context.Background())
	c := &Call{
		ID:       id,
		From:     req.From,
		To:       req.To,
		log:      parent.With().Str("call", string(id)).Logger(),
		mgr:      m,
		events:   make(chan Event, 32),
		ctx:      cctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		release:  release,
		started:  time.Now(),
		deadline: req.Deadline,
		dir:      req.Direction,
	}
	if c.dir == "" {
		c.dir = DirectionToPhone
	}
	in, err := req.NewInbound(c)
	if err != nil {
		cancel(err)
		release()
		m.metrics.refused(CauseOf(err))
		return nil, err
	}
	c.in = in
	m.track(c)
	m.metrics.started()
	c.log.Info().Str("direction", string(c.dir)).Str("from", req.From.MatrixUser+req.From.Number).
		Str("to", req.To.Number).Str("to_user", req.To.MatrixUser).Msg("placing call")
	out, err := dialer.Dial(cctx, DialRequest{CallID: id, From: req.From, To: req.To, Deadline: req.Deadline}, c)
	if err != nil {
		cause := CauseOf(err)
		if cause == CauseUnknown {
			cause = CauseUnreachable
		}
		c.log.Warn().Err(err).Msg("dialling failed")
		c.mgr.rec.CallStarted(c.record())
		c.end(nil, cause, err.Error())
		close(c.done)
		m.forget(c)
		return nil, err
	}
	c.out = out
	c.mgr.rec.CallStarted(c.record())
	go c.run()
	return c, nil
}

func (m *Manager) track(c *Call) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls[c.ID] = c
	if m.idle == nil {
		m.idle = make(chan struct{})
	}
}

func (m *Manager) forget(c *Call) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.calls, c.ID)
	if len(m.calls) == 0 && m.idle != nil {
		close(m.idle)
		m.idle = nil
	}
}

// Calls returns the live calls.
func (m *Manager) Calls() []*Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Call, 0, len(m.calls))
	for _, c := range m.calls {
		out = append(out, c)
	}
	return out
}

// Drain stops new calls and waits until the live ones end or ctx is done;
// then it hangs up what is left with CauseShutdown and waits for that (bounded).
func (m *Manager) Drain(ctx context.Context) {
	m.draining.Store(true)
	m.mu.Lock()
	idle := m.idle
	n := len(m.calls)
	m.mu.Unlock()
	if idle != nil {
		m.log.Info().Int("calls", n).Msg("draining: waiting for calls to end")
		select {
		case <-idle:
			return
		case <-ctx.Done():
		}
	}
	m.HangupAll()
}

// HangupAll ends every live call with CauseShutdown and waits (bounded) for
// their legs to be hung up. New calls are refused from then on.
func (m *Manager) HangupAll() {
	m.draining.Store(true)
	calls := m.Calls()
	for _, c := range calls {
		c.Hangup(CauseShutdown)
	}
	deadline := time.After(teardownTimeout + time.Second)
	for _, c := range calls {
		select {
		case <-c.Done():
		case <-deadline:
			m.log.Warn().Msg("shutdown: some calls did not end in time")
			return
		}
	}
}
