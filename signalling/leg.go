// Package signalling is the call core: a Call joins legs through the small
// Leg contract, one event loop per call, neutral events and hangup causes,
// routing and the toll-fraud policy. It knows neither Matrix nor SIP.
package signalling

import (
	"context"
	"time"

	"github.com/matrix-gateway/gateway/media"
)

// Leg is one side of a call: a Matrix WebRTC call, a SIP dialog, a GSM call,
// a conference mixer. A leg reports what happens to it by posting Events to
// the Call that owns it (Call.Post); the call drives it through these methods,
// always from the call's own event loop, so a leg sees them one at a time.
type Leg interface {
	// Kind names the leg's technology: "matrix", "sip", "modem", ...
	Kind() string
	// Answer tells an inbound leg that the far side answered: the leg
	// completes its own answer (e.g. sends m.call.answer, or SIP 200 OK).
	// It must not block for long; failures are reported as an error.
	Answer(ctx context.Context) error
	// Audio returns the leg's media endpoint; nil before media is possible.
	Audio() media.Endpoint
	// Hangup ends the leg with cause, telling the peer (BYE, CANCEL, a
	// final response, m.call.hangup), and releases the leg's resources. It is
	// idempotent and must not post an EventHangup for a hangup the call asked
	// for. The call also calls it on a leg that ended by itself (after that
	// leg's EventHangup), which then only releases resources.
	Hangup(ctx context.Context, cause Cause)
}

// Ringer is an optional Leg capability: an inbound leg that can tell its peer
// the far side is ringing (SIP 180, nothing on Matrix).
type Ringer interface {
	Ringing(ctx context.Context) error
}

// DTMFSender is an optional Leg capability: a leg that can send a DTMF
// digit to its peer (RFC 4733 telephone-event, SIP INFO, a modem's DTMF).
// The call relays every EventDTMF of one leg to the other through it.
// SendDTMF must not block for the digit's duration.
type DTMFSender interface {
	SendDTMF(ctx context.Context, digit rune, d time.Duration) error
}

// EventType says what happened to a leg.
type EventType int

// Leg events.
const (
	EventRinging  EventType = iota + 1 // the far side is alerting
	EventProgress                      // early media is available
	EventAnswered                      // the far side answered; Audio() is ready
	EventHangup                        // the leg ended by itself (Cause says why)
	EventDTMF                          // a digit was received
)

func (t EventType) String() string {
	switch t {
	case EventRinging:
		return "ringing"
	case EventProgress:
		return "progress"
	case EventAnswered:
		return "answered"
	case EventHangup:
		return "hangup"
	case EventDTMF:
		return "dtmf"
	}
	return "unknown"
}

// Event is something a leg reports to its call.
type Event struct {
	Leg      Leg
	Type     EventType
	Cause    Cause         // EventHangup
	Detail   string        // free text for logs and notices, e.g. "SIP 486 Busy Here"
	Digit    rune          // EventDTMF
	Duration time.Duration // EventDTMF
}

// Poster receives a leg's events. Post never blocks for long.
type Poster interface {
	Post(Event)
}

// Party identifies one end of a call in neutral terms.
type Party struct {
	Number      string // E.164 with "+", when known
	DisplayName string
	MatrixUser  string // Matrix user ID, when the party is a Matrix user
}

// DialRequest asks a Dialer to start an outbound leg.
type DialRequest struct {
	CallID   CallID
	From     Party
	To       Party
	Deadline time.Time // give up (CauseNoAnswer) if not answered by then; zero = dialer default
}

// Dialer starts outbound legs of one technology (a SIP trunk, a modem).
// Dial returns quickly: the new leg reports ringing, answer or failure by
// posting events to p.
type Dialer interface {
	Dial(ctx context.Context, req DialRequest, p Poster) (Leg, error)
}
