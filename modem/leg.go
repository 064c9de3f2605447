package modem

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
)

// Kind is the Leg kind of modem legs.
const Kind = "modem"

// Leg is a GSM call as a signalling.Leg. Without an audio configuration
// (WithAudio) its audio is control-only: the modem's voice path stays in the
// phone's hardware and Audio returns ControlOnlyAudio. With one, the leg
// opens the modem's PCM device when the call becomes active (before it
// reports EventAnswered, or inside Answer for an incoming call), returns it
// from Audio and closes it at Hangup.
type Leg struct {
	call     *Call
	poster   signalling.Poster
	audioCfg *AudioConfig
	ctx      context.Context // cancelled by Hangup: stops an audio open in progress
	cancel   context.CancelFunc

	mu       sync.Mutex
	hungUp   bool
	posted   bool // the leg posted its EventHangup
	answered bool
	audio    *callAudio // nil while control-only
	stop     chan struct{}
	wg       sync.WaitGroup
}

// LegOption configures a Leg.
type LegOption func(*Leg)

// WithAudio makes the leg carry the call's audio through the device a
// names; nil or an empty Device keeps it control-only. The leg keeps a.
func WithAudio(a *AudioConfig) LegOption {
	return func(l *Leg) {
		if a.Enabled() {
			l.audioCfg = a
		}
	}
}

var (
	_ signalling.Leg        = (*Leg)(nil)
	_ signalling.Dialer     = (*Dialer)(nil)
	_ signalling.Describer  = (*Leg)(nil)
	_ signalling.DTMFSender = (*Leg)(nil)
)

// NewLeg wraps call as a leg that posts its events to p. For an incoming
// call, Answer accepts it.
func NewLeg(call *Call, p signalling.Poster, opts ...LegOption) *Leg {
	l := &Leg{call: call, poster: p, stop: make(chan struct{})}
	for _, o := range opts {
		o(l)
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.watch()
	return l
}

// Call returns the modem call behind the leg.
func (l *Leg) Call() *Call { return l.call }

// Kind implements signalling.Leg.
func (l *Leg) Kind() string { return Kind }

// Answer implements signalling.Leg: it accepts an incoming GSM call and
// then opens its audio; an audio failure is a CauseMediaFailed error (the
// call's owner then hangs the leg up).
func (l *Leg) Answer(ctx context.Context) error {
	if l.call.Direction() != DirectionIncoming {
		return nil
	}
	if err := l.call.Accept(ctx); err != nil {
		return err
	}
	l.mu.Lock()
	l.answered = true
	l.mu.Unlock()
	if err := l.startAudio(ctx); err != nil {
		return signalling.NewCauseError(signalling.CauseMediaFailed, "modem: call audio", err)
	}
	return nil
}

// Audio implements signalling.Leg: the modem's PCM device once the call is
// active and its audio open, else ControlOnlyAudio. After Hangup it still
// returns the (closed) device endpoint.
func (l *Leg) Audio() media.Endpoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.audio != nil {
		return l.audio.ep
	}
	return ControlOnlyAudio{}
}

// startAudio opens the configured audio device, bounded by the open timeout
// and by Hangup. Nothing configured, or "auto" with no audio port, leaves
// the leg control-only.
func (l *Leg) startAudio(ctx context.Context) error {
	a := l.audioCfg
	if a == nil {
		return nil
	}
	log := l.call.c.log.With().Str("call", string(l.call.path)).Str("device", a.Device).Logger()
	ctx, cancel := context.WithTimeout(ctx, a.openTimeout()+5*time.Second)
	defer cancel()
	stop := context.AfterFunc(l.ctx, cancel)
	defer stop()
	ca, err := openAudio(ctx, a, l.call)
	if err != nil {
		log.Warn().Err(err).Msg("modem: opening the call audio failed")
		return err
	}
	if ca == nil {
		log.Info().Msg("modem: the modem reports no audio port; the call is control-only")
		return nil
	}
	l.mu.Lock()
	if l.hungUp {
		l.mu.Unlock()
		_ = ca.ep.Close()
		return errors.New("modem: call audio: the call was hung up while its audio opened")
	}
	l.audio = ca
	l.wg.Add(1)
	l.mu.Unlock()
	go l.watchAudio(ca)
	log.Info().Str("endpoint", ca.ep.String()).Msg("modem: call audio open")
	return nil
}

// watchAudio ends the call when its capture stream ends by itself (the
// audio tool died, the device went away).
func (l *Leg) watchAudio(ca *callAudio) {
	defer l.wg.Done()
	select {
	case <-l.stop:
		return
	case <-ca.ep.Done():
	}
	l.mu.Lock()
	local := l.hungUp
	l.mu.Unlock()
	if !local {
		l.postHangup(signalling.CauseMediaFailed, ca.endDetail())
	}
}

// postHangup posts the leg's one EventHangup, unless the call already hung
// the leg up.
func (l *Leg) postHangup(cause signalling.Cause, detail string) {
	l.mu.Lock()
	if l.hungUp || l.posted {
		l.mu.Unlock()
		return
	}
	l.posted = true
	l.mu.Unlock()
	l.poster.Post(signalling.Event{Leg: l, Type: signalling.EventHangup, Cause: cause, Detail: detail})
}

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
	l.cancel()
	audio := l.audio
	l.mu.Unlock()
	if audio != nil {
		err := audio.ep.Close()
		st := audio.ep.Stats()
		l.call.c.log.Info().Err(err).Str("call", string(l.call.path)).Str("device", audio.device).
			Uint64("frames_in", st.FramesIn).Uint64("frames_out", st.FramesOut).Uint64("dropped", st.Dropped).
			Uint64("read_errors", st.ReadErrors).Uint64("write_errors", st.WriteErrors).Msg("modem: call audio closed")
	}
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

// Describe implements signalling.Describer: with audio, the phone codec
// names the PCM device and the phone packets are the 20 ms frames captured.
func (l *Leg) Describe(r *signalling.CallRecord) {
	r.Trunk = "modem"
	l.mu.Lock()
	a := l.audio
	l.mu.Unlock()
	if a == nil {
		r.PhoneCodec = "gsm (control-only)"
		return
	}
	r.PhoneCodec = "gsm " + a.ep.String()
	r.PhonePacketsIn = a.ep.Stats().FramesIn
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
			cause, detail := l.call.EndCause()
			l.postHangup(cause, detail)
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
		if !first {
			return
		}
		if err := l.startAudio(l.ctx); err != nil {
			l.postHangup(signalling.CauseMediaFailed, err.Error())
			return
		}
		l.poster.Post(signalling.Event{Leg: l, Type: signalling.EventAnswered, Detail: "modem: active"})
	}
}

// Dialer places GSM calls through a Client.
type Dialer struct {
	Client *Client
	// Audio, when set with a Device, makes the legs carry the calls' audio
	// (see WithAudio); nil leaves them control-only.
	Audio *AudioConfig
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
	return NewLeg(call, p, WithAudio(d.Audio)), nil
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
