// Package conference hosts conference calls inside the gateway: a Matrix
// room is given a conference (a dial-in number and a PIN), and every
// participant, a Matrix user calling the gateway's bot in that room or a
// phone dialling in or dialled out, is an ordinary two-leg call of the call
// core whose second leg is a Port: a seat at the conference's mixer
// (media.Mixer, N-1 mixes). The conference itself is not a call; it is the
// set of calls whose ports share one mixer.
//
// Because a participant is "a leg bridged to a port", any leg type the call
// core knows (Matrix, SIP, GSM, later a MatrixRTC/LiveKit participant) can
// join a conference without the conference knowing its protocol.
package conference

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
)

// Stored is a conference as it is persisted: the room it belongs to and
// its PIN. It outlives the calls: a conference room keeps its PIN until the
// conference is removed.
type Stored struct {
	Room      string
	PIN       string
	CreatedBy string
	Created   time.Time
}

// Store persists conference rooms. signalling/store implements it.
type Store interface {
	SaveConference(ctx context.Context, c Stored) error
	DeleteConference(ctx context.Context, room string) error
	Conferences(ctx context.Context) ([]Stored, error)
}

// Announcer tells a room what happens to its conference. The registry calls
// it from its own notifier goroutine, one call at a time, so it may block
// (it sends Matrix events).
type Announcer interface {
	// Notice posts a short text to the room.
	Notice(ctx context.Context, room, text string)
	// Roster publishes who is on the conference call now (room state).
	Roster(ctx context.Context, room string, r Roster)
}

// Roster is the state of a room's conference as published to the room.
type Roster struct {
	Active       bool          `json:"active"`
	DialIn       []string      `json:"dial_in,omitempty"`
	PIN          string        `json:"pin,omitempty"`
	Participants []Participant `json:"participants"`
	Speakers     []string      `json:"speakers,omitempty"`
}

// Participant describes one seat at a conference.
type Participant struct {
	ID     string    `json:"id"`            // short handle used by room commands: "1", "2", ...
	Name   string    `json:"name"`          // Matrix user ID or phone number
	Kind   string    `json:"kind"`          // the participant's leg: matrix, sip, modem
	Muted  bool      `json:"muted"`         // muted by a moderator
	Joined time.Time `json:"joined"`        // when the participant entered the mix
	Via    string    `json:"via,omitempty"` // dial_in, dial_out, matrix, header
	Codec  string    `json:"codec,omitempty"`
}

// Config configures a Registry.
type Config struct {
	Log     zerolog.Logger
	Manager *signalling.Manager // required for dial-out
	Store   Store               // nil keeps conferences in memory only
	// Announce receives notices and roster updates for rooms; nil drops them.
	Announce Announcer
	// DialIn are the E.164 numbers phones dial to reach the PIN prompt.
	DialIn []string
	// Rate is the mixing rate (8000 or 16000, default 16000).
	Rate int
	// MaxParticipants per conference (default 50).
	MaxParticipants int
	// MaxSpeakers mixes only the loudest speakers (0: everyone).
	MaxSpeakers int
	// PINDigits is the length of generated PINs (default 6, 4..12).
	PINDigits int
	// PINAttempts a caller gets per call before the gateway hangs up (default 3).
	PINAttempts int
	// PINTimeout bounds the whole PIN entry (default 60 s).
	PINTimeout time.Duration
	// PINFailures is how many wrong PINs one caller may enter within
	// PINFailureWindow before further dial-ins from it are refused
	// (default 6 in 10 minutes).
	PINFailures      int
	PINFailureWindow time.Duration
	// DialOutTimeout bounds how long a dialled-out number may ring (default 60 s).
	DialOutTimeout time.Duration
	// Metrics registers the conference metrics (nil: not registered).
	Metrics prometheus.Registerer
	// MatrixDialer calls a Matrix user (To.MatrixUser) from the gateway's
	// bot: "!conf join" uses it to ring a member who cannot place a 1:1 call
	// in a room with more than two members (Element starts a group call
	// there). nil: "!conf join" is not available.
	MatrixDialer signalling.Dialer
}

func (c *Config) setDefaults() {
	if c.Rate == 0 {
		c.Rate = 16000
	}
	if c.MaxParticipants == 0 {
		c.MaxParticipants = 50
	}
	if c.PINDigits == 0 {
		c.PINDigits = 6
	}
	if c.PINAttempts == 0 {
		c.PINAttempts = 3
	}
	if c.PINTimeout == 0 {
		c.PINTimeout = 60 * time.Second
	}
	if c.PINFailures == 0 {
		c.PINFailures = 6
	}
	if c.PINFailureWindow == 0 {
		c.PINFailureWindow = 10 * time.Minute
	}
	if c.DialOutTimeout == 0 {
		c.DialOutTimeout = 60 * time.Second
	}
}

// Errors returned by the registry.
var (
	ErrNoConference = errors.New("conference: this room has no conference")
	ErrExists       = errors.New("conference: this room already has a conference")
	ErrFull         = errors.New("conference: the conference is full")
	ErrNoSuchSeat   = errors.New("conference: no such participant")
	ErrClosed       = errors.New("conference: shutting down")
)

// Registry holds every conference room and the live conferences.
type Registry struct {
	cfg   Config
	log   zerolog.Logger
	lobby *media.Mixer // isolated mixer where dial-in callers hear the PIN prompt
	fails *failures
	notes chan note
	m     *metrics

	mu     sync.Mutex
	rooms  map[string]*Stored // by room
	byPIN  map[string]string  // PIN -> room
	live   map[string]*conf   // by room; only while someone is on the call
	closed bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// note is one queued announcement.
type note struct {
	room   string
	text   string // a notice, or
	roster bool   // publish the room's roster as it is when the note is sent
}

// NewRegistry makes a registry and loads the stored conferences.
func NewRegistry(ctx context.Context, cfg Config) (*Registry, error) {
	cfg.setDefaults()
	var problems []error
	if cfg.Rate != 8000 && cfg.Rate != 16000 {
		problems = append(problems, fmt.Errorf("conference: mixing rate must be 8000 or 16000, got %d", cfg.Rate))
	}
	if cfg.PINDigits < 4 || cfg.PINDigits > 12 {
		problems = append(problems, fmt.Errorf("conference: PIN length must be 4 to 12 digits, got %d", cfg.PINDigits))
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	lobby, err := media.NewMixer(media.MixerConfig{Rate: cfg.Rate, Isolated: true})
	if err != nil {
		return nil, err
	}
	r := &Registry{
		cfg:   cfg,
		log:   cfg.Log.With().Str("component", "conference").Logger(),
		lobby: lobby,
		fails: newFailures(cfg.PINFailures, cfg.PINFailureWindow),
		m:     newMetrics(cfg.Metrics),
		notes: make(chan note, 256),
		rooms: make(map[string]*Stored),
		byPIN: make(map[string]string),
		live:  make(map[string]*conf),
		stop:  make(chan struct{}),
	}
	if cfg.Store != nil {
		list, err := cfg.Store.Conferences(ctx)
		if err != nil {
			lobby.Close()
			return nil, fmt.Errorf("conference: loading conference rooms: %w", err)
		}
		for i := range list {
			s := list[i]
			r.rooms[s.Room] = &s
			r.byPIN[s.PIN] = s.Room
		}
	}
	r.wg.Add(1)
	go r.notifier()
	return r, nil
}

// Close ends every conference call (the manager's drain normally did that
// already) and stops the registry.
func (r *Registry) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	var confs []*conf
	for _, c := range r.live {
		confs = append(confs, c)
	}
	r.mu.Unlock()
	for _, c := range confs {
		c.kickAll(signalling.CauseShutdown, "the gateway is shutting down")
	}
	close(r.stop)
	r.wg.Wait()
	r.lobby.Close()
}

// DialIn returns the configured dial-in numbers.
func (r *Registry) DialIn() []string { return r.cfg.DialIn }

// IsDialIn reports whether an E.164 number is one of the dial-in numbers.
func (r *Registry) IsDialIn(e164 string) bool {
	for _, n := range r.cfg.DialIn {
		if n == e164 {
			return true
		}
	}
	return false
}

// Create gives room a conference with a fresh PIN (or pin, when not empty).
func (r *Registry) Create(ctx context.Context, room, by, pin string) (Stored, error) {
	r.mu.Lock()
	if _, ok := r.rooms[room]; ok {
		s := *r.rooms[room]
		r.mu.Unlock()
		return s, ErrExists
	}
	if pin == "" {
		var err error
		if pin, err = r.newPINLocked(); err != nil {
			r.mu.Unlock()
			return Stored{}, err
		}
	} else if other, taken := r.byPIN[pin]; taken && other != room {
		r.mu.Unlock()
		return Stored{}, fmt.Errorf("conference: PIN %s is already used by another room", pin)
	}
	s := &Stored{Room: room, PIN: pin, CreatedBy: by, Created: time.Now().UTC()}
	r.rooms[room] = s
	r.byPIN[pin] = room
	r.mu.Unlock()
	if r.cfg.Store != nil {
		if err := r.cfg.Store.SaveConference(ctx, *s); err != nil {
			r.mu.Lock()
			delete(r.rooms, room)
			delete(r.byPIN, pin)
			r.mu.Unlock()
			return Stored{}, fmt.Errorf("conference: saving the conference: %w", err)
		}
	}
	r.log.Info().Str("room_id", room).Str("by", by).Msg("conference created")
	r.announceRoster(room)
	return *s, nil
}

// Ensure gives room a conference with pin unless it has one (static
// conferences from the configuration).
func (r *Registry) Ensure(ctx context.Context, room, pin string) error {
	if _, ok := r.Lookup(room); ok {
		return nil
	}
	_, err := r.Create(ctx, room, "config", pin)
	if errors.Is(err, ErrExists) {
		return nil
	}
	return err
}

// newPINLocked draws a random PIN not used by another room. r.mu is held.
func (r *Registry) newPINLocked() (string, error) {
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(r.cfg.PINDigits)), nil)
	for range 100 {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return "", fmt.Errorf("conference: drawing a PIN: %w", err)
		}
		pin := fmt.Sprintf("%0*d", r.cfg.PINDigits, n)
		if pin[0] == '0' { // a leading zero reads badly in a notice; draw again
			continue
		}
		if _, taken := r.byPIN[pin]; !taken {
			return pin, nil
		}
	}
	return "", errors.New("conference: no free PIN; use more PIN digits")
}

// Lookup returns room's conference.
func (r *Registry) Lookup(room string) (Stored, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.rooms[room]
	if !ok {
		return Stored{}, false
	}
	return *s, true
}

// roomForPIN returns the room whose PIN is pin.
func (r *Registry) roomForPIN(pin string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	room, ok := r.byPIN[pin]
	return room, ok
}

// Remove deletes room's conference and ends its call (the room was
// deleted, the gateway left it, or a moderator stopped the conference).
func (r *Registry) Remove(ctx context.Context, room, why string) error {
	r.mu.Lock()
	s, ok := r.rooms[room]
	if !ok {
		r.mu.Unlock()
		return ErrNoConference
	}
	delete(r.rooms, room)
	delete(r.byPIN, s.PIN)
	c := r.live[room]
	r.mu.Unlock()
	if c != nil {
		c.kickAll(signalling.CauseNormal, why)
	}
	if r.cfg.Store != nil {
		if err := r.cfg.Store.DeleteConference(ctx, room); err != nil {
			return fmt.Errorf("conference: deleting the conference: %w", err)
		}
	}
	r.log.Info().Str("room_id", room).Str("why", why).Msg("conference removed")
	return nil
}

// liveConf returns room's running conference, starting it (its mixer)
// when nobody is on the call yet.
func (r *Registry) liveConf(room string) (*conf, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if _, ok := r.rooms[room]; !ok {
		return nil, ErrNoConference
	}
	if c := r.live[room]; c != nil {
		return c, nil
	}
	mx, err := media.NewMixer(media.MixerConfig{Rate: r.cfg.Rate, MaxSpeakers: r.cfg.MaxSpeakers})
	if err != nil {
		return nil, err
	}
	c := &conf{reg: r, room: room, mixer: mx, seats: make(map[string]*Port), started: time.Now()}
	r.live[room] = c
	r.m.active.Inc()
	r.log.Info().Str("room_id", room).Msg("conference call started")
	return c, nil
}

// ended forgets a conference whose last participant left.
func (r *Registry) ended(c *conf) {
	r.mu.Lock()
	if r.live[c.room] == c {
		delete(r.live, c.room)
		r.m.active.Dec()
	}
	r.mu.Unlock()
	if late := c.mixer.Stats().Late; late > 0 {
		r.m.lateTicks.Add(float64(late))
		r.log.Warn().Str("room_id", c.room).Uint64("late_ticks", late).Msg("the conference's mixer fell behind its clock")
	}
}

// Participants lists who is on room's conference call, in joining order.
func (r *Registry) Participants(room string) []Participant {
	r.mu.Lock()
	c := r.live[room]
	r.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.participants()
}

// Mute mutes or unmutes a participant; who is the participant's handle,
// Matrix user ID or number.
func (r *Registry) Mute(room, who string, muted bool) (Participant, error) {
	p, err := r.seat(room, who)
	if err != nil {
		return Participant{}, err
	}
	p.mixPort.SetMuted(muted)
	r.announceRoster(room)
	return p.info(), nil
}

// Kick removes a participant from the call.
func (r *Registry) Kick(room, who, by string) (Participant, error) {
	p, err := r.seat(room, who)
	if err != nil {
		return Participant{}, err
	}
	p.kick(signalling.CauseNormal, "removed from the conference by "+by)
	return p.info(), nil
}

func (r *Registry) seat(room, who string) (*Port, error) {
	r.mu.Lock()
	c := r.live[room]
	r.mu.Unlock()
	if c == nil {
		return nil, ErrNoSuchSeat
	}
	return c.find(who)
}

// announce queues a notice for room; a full queue drops it (and logs).
func (r *Registry) announce(room, text string) {
	r.queue(note{room: room, text: text})
}

func (r *Registry) announceRoster(room string) {
	r.queue(note{room: room, roster: true})
}

func (r *Registry) queue(n note) {
	if r.cfg.Announce == nil {
		return
	}
	select {
	case r.notes <- n:
	default:
		r.log.Warn().Str("room_id", n.room).Msg("conference announcement queue full: dropped")
	}
}

// notifier sends the queued announcements in order, coalescing roster
// updates of a room that are waiting together.
func (r *Registry) notifier() {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		case n := <-r.notes:
			pending := []note{n}
			for more := true; more && len(pending) < 64; {
				select {
				case m := <-r.notes:
					pending = append(pending, m)
				default:
					more = false
				}
			}
			sent := map[string]bool{}
			for i, p := range pending {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if p.roster {
					// Only the last roster update of a room in this batch matters.
					last := true
					for _, q := range pending[i+1:] {
						if q.roster && q.room == p.room {
							last = false
						}
					}
					if last && !sent[p.room] {
						sent[p.room] = true
						r.cfg.Announce.Roster(ctx, p.room, r.roster(p.room))
					}
				} else {
					r.cfg.Announce.Notice(ctx, p.room, p.text)
				}
				cancel()
			}
		}
	}
}

// roster is room's conference as the room sees it.
func (r *Registry) roster(room string) Roster {
	s, ok := r.Lookup(room)
	out := Roster{Participants: []Participant{}}
	if !ok {
		return out
	}
	out.PIN = s.PIN
	out.DialIn = r.cfg.DialIn
	r.mu.Lock()
	c := r.live[room]
	r.mu.Unlock()
	if c != nil {
		out.Participants = c.participants()
		out.Active = len(out.Participants) > 0
		out.Speakers = c.mixer.Speakers(nil)
	}
	return out
}

// conf is a conference while someone is on its call: one mixer and the
// ports in it.
type conf struct {
	reg     *Registry
	room    string
	mixer   *media.Mixer
	started time.Time

	mu     sync.Mutex
	seats  map[string]*Port // by handle
	next   int
	closed bool
}

// join seats p at the mixer. It fails when the conference is full or over.
func (c *conf) join(p *Port) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrNoConference
	}
	if len(c.seats) >= c.reg.cfg.MaxParticipants {
		c.mu.Unlock()
		return ErrFull
	}
	c.next++
	p.handle = fmt.Sprint(c.next)
	c.seats[p.handle] = p
	n := len(c.seats)
	c.mu.Unlock()
	if err := c.mixer.Add(p.mixPort); err != nil {
		c.mu.Lock()
		delete(c.seats, p.handle)
		c.mu.Unlock()
		return err
	}
	c.reg.m.participants.Inc()
	c.reg.m.joins.WithLabelValues(p.via).Inc()
	if n > 1 {
		c.mixer.PlayAll(joinTone(c.mixer.Rate()))
	}
	c.reg.log.Info().Str("room_id", c.room).Str("participant", p.name).Str("seat", p.handle).Int("participants", n).Msg("joined the conference")
	c.reg.announce(c.room, fmt.Sprintf("%s joined the conference call (%d on the call).", p.name, n))
	c.reg.announceRoster(c.room)
	return nil
}

// leave takes p out of the mix; the last one out ends the conference call.
func (c *conf) leave(p *Port, why string) {
	c.mu.Lock()
	if c.seats[p.handle] != p {
		c.mu.Unlock()
		return
	}
	delete(c.seats, p.handle)
	n := len(c.seats)
	last := n == 0 && !c.closed
	if last {
		c.closed = true
	}
	c.mu.Unlock()
	c.mixer.Remove(p.mixPort)
	c.reg.m.participants.Dec()
	c.reg.log.Info().Str("room_id", c.room).Str("participant", p.name).Str("why", why).Int("participants", n).Msg("left the conference")
	text := fmt.Sprintf("%s left the conference call (%d on the call).", p.name, n)
	if why != "" {
		text = fmt.Sprintf("%s left the conference call: %s (%d on the call).", p.name, why, n)
	}
	c.reg.announce(c.room, text)
	if last {
		c.mixer.Close()
		c.reg.ended(c)
		c.reg.announce(c.room, "The conference call ended.")
	} else {
		c.mixer.PlayAll(leaveTone(c.mixer.Rate()))
	}
	c.reg.announceRoster(c.room)
}

func (c *conf) participants() []Participant {
	c.mu.Lock()
	out := make([]Participant, 0, len(c.seats))
	for _, p := range c.seats {
		out = append(out, p.info())
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Joined.Equal(out[j].Joined) {
			return out[i].Joined.Before(out[j].Joined)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// find returns the seat named by handle, Matrix user ID or number.
func (c *conf) find(who string) (*Port, error) {
	who = strings.TrimSpace(who)
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.seats[strings.TrimPrefix(who, "#")]; ok {
		return p, nil
	}
	var found *Port
	for _, p := range c.seats {
		if p.name == who || (p.party.Number != "" && p.party.Number == who) || (p.party.MatrixUser != "" && p.party.MatrixUser == who) {
			if found != nil {
				return nil, fmt.Errorf("conference: %q names several participants; use the number from the participant list", who)
			}
			found = p
		}
	}
	if found == nil {
		return nil, ErrNoSuchSeat
	}
	return found, nil
}

// kickAll ends every participant's call.
func (c *conf) kickAll(cause signalling.Cause, why string) {
	c.mu.Lock()
	var list []*Port
	for _, p := range c.seats {
		list = append(list, p)
	}
	c.mu.Unlock()
	for _, p := range list {
		p.kick(cause, why)
	}
}
