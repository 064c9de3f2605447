package modem

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"

	"github.com/matrix-gateway/gateway/signalling"
)

// CallEvent is a change of a modem call: a new state, or DTMF digits
// received.
type CallEvent struct {
	State  CallState
	Reason CallStateReason
	DTMF   string // digits received (DtmfReceived); State is then unchanged
}

// Call is one voice call on a modem. Its methods are safe for concurrent use.
type Call struct {
	c         *Client
	modem     dbus.ObjectPath
	path      dbus.ObjectPath
	direction CallDirection
	number    string

	events chan CallEvent
	ended  chan struct{}

	mu          sync.Mutex
	state       CallState
	reason      CallStateReason
	wasActive   bool
	wasAlerting bool
	localHangup bool
	goneDetail  string
	endOnce     sync.Once
	deleteOnce  sync.Once
}

func newCall(c *Client, modem, p dbus.ObjectPath, dir CallDirection, number string, state CallState) *Call {
	return &Call{c: c, modem: modem, path: p, direction: dir, number: number, state: state,
		events: make(chan CallEvent, 64), ended: make(chan struct{})}
}

// Path returns the call's ModemManager object path.
func (k *Call) Path() dbus.ObjectPath { return k.path }

// ID returns a short stable identifier of the call ("modem-3").
func (k *Call) ID() string {
	p := string(k.path)
	return "modem-" + p[strings.LastIndexByte(p, '/')+1:]
}

// Number returns the far party's number as the modem reports it.
func (k *Call) Number() string { return k.number }

// Direction returns the call's direction.
func (k *Call) Direction() CallDirection { return k.direction }

// State returns the call's current state.
func (k *Call) State() CallState {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.state
}

// Events delivers the call's state changes and received DTMF. Events that
// do not fit the buffer are dropped; the end is always signalled by Ended.
func (k *Call) Events() <-chan CallEvent { return k.events }

// Ended is closed when the call has terminated or disappeared.
func (k *Call) Ended() <-chan struct{} { return k.ended }

func (k *Call) post(ev CallEvent) {
	select {
	case k.events <- ev:
	default:
	}
}

func (k *Call) stateChanged(s CallState, r CallStateReason) {
	k.mu.Lock()
	if k.state == CallTerminated {
		k.mu.Unlock()
		return
	}
	k.state, k.reason = s, r
	switch s {
	case CallActive:
		k.wasActive = true
	case CallRingingOut:
		k.wasAlerting = true
	}
	k.mu.Unlock()
	k.post(CallEvent{State: s, Reason: r})
	if s == CallTerminated {
		k.end()
	}
}

func (k *Call) dtmf(d string) { k.post(CallEvent{State: k.State(), DTMF: d}) }

// gone ends the call because it, its modem or ModemManager disappeared.
func (k *Call) gone(detail string) {
	k.mu.Lock()
	if k.state == CallTerminated {
		k.mu.Unlock()
		return
	}
	k.goneDetail = detail
	k.state = CallTerminated
	k.mu.Unlock()
	k.post(CallEvent{State: CallTerminated})
	k.end()
}

func (k *Call) end() { k.endOnce.Do(func() { close(k.ended) }) }

// EndCause maps how the call ended to a neutral cause, with a detail for
// logs. On AT modems a busy callee and a remote hangup both arrive as reason
// "unknown": a call that ends that way before it was ever active is taken as
// busy (GSM also reports a declined call as busy), after answer as a normal
// hangup.
func (k *Call) EndCause() (signalling.Cause, string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return endCause(k.direction, k.reason, k.wasActive, k.localHangup, k.goneDetail)
}

func endCause(dir CallDirection, r CallStateReason, active, local bool, gone string) (signalling.Cause, string) {
	if gone != "" {
		return signalling.CauseUnreachable, "modem: " + gone
	}
	detail := "modem: terminated (" + r.String() + ")"
	switch {
	case local && active:
		return signalling.CauseNormal, detail
	case local:
		return signalling.CauseCancelled, detail
	case r == ReasonAudioSetupFailed:
		return signalling.CauseMediaFailed, detail
	case r == ReasonError:
		return signalling.CauseServerError, detail
	case active:
		return signalling.CauseNormal, detail
	case dir == DirectionIncoming:
		return signalling.CauseCancelled, detail // the caller gave up before we answered
	case r == ReasonRefusedOrBusy, r == ReasonUnknown, r == ReasonTerminated:
		return signalling.CauseBusy, detail
	}
	return signalling.CauseUnknown, detail
}

func (k *Call) obj() dbus.BusObject { return k.c.conn.Object(mmService, k.path) }

// Accept answers an incoming call.
func (k *Call) Accept(ctx context.Context) error {
	if err := k.obj().CallWithContext(ctx, ifCall+".Accept", 0).Err; err != nil {
		return dbusErr("Accept", err)
	}
	return nil
}

// Hangup ends the call (if it is still up) and deletes it from ModemManager.
// It is idempotent.
func (k *Call) Hangup(ctx context.Context) error {
	k.mu.Lock()
	up := k.state != CallTerminated
	if up {
		k.localHangup = true
	}
	k.mu.Unlock()
	var err error
	if up {
		if e := k.obj().CallWithContext(ctx, ifCall+".Hangup", 0).Err; e != nil {
			err = dbusErr("Hangup", e)
		}
		k.mu.Lock()
		k.state = CallTerminated
		k.mu.Unlock()
		k.end()
	}
	k.deleteOnce.Do(func() {
		k.c.forget(k)
		k.c.deleteCall(k)
	})
	return err
}

// SendDTMF sends digits (0-9, A-D, *, #) on an active call, one SendDtmf
// request per digit: ModemManager 1.20's AT implementation sends only the
// first character of each request.
func (k *Call) SendDTMF(ctx context.Context, digits string) error {
	for _, d := range digits {
		if !strings.ContainsRune("0123456789ABCDabcd*#", d) {
			return causeError(signalling.CauseProtocolError, "SendDtmf", fmt.Errorf("modem: not a DTMF digit: %q", d))
		}
		if err := k.obj().CallWithContext(ctx, ifCall+".SendDtmf", 0, string(d)).Err; err != nil {
			return dbusErr("SendDtmf", err)
		}
	}
	return nil
}
