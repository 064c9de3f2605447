package modem

import (
	"context"
	"sync"
	"time"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
)

// Kind is the Leg kind of modem legs.
const Kind = "modem"

// Leg is a GSM call as a signalling.Leg. Its audio is control-only: the
// modem's voice path stays in the phone's hardware and Audio returns an
// endpoint that discards what it is given and produces nothing.
type Leg struct {
	call   *Call
	poster signalling.Poster
	audio  media.Endpoint

	mu       sync.Mutex
	hungUp   bool
	answered bool
	stop     chan struct{}
	wg       sync.WaitGroup
}

var (
	_ signalling.Leg        = (*Leg)(nil)
	_ signalling.Dialer     = (*Dialer)(nil)
	_ signalling.Describer  = (*Leg)(nil)
	_ signalling.DTMFSender = (*Leg)(nil)
)

// NewLeg wraps call as a leg that posts its events to p. For an incoming
// call, Answer accepts it.
func NewLeg(call *Call, p signalling.Poster) *Leg {
	l := &Leg{call: call, poster: p, audio: ControlOnlyAudio{}, stop: make(chan struct{})}
	l.wg.Add(1)
	go l.watch()
	return l
}

// Call returns the modem call behind the leg.
func (l *Leg) Call() *Call { return l.call }

// Kind implements signalling.Leg.
func (l *Leg) Kind() string { return Kind }

// Answer implements signalling.Leg: it accepts an incoming GSM call.
func (l *Leg) Answer(ctx context.Context) error {
	if l.call.Direction() != DirectionIncoming {
		return nil
	}
	return l.call.Accept(ctx)
}

// Audio implements signalling.Leg; see ControlOnlyAudio.
func (l *Leg) Audio() media.Endpoint { return l.audio }

// Hangup implements signalling.Leg: it hangs the GSM call up if it is still
// up and deletes it from ModemManager. It never posts EventHangup.
func (l *Leg) Hangup(ctx context.Context, _ signalling.Cause) {
	l.mu.Lock()
	if l.hungUp {
		l.mu.Unlock()
		return
	}
	l.hungUp = true
	close(l.stop)
	l.mu.Unlock()
	if err := l.call.Hangup(ctx); err != nil {
		l.call.c.log.Debug().Err(err).Str("call", string(l.call.path)).Msg("modem: hangup")
	}
	// Wait for the event goroutine, bounded by ctx: it may be blocked
	// posting to a call that is itself busy hanging this leg up.
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// SendDTMF sends digits on the GSM call.
func (l *Leg) SendDTMF(ctx context.Context, digit rune, _ time.Duration) error {
	return l.call.SendDTMF(ctx, string(digit))
}

// Describe implements signalling.Describer.
func (l *Leg) Describe(r *signalling.CallRecord) {
	r.Trunk = "modem"
	r.PhoneCodec = "gsm (control-only)"
}

// watch turns the call's events into leg events.
func (l *Leg) watch() {
	defer l.wg.Done()
	for {
		select {
		case <-l.stop:
			return
		case ev := <-l.call.Events():
			l.event(ev)
		case <-l.call.Ended():
			for {
				select {
				case ev := <-l.call.Events():
					l.event(ev)
					continue
				default:
				}
				break
			}
			l.mu.Lock()
			local := l.hungUp
			l.mu.Unlock()
			if !local {
				cause, detail := l.call.EndCause()
				l.poster.Post(signalling.Event{Leg: l, Type: signalling.EventHangup, Cause: cause, Detail: detail})
			}
			return
		}
	}
}

func (l *Leg) event(ev CallEvent) {
	if ev.DTMF != "" {
		for _, d := range ev.DTMF {
			l.poster.Post(signalling.Event{Leg: l, Type: signalling.EventDTMF, Digit: d, Duration: 100 * time.Millisecond})
		}
		return
	}
	if l.call.Direction() != DirectionOutgoing {
		return
	}
	switch ev.State {
	case CallRingingOut:
		l.poster.Post(signalling.Event{Leg: l, Type: signalling.EventRinging, Detail: "modem: ringing-out"})
	case CallActive:
		l.mu.Lock()
		first := !l.answered
		l.answered = true
		l.mu.Unlock()
		if first {
			l.poster.Post(signalling.Event{Leg: l, Type: signalling.EventAnswered, Detail: "modem: active"})
		}
	}
}

// Dialer places GSM calls through a Client.
type Dialer struct {
	Client *Client
	// Emergency reports whether a number is an emergency number, which may be
	// dialled without registration; nil means none is.
	Emergency func(number string) bool
}

// Dial implements signalling.Dialer.
func (d *Dialer) Dial(ctx context.Context, req signalling.DialRequest, p signalling.Poster) (signalling.Leg, error) {
	emergency := d.Emergency != nil && d.Emergency(req.To.Number)
	call, err := d.Client.Dial(ctx, req.To.Number, emergency)
	if err != nil {
		return nil, err
	}
	return NewLeg(call, p), nil
}

// ControlOnlyAudio is the audio endpoint of a modem leg when the gateway
// does not carry the modem's voice: the GSM audio is routed by the phone's
// hardware (PinePhone) or by another daemon (callaudiod, wys on the Librem 5).
// It accepts audio and drops it, and never produces any.
type ControlOnlyAudio struct{}

var _ media.Endpoint = ControlOnlyAudio{}

// Rates implements media.Endpoint.
func (ControlOnlyAudio) Rates() []int { return []int{8000} }

// Writer implements media.Endpoint.
func (ControlOnlyAudio) Writer(int) (media.PCMWriter, error) { return discard{}, nil }

// SetSink implements media.Endpoint.
func (ControlOnlyAudio) SetSink(int, media.PCMWriter) error { return nil }

func (ControlOnlyAudio) String() string { return "gsm(control-only)" }

type discard struct{}

func (discard) WritePCM([]int16) error { return nil }
