package signalling

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/media"
)

// State is where a call is in its life.
type State int32

// Call states.
const (
	StateSetup    State = iota // the outbound leg is being dialled
	StateRinging               // the far side is alerting
	StateAnswered              // both legs are up and bridged
	StateEnded                 // both legs are gone
)

func (s State) String() string {
	switch s {
	case StateSetup:
		return "setup"
	case StateRinging:
		return "ringing"
	case StateAnswered:
		return "answered"
	case StateEnded:
		return "ended"
	}
	return "unknown"
}

// teardownTimeout bounds how long hanging up the legs of an ending call may take.
const teardownTimeout = 5 * time.Second

// Call joins an inbound leg to an outbound leg. All decisions about a call are
// taken in its one event loop goroutine; legs post events to it (Post) and the
// loop drives the legs, so no leg method is ever called concurrently with
// another for the same call.
type Call struct {
	ID   CallID
	From Party
	To   Party

	log     zerolog.Logger
	mgr     *Manager
	events  chan Event
	ctx     context.Context
	cancel  context.CancelCauseFunc
	done    chan struct{}
	release func()

	state    atomic.Int32
	started  time.Time
	ringing  time.Time
	answered time.Time // the far side answered and our side answered too
	bridged  time.Time // audio is bridged
	ended    time.Time
	dir      Direction

	// Owned by the event loop.
	in, out   Leg
	deadline  time.Time
	isBridged bool
	health    callMedia // bridged endpoints: dead-media watch and health (health.go)

	endOnce  sync.Once
	endCause Cause
	endLeg   string
}

// ErrCallEnded is the context cause of a call that has ended normally.
var ErrCallEnded = errors.New("signalling: call ended")

// Post queues a leg event for the call's loop. It never blocks: when the call
// has ended the event is dropped, and a full queue (a misbehaving leg) drops
// everything but hangups, which wait.
func (c *Call) Post(ev Event) {
	select {
	case <-c.done:
		return
	default:
	}
	if ev.Type == EventHangup {
		select {
		case c.events <- ev:
		case <-c.done:
		}
		return
	}
	select {
	case c.events <- ev:
	default:
		c.log.Warn().Stringer("event", ev.Type).Msg("call event queue full, dropping event")
	}
}

// Context is cancelled when the call ends; its cause is the end cause.
func (c *Call) Context() context.Context { return c.ctx }

// Done is closed when the call has ended and both legs were hung up.
func (c *Call) Done() <-chan struct{} { return c.done }

// State returns the call's current state.
func (c *Call) State() State { return State(c.state.Load()) }

// EndCause returns why the call ended; valid after Done is closed.
func (c *Call) EndCause() Cause { return c.endCause }

// Logger returns the call's child logger.
func (c *Call) Logger() *zerolog.Logger { return &c.log }

// Hangup asks the call to end with cause, from outside any leg (shutdown,
// admin). It returns at once; Done tells when the call has ended.
func (c *Call) Hangup(cause Cause) {
	c.Post(Event{Type: EventHangup, Cause: cause, Detail: "hangup requested"})
}

// run is the call's event loop. It starts after the outbound leg was dialled.
func (c *Call) run() {
	defer close(c.done)
	defer c.mgr.forget(c)
	var timer *time.Timer
	var timeout <-chan time.Time
	if !c.deadline.IsZero() {
		timer = time.NewTimer(time.Until(c.deadline))
		defer timer.Stop()
		timeout = timer.C
	}
	for {
		select {
		case ev := <-c.events:
			if c.handle(ev) {
				return
			}
		case <-timeout:
			timeout = nil
			if c.State() < StateAnswered {
				c.end(nil, CauseNoAnswer, "not answered before the deadline")
				return
			}
		}
	}
}

// handle processes one event and reports whether the call has ended.
func (c *Call) handle(ev Event) bool {
	switch ev.Type {
	case EventRinging, EventProgress:
		if ev.Leg != c.out || c.State() >= StateAnswered {
			return false
		}
		c.state.Store(int32(StateRinging))
		if c.ringing.IsZero() {
			c.ringing = time.Now()
			c.mgr.metrics.setup(c.dir, "ringing", c.ringing.Sub(c.started))
		}
		c.log.Debug().Stringer("event", ev.Type).Msg("far side alerting")
		if r, ok := c.in.(Ringer); ok {
			if err := r.Ringing(c.ctx); err != nil {
				c.log.Warn().Err(err).Msg("could not signal ringing to the caller")
			}
		}
	case EventAnswered:
		if ev.Leg != c.out || c.State() >= StateAnswered {
			return false
		}
		farAnswer := time.Now()
		if err := c.in.Answer(c.ctx); err != nil {
			c.log.Error().Err(err).Msg("answering the inbound leg failed")
			c.end(nil, CauseMediaFailed, "inbound answer failed: "+err.Error())
			return true
		}
		c.answered = farAnswer
		c.state.Store(int32(StateAnswered))
		a, b := c.in.Audio(), c.out.Audio()
		if a == nil || b == nil {
			c.end(nil, CauseMediaFailed, "a leg has no audio endpoint")
			return true
		}
		rate, err := media.Bridge(a, b)
		if err != nil {
			c.log.Error().Err(err).Msg("bridging media failed")
			c.end(nil, CauseIncompatible, err.Error())
			return true
		}
		c.isBridged = true
		c.bridged = time.Now()
		c.watchMedia(a, b)
		c.mgr.metrics.setup(c.dir, "answer", c.bridged.Sub(c.answered))
		c.mgr.rec.CallAnswered(c.record())
		c.log.Info().Int("rate", rate).Str("a", a.String()).Str("b", b.String()).Bool("passthrough", media.PassThrough(a, b)).
			Dur("setup", c.answered.Sub(c.started)).Dur("answer_overhead", c.bridged.Sub(c.answered)).
			Msg("call answered and bridged")
		c.mgr.metrics.answered()
	case EventHangup:
		c.end(ev.Leg, ev.Cause, ev.Detail)
		return true
	case EventDTMF:
		c.relayDTMF(ev)
	}
	return false
}

// relayDTMF sends a digit received on one leg to the other, if it can take
// digits; before the answer digits are dropped.
func (c *Call) relayDTMF(ev Event) {
	if c.State() != StateAnswered {
		return
	}
	to := c.out
	if ev.Leg == c.out {
		to = c.in
	}
	s, ok := to.(DTMFSender)
	if !ok || to == nil {
		c.log.Debug().Msg("DTMF dropped: the other leg cannot send digits")
		return
	}
	if err := s.SendDTMF(c.ctx, ev.Digit, ev.Duration); err != nil {
		c.log.Warn().Err(err).Msg("relaying DTMF failed")
		return
	}
	c.log.Debug().Str("digit", string(ev.Digit)).Dur("duration", ev.Duration).Str("to", to.Kind()).Msg("DTMF relayed")
}

// end tears the call down: every leg but the one that ended by itself is hung
// up with cause, under a context that survives the call's own cancellation.
func (c *Call) end(from Leg, cause Cause, detail string) {
	c.endOnce.Do(func() {
		c.endCause = cause
		c.state.Store(int32(StateEnded))
		if from != nil {
			c.endLeg = from.Kind()
		}
		if c.isBridged {
			c.stopMediaWatch()
			media.Unbridge(c.in.Audio(), c.out.Audio())
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), teardownTimeout)
		defer cancel()
		for _, l := range []Leg{c.in, c.out} {
			if l != nil && l != from {
				l.Hangup(ctx, cause)
			}
		}
		if from != nil {
			// The leg that ended by itself still releases its resources.
			from.Hangup(ctx, cause)
		}
		c.ended = time.Now()
		rec := c.record()
		rec.Detail = detail
		c.mgr.rec.CallEnded(rec)
		c.cancel(ErrCallEnded)
		if c.release != nil {
			c.release()
		}
		ev := c.log.Info().Stringer("cause", cause).Str("detail", detail).Str("ended_by", c.endLeg)
		if !c.answered.IsZero() {
			ev = ev.Dur("duration", time.Since(c.answered))
		}
		ev.Msg("call ended")
		c.mgr.metrics.ended(cause)
	})
}

// record builds the call's record as it stands, with what the legs add.
func (c *Call) record() CallRecord {
	r := CallRecord{
		ID: c.ID, Direction: c.dir, From: c.From, To: c.To,
		Started: c.started, Ringing: c.ringing, Answered: c.answered, Bridged: c.bridged, Ended: c.ended,
		Cause: c.endCause, EndedBy: c.endLeg,
	}
	for _, l := range []Leg{c.in, c.out} {
		if d, ok := l.(Describer); ok && l != nil {
			d.Describe(&r)
		}
	}
	c.describeMedia(&r)
	return r
}
