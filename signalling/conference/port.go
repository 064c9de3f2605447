package conference

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
)

// Port is a participant's seat at a conference: the call core's leg on the
// conference side of a participant's call. Its audio endpoint is a mixer
// port: what the participant says goes into the mix, and the participant
// hears everyone else. A dial-in caller's port first sits in the registry's
// lobby (an isolated mixer) while the caller enters the PIN.
type Port struct {
	reg     *Registry
	mixPort *media.MixPort
	party   signalling.Party // the participant
	name    string
	kind    string // the participant's leg kind: matrix, sip, modem
	via     string // matrix, dial_in, dial_out, header
	room    string // the conference to join on Answer (dial-out) or at once

	mu      sync.Mutex
	poster  signalling.Poster
	conf    *conf
	ivr     *ivr
	handle  string
	joined  time.Time
	closed  bool
	kicked  string // why the gateway removed the participant
	selfMut bool
	dtmf    []rune // in-call DTMF commands (*6 mute toggle)
}

var (
	_ signalling.Leg        = (*Port)(nil)
	_ signalling.DTMFSender = (*Port)(nil)
	_ signalling.Describer  = (*Port)(nil)
)

func (r *Registry) newPort(party signalling.Party, kind, via, room string) *Port {
	name := party.MatrixUser
	if name == "" {
		name = party.Number
	}
	if name == "" {
		name = party.DisplayName
	}
	if name == "" {
		name = "an anonymous caller"
	}
	return &Port{
		reg: r, party: party, name: name, kind: kind, via: via, room: room,
		mixPort: media.NewMixPort(string(signalling.NewCallID()), r.cfg.Rate),
	}
}

// Kind implements signalling.Leg.
func (p *Port) Kind() string { return "conference" }

// Audio implements signalling.Leg.
func (p *Port) Audio() media.Endpoint { return p.mixPort }

// Answer implements signalling.Leg. A port is the inbound leg only of a
// dial-out call: the phone answered, so it takes its seat.
func (p *Port) Answer(ctx context.Context) error {
	return p.seat()
}

// seat joins the conference named by p.room.
func (p *Port) seat() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("conference: the participant has left")
	}
	if p.conf != nil {
		return nil
	}
	return p.seatLocked(p.room)
}

// seatLocked joins room's conference, retrying when the conference ended
// just as we came in. p.mu is held.
func (p *Port) seatLocked(room string) error {
	var err error
	for range 3 {
		var c *conf
		c, err = p.reg.liveConf(room)
		if err != nil {
			return err
		}
		if err = c.join(p); err == nil {
			p.conf, p.room, p.joined = c, room, time.Now()
			return nil
		}
		c.abandonIfEmpty()
		if !errors.Is(err, ErrNoConference) {
			return err
		}
	}
	return err
}

// Hangup implements signalling.Leg: the participant's call is over, so the
// seat is freed (or the PIN prompt stopped).
func (p *Port) Hangup(ctx context.Context, cause signalling.Cause) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	c, iv, why := p.conf, p.ivr, p.kicked
	p.mu.Unlock()
	if iv != nil {
		iv.close()
	}
	if c != nil {
		if why == "" && cause != signalling.CauseNormal && cause != signalling.CauseCancelled {
			why = cause.Text()
		}
		c.leave(p, why)
	} else {
		p.reg.lobby.Remove(p.mixPort)
	}
	_ = p.mixPort.SetSink(0, nil)
}

// kick ends the participant's call from the conference side.
func (p *Port) kick(cause signalling.Cause, why string) {
	p.mu.Lock()
	poster := p.poster
	if p.kicked == "" {
		p.kicked = why
	}
	p.mu.Unlock()
	if poster != nil {
		poster.Post(signalling.Event{Leg: p, Type: signalling.EventHangup, Cause: cause, Detail: why})
	}
}

// SendDTMF implements signalling.DTMFSender: the participant pressed a key.
// During PIN entry digits go to the prompt; in the conference "*6" toggles
// the participant's own mute. Anything else is ignored, so a flood of digits
// costs nothing but this check.
func (p *Port) SendDTMF(ctx context.Context, digit rune, d time.Duration) error {
	p.mu.Lock()
	iv := p.ivr
	if iv != nil {
		p.mu.Unlock()
		iv.digit(digit)
		return nil
	}
	if p.conf == nil {
		p.mu.Unlock()
		return nil
	}
	p.dtmf = append(p.dtmf, digit)
	if len(p.dtmf) > 2 {
		p.dtmf = p.dtmf[len(p.dtmf)-2:]
	}
	toggle := len(p.dtmf) == 2 && p.dtmf[0] == '*' && p.dtmf[1] == '6'
	if toggle {
		p.dtmf = p.dtmf[:0]
		p.selfMut = !p.selfMut
	}
	muted, c := p.selfMut, p.conf
	p.mu.Unlock()
	if toggle {
		p.mixPort.SetMuted(muted)
		if muted {
			p.mixPort.Play(muteTone(p.reg.cfg.Rate))
		} else {
			p.mixPort.Play(unmuteTone(p.reg.cfg.Rate))
		}
		p.reg.announceRoster(c.room)
	}
	return nil
}

// Describe implements signalling.Describer.
func (p *Port) Describe(r *signalling.CallRecord) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.MatrixRoom == "" {
		r.MatrixRoom = p.room
	}
	if p.conf == nil && p.kicked == "" && p.ivr == nil && p.closed && r.Detail == "" {
		r.Detail = "never joined the conference"
	}
}

// info describes the seat for rosters and commands.
func (p *Port) info() Participant {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Participant{
		ID: p.handle, Name: p.name, Kind: p.kind, Via: p.via, Joined: p.joined,
		Muted: p.mixPort.Muted(),
	}
}

// abandonIfEmpty closes a conference nobody managed to join.
func (c *conf) abandonIfEmpty() {
	c.mu.Lock()
	empty := len(c.seats) == 0 && !c.closed
	if empty {
		c.closed = true
	}
	c.mu.Unlock()
	if empty {
		c.mixer.Close()
		c.reg.ended(c)
	}
}

// joinDialer seats participants of one room directly (Matrix callers of the
// bot, phones whose trusted trunk named the room).
type joinDialer struct {
	reg       *Registry
	room      string
	kind, via string
}

// JoinDialer returns the Dialer that seats a participant in room's
// conference at once. kind names the participant's leg ("matrix", "sip").
func (r *Registry) JoinDialer(room, kind, via string) (signalling.Dialer, error) {
	if _, ok := r.Lookup(room); !ok {
		return nil, ErrNoConference
	}
	return &joinDialer{reg: r, room: room, kind: kind, via: via}, nil
}

// Dial implements signalling.Dialer: the port answers at once.
func (d *joinDialer) Dial(ctx context.Context, req signalling.DialRequest, post signalling.Poster) (signalling.Leg, error) {
	p := d.reg.newPort(req.From, d.kind, d.via, d.room)
	p.poster = post
	if err := p.seat(); err != nil {
		cause := signalling.CauseServerError
		switch {
		case errors.Is(err, ErrFull):
			cause = signalling.CauseLimit
		case errors.Is(err, ErrNoConference):
			cause = signalling.CauseNotFound
		case errors.Is(err, ErrClosed):
			cause = signalling.CauseShutdown
		}
		return nil, signalling.NewCauseError(cause, "joining the conference", err)
	}
	post.Post(signalling.Event{Leg: p, Type: signalling.EventAnswered})
	return p, nil
}

// DialOut calls number from room's conference on behalf of by (a room
// member with the power level for it). The toll-fraud policy applies to by
// as for any call; the phone is seated when it answers.
func (r *Registry) DialOut(ctx context.Context, room string, by signalling.Party, number string) (*signalling.Call, error) {
	if _, ok := r.Lookup(room); !ok {
		return nil, ErrNoConference
	}
	if r.cfg.Manager == nil {
		return nil, errors.New("conference: dial-out is not configured")
	}
	to := signalling.Party{Number: number}
	return r.cfg.Manager.Originate(ctx, signalling.OriginateRequest{
		From:      by,
		To:        to,
		Deadline:  time.Now().Add(r.cfg.DialOutTimeout),
		Direction: signalling.DirectionConference,
		NewInbound: func(c *signalling.Call) (signalling.Leg, error) {
			p := r.newPort(to, "sip", "dial_out", room)
			p.poster = c
			return p, nil
		},
	})
}

// CallMember rings a room member's Matrix clients from the bot (in their
// direct chat with it) and seats them when they answer: the way into the
// conference for clients that place group calls, not 1:1 calls, in rooms
// with more than two members. No toll-fraud rule applies: nothing is dialled.
func (r *Registry) CallMember(ctx context.Context, room, user string) (*signalling.Call, error) {
	if _, ok := r.Lookup(room); !ok {
		return nil, ErrNoConference
	}
	if r.cfg.MatrixDialer == nil {
		return nil, errors.New("conference: calling members is not configured")
	}
	member := signalling.Party{MatrixUser: user}
	return r.cfg.Manager.Originate(ctx, signalling.OriginateRequest{
		From:      signalling.Party{DisplayName: "conference"},
		To:        member,
		Deadline:  time.Now().Add(r.cfg.DialOutTimeout),
		Direction: signalling.DirectionConference,
		Inbound:   true,
		Dialer:    r.cfg.MatrixDialer,
		NewInbound: func(c *signalling.Call) (signalling.Leg, error) {
			p := r.newPort(member, "matrix", "call_me", room)
			p.poster = c
			return p, nil
		},
	})
}

// describeWho formats a participant for a notice.
func describeWho(p Participant) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s. %s", p.ID, p.Name)
	if p.Muted {
		b.WriteString(" (muted)")
	}
	return b.String()
}
