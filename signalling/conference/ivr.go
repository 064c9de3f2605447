package conference

import (
	"context"
	"sync"
	"time"

	"github.com/matrix-gateway/gateway/signalling"
)

// The PIN prompt speaks in tones, not words (no recordings to ship or
// translate): see tones.go and docs/conferences.md for what each means.

// promptEvery is how often the PIN prompt repeats while the caller is silent.
const promptEvery = 6 * time.Second

// maxPINInput bounds the digits kept for one attempt; longer input is a
// wrong PIN.
const maxPINInput = 16

// ivrDialer answers dial-in callers with the PIN prompt.
type ivrDialer struct{ reg *Registry }

// IVRDialer returns the Dialer for calls to a dial-in number: the port
// answers, plays the PIN prompt and seats the caller in the conference whose
// PIN they enter. Callers who entered too many wrong PINs recently are
// refused before answer (CauseForbidden).
func (r *Registry) IVRDialer() signalling.Dialer { return ivrDialer{reg: r} }

// Dial implements signalling.Dialer.
func (d ivrDialer) Dial(ctx context.Context, req signalling.DialRequest, post signalling.Poster) (signalling.Leg, error) {
	r := d.reg
	key := failureKey(req.From)
	if r.fails.locked(key, time.Now()) {
		r.m.pinLockouts.Inc()
		r.log.Warn().Str("caller", key).Msg("dial-in refused: too many wrong PINs from this caller")
		return nil, signalling.NewCauseError(signalling.CauseForbidden, "too many wrong PINs from "+key, nil)
	}
	p := r.newPort(req.From, "sip", "dial_in", "")
	p.poster = post
	if err := r.lobby.Add(p.mixPort); err != nil {
		return nil, signalling.NewCauseError(signalling.CauseShutdown, "PIN prompt", err)
	}
	iv := &ivr{port: p, reg: r, key: key, digits: make(chan rune, 32), done: make(chan struct{})}
	p.ivr = iv
	r.wg.Add(1)
	go func() { defer r.wg.Done(); iv.run() }()
	post.Post(signalling.Event{Leg: p, Type: signalling.EventAnswered})
	return p, nil
}

// failureKey is who wrong PINs are counted against: the caller's number, or
// their display name when anonymous.
func failureKey(from signalling.Party) string {
	if from.Number != "" {
		return from.Number
	}
	return "anonymous:" + from.DisplayName
}

// ivr is one caller's PIN entry.
type ivr struct {
	port   *Port
	reg    *Registry
	key    string
	digits chan rune
	done   chan struct{}
	once   sync.Once
}

func (iv *ivr) close() { iv.once.Do(func() { close(iv.done) }) }

// digit queues a key press; a full queue (a DTMF flood) drops it.
func (iv *ivr) digit(d rune) {
	select {
	case iv.digits <- d:
	default:
	}
}

// run plays the prompt and checks PINs until the caller is seated, gives
// up, or hangs up.
func (iv *ivr) run() {
	r, p := iv.reg, iv.port
	rate := r.cfg.Rate
	deadline := time.NewTimer(r.cfg.PINTimeout)
	defer deadline.Stop()
	// The first prompt waits a moment: the caller's media is being bridged.
	prompt := time.NewTimer(400 * time.Millisecond)
	defer prompt.Stop()
	var input []rune
	attempts := 0
	for {
		select {
		case <-iv.done:
			return
		case <-r.stop:
			return
		case <-deadline.C:
			iv.hangup(signalling.CauseNoAnswer, "no PIN entered in time")
			return
		case <-prompt.C:
			p.mixPort.Play(promptTone(rate))
			prompt.Reset(promptEvery)
		case d := <-iv.digits:
			prompt.Reset(promptEvery)
			switch {
			case d == '*':
				input = input[:0]
				continue
			case d == '#' && len(input) == 0:
				continue // '#' after a PIN that was checked as it was completed
			case d != '#':
				input = append(input, d)
				if len(input) < r.cfg.PINDigits && len(input) <= maxPINInput {
					continue
				}
			}
			pin := string(input)
			input = input[:0]
			if room, ok := r.roomForPIN(pin); ok && pin != "" {
				if iv.enter(room) {
					return
				}
				continue
			}
			attempts++
			now := time.Now()
			r.fails.add(iv.key, now)
			r.m.pinFailures.Inc()
			r.log.Info().Str("caller", iv.key).Int("attempt", attempts).Msg("wrong conference PIN")
			if attempts >= r.cfg.PINAttempts || r.fails.locked(iv.key, now) {
				p.mixPort.Play(wrongTone(rate))
				// Let the caller hear why, then hang up.
				select {
				case <-iv.done:
				case <-time.After(900 * time.Millisecond):
				}
				iv.hangup(signalling.CauseForbidden, "wrong PIN")
				return
			}
			p.mixPort.Play(retryTone(rate))
			prompt.Reset(2 * time.Second)
		}
	}
}

// enter moves the caller from the lobby to room's conference; false when
// the conference cannot take them (the caller hears the error tone and is
// hung up).
func (iv *ivr) enter(room string) bool {
	r, p := iv.reg, iv.port
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return true
	}
	r.lobby.Remove(p.mixPort)
	p.mixPort.Play(nil)
	err := p.seatLocked(room)
	if err == nil {
		p.ivr = nil
	}
	p.mu.Unlock()
	if err != nil {
		r.log.Warn().Err(err).Str("room_id", room).Msg("a dial-in caller could not join the conference")
		cause := signalling.CauseServerError
		if err == ErrFull {
			cause = signalling.CauseLimit
		}
		iv.hangup(cause, "could not join the conference: "+err.Error())
		return true
	}
	r.fails.reset(iv.key)
	return true
}

func (iv *ivr) hangup(cause signalling.Cause, why string) {
	iv.port.kick(cause, why)
}

// failures counts wrong PINs per caller in a sliding window, for a bounded
// number of callers.
type failures struct {
	max    int
	window time.Duration
	mu     sync.Mutex
	byKey  map[string][]time.Time
}

// maxTrackedCallers bounds the failure table; beyond it the oldest entry is
// forgotten.
const maxTrackedCallers = 10000

func newFailures(max int, window time.Duration) *failures {
	return &failures{max: max, window: window, byKey: make(map[string][]time.Time)}
}

func (f *failures) add(key string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	list := f.prune(key, now)
	if len(list) >= 2*f.max {
		list = list[1:]
	}
	f.byKey[key] = append(list, now)
	if len(f.byKey) > maxTrackedCallers {
		f.evictOldest()
	}
}

// locked reports whether key has reached the failure limit in the window.
func (f *failures) locked(key string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.prune(key, now)) >= f.max
}

func (f *failures) reset(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.byKey, key)
}

// prune drops failures older than the window. f.mu is held.
func (f *failures) prune(key string, now time.Time) []time.Time {
	list := f.byKey[key]
	i := 0
	for i < len(list) && now.Sub(list[i]) > f.window {
		i++
	}
	list = list[i:]
	if len(list) == 0 {
		delete(f.byKey, key)
		return nil
	}
	f.byKey[key] = list
	return list
}

func (f *failures) evictOldest() {
	var oldKey string
	var oldT time.Time
	for k, l := range f.byKey {
		if len(l) > 0 && (oldKey == "" || l[len(l)-1].Before(oldT)) {
			oldKey, oldT = k, l[len(l)-1]
		}
	}
	delete(f.byKey, oldKey)
}
