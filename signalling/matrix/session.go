package matrix

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
)

// inbound is one item of a session's ordered queue: a parsed call event, or a
// membership change that ends the call.
type inbound struct {
	evt     *event.Event
	content Content
	leave   string
}

// sessionQueue bounds how many events of one call may wait; a caller that
// floods one call only hurts that call.
const sessionQueue = 64

// session is one Matrix call in which the gateway's ghost is the callee. It
// is the call core's inbound Leg. Matrix events are processed in order by
// run; Leg methods are called by the call's loop; mu guards what both touch.
type session struct {
	c      *Connector
	key    sessionKey
	caller id.UserID
	log    zerolog.Logger
	queue  chan inbound
	done   chan struct{}

	mu          sync.Mutex
	ghost       id.UserID
	intent      *appservice.IntentAPI
	call        *signalling.Call
	peer        *media.Peer
	audio       AudioEndpoint
	callerParty PartyID
	answered    bool
	ended       bool // m.call.hangup sent or received; nothing more is sent
	closed      bool
	reason      string // Matrix reason sent or received at the end
	doneOnce    sync.Once
}

var (
	_ signalling.Leg       = (*session)(nil)
	_ signalling.Describer = (*session)(nil)
)

func (s *session) peerUser() id.UserID { return s.caller }

// Describe implements signalling.Describer.
func (s *session) Describe(r *signalling.CallRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.MatrixRoom, r.MatrixCallID, r.MatrixReason = string(s.key.room), string(s.key.call), s.reason
	describeAudio(r, s.audio)
}

func newSession(c *Connector, key sessionKey, caller id.UserID) *session {
	return &session{
		c:      c,
		key:    key,
		caller: caller,
		log: c.log.With().Stringer("room_id", key.room).Str("matrix_call_id", string(key.call)).
			Stringer("caller", caller).Logger(),
		queue: make(chan inbound, sessionQueue),
		done:  make(chan struct{}),
	}
}

// push queues an item for run without blocking the dispatcher.
func (s *session) push(in inbound) {
	select {
	case <-s.done:
	case s.queue <- in:
	default:
		s.log.Warn().Msg("call event queue full: event dropped")
	}
}

func (s *session) finish() {
	s.doneOnce.Do(func() {
		close(s.done)
		s.c.forgetKey(s.key, s)
	})
}

// run processes the call's events in order until the call is over.
func (s *session) run() {
	defer s.finish()
	for {
		select {
		case in := <-s.queue:
			if in.leave != "" {
				// Someone left the room: nothing more is sent into it (the
				// ghost or bot may not be in it any more, and sending would
				// make the intent try to rejoin).
				s.mu.Lock()
				s.ended = true
				s.mu.Unlock()
				s.remoteHangup(signalling.CauseFromMatrix("", s.isAnswered()), in.leave)
				continue
			}
			if !s.handle(in) {
				return
			}
		case <-s.callDone():
			return
		case <-s.c.stop:
			return
		}
	}
}

func (s *session) callDone() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.call == nil {
		return nil
	}
	return s.call.Done()
}

func (s *session) isAnswered() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.answered
}

// handle processes one event; false ends the session.
func (s *session) handle(in inbound) bool {
	switch v := in.content.(type) {
	case *Invite:
		return s.onInvite(in.evt, v)
	case *Candidates:
		s.onCandidates(v)
	case *SelectAnswer:
		if v.SelectedPartyID != s.c.partyID {
			s.remoteHangup(signalling.CauseNormal, "answered elsewhere")
		}
	case *Hangup:
		s.mu.Lock()
		s.ended = true
		s.reason = v.ReasonOrDefault()
		answered := s.answered
		s.mu.Unlock()
		s.remoteHangup(signalling.CauseFromMatrix(v.Reason, answered), "m.call.hangup "+v.ReasonOrDefault())
	case *Negotiate:
		s.onNegotiate(v)
	case *Reject, *Answer:
		// Only callees send these; the gateway's ghost is the callee here.
	}
	return true
}

// remoteHangup tells the call the Matrix side ended.
func (s *session) remoteHangup(cause signalling.Cause, detail string) {
	s.mu.Lock()
	call := s.call
	s.mu.Unlock()
	if call != nil {
		call.Post(signalling.Event{Leg: s, Type: signalling.EventHangup, Cause: cause, Detail: detail})
	}
}

// onInvite validates an invite and originates the call. false: no call.
func (s *session) onInvite(evt *event.Event, inv *Invite) bool {
	if s.call != nil {
		return true // a repeated invite for a call we have
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.callerParty = inv.PartyID
	if s.c.isConferenceCall(ctx, s.key.room, inv) {
		return s.joinConference(ctx, evt, inv)
	}
	// Which ghost is called?
	var ghost id.UserID
	if inv.Invitee != "" {
		g := id.UserID(inv.Invitee)
		if _, ok := s.c.cfg.NumberFromUserID(g); !ok {
			s.log.Debug().Str("invitee", inv.Invitee).Msg("invite for someone else ignored")
			return false
		}
		ghost = g
	} else {
		ghosts := s.c.roomGhosts(ctx, s.key.room)
		switch len(ghosts) {
		case 0:
			s.log.Debug().Msg("invite in a room without a phone number ignored")
			return false
		case 1:
			ghost = ghosts[0]
		default:
			s.ghost, s.intent = ghosts[0], s.c.as.Intent(ghosts[0])
			s.refuse(ctx, signalling.CauseInvalidNumber, "Several phone numbers are in this room; call from a direct chat with one of them.")
			return false
		}
	}
	number, _ := s.c.cfg.NumberFromUserID(ghost)
	s.ghost, s.intent = ghost, s.c.as.Intent(ghost)
	s.log = s.log.With().Stringer("ghost", ghost).Logger()
	expiry, ok := s.checkInvite(ctx, evt, inv)
	if !ok {
		return false
	}
	call, err := s.c.cfg.Manager.Originate(ctx, signalling.OriginateRequest{
		From:       signalling.Party{MatrixUser: string(s.caller), Number: s.c.cfg.CallerID(s.caller)},
		To:         signalling.Party{Number: number, MatrixUser: string(ghost)},
		Deadline:   expiry,
		Log:        &s.log,
		NewInbound: s.newInbound(inv),
	})
	if err != nil {
		cause := signalling.CauseOf(err)
		s.log.Info().Err(err).Stringer("cause", cause).Msg("call refused")
		text := ""
		if cause == signalling.CauseForbidden || cause == signalling.CauseLimit || cause == signalling.CauseNotFound || cause == signalling.CauseShutdown {
			text = fmt.Sprintf("Call to %s refused: %s.", number, publicReason(err, cause))
		}
		s.refuse(ctx, cause, text)
		return false
	}
	s.mu.Lock()
	s.call = call
	s.mu.Unlock()
	return true
}

// checkInvite refuses an invite of an unsupported call version and ignores
// an expired one; ok is false for both. expiry is when the invite lapses.
func (s *session) checkInvite(ctx context.Context, evt *event.Event, inv *Invite) (expiry time.Time, ok bool) {
	if err := inv.CheckSupported(); err != nil {
		s.refuse(ctx, signalling.CauseProtocolError, "This client uses version 0 of Matrix calls, which the gateway does not support.")
		return time.Time{}, false
	}
	received := evt.Mautrix.ReceivedAt
	if received.IsZero() {
		received = time.Now()
	}
	expiry = InviteExpiry(inv.Lifetime, evt.Unsigned.Age, received)
	if !expiry.After(time.Now()) {
		s.log.Info().Msg("expired invite ignored")
		return time.Time{}, false
	}
	return expiry, true
}

// newInbound makes the session the call's inbound leg: the WebRTC peer
// answering the invite's offer.
func (s *session) newInbound(inv *Invite) func(*signalling.Call) (signalling.Leg, error) {
	return func(call *signalling.Call) (signalling.Leg, error) {
		if err := s.startPeer(call, inv.Offer.SDP); err != nil {
			return nil, err
		}
		return s, nil
	}
}

// publicReason is what the room is told about a refusal: the policy's own
// reason when it has one, else the cause's text.
func publicReason(err error, cause signalling.Cause) string {
	var pr interface{ PublicReason() string }
	if errors.As(err, &pr) && pr.PublicReason() != "" {
		return pr.PublicReason()
	}
	return cause.Text()
}

// refuse ends a call that never started: m.call.hangup with the cause's
// reason, and a notice in the room when text is set.
func (s *session) refuse(ctx context.Context, cause signalling.Cause, text string) {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	if s.intent == nil {
		return
	}
	if err := s.c.send(ctx, s.intent, s.key.room, s.endContent(cause)); err != nil {
		s.log.Warn().Err(err).Msg("sending m.call.reject failed")
	}
	if text != "" {
		if _, err := s.intent.SendNotice(ctx, s.key.room, text); err != nil {
			s.log.Warn().Err(err).Msg("sending notice failed")
		}
	}
}

// endContent is how the ghost ends the call: m.call.reject before it has
// answered (spec v1: a callee declines with reject), m.call.hangup after.
// Both carry the cause's Matrix reason.
func (s *session) endContent(cause signalling.Cause) Content {
	s.mu.Lock()
	answered := s.answered
	s.reason = cause.MatrixReason()
	s.mu.Unlock()
	if !answered {
		return &Reject{Common: s.common(), Reason: cause.MatrixReason()}
	}
	return &Hangup{Common: s.common(), Reason: cause.MatrixReason()}
}

func (s *session) common() Common {
	return Common{CallID: s.key.call, PartyID: s.c.partyID, Version: Version1}
}

// startPeer makes the WebRTC peer for the offer and its audio endpoint.
func (s *session) startPeer(call *signalling.Call, offer string) error {
	peer, err := s.c.cfg.WebRTC.Answer(offer, func(st webrtc.ICEConnectionState) {
		s.log.Debug().Stringer("ice", st).Msg("ICE state")
		if st == webrtc.ICEConnectionStateFailed {
			call.Post(signalling.Event{Leg: s, Type: signalling.EventHangup, Cause: signalling.CauseMediaFailed, Detail: "ICE failed"})
		}
	})
	if err != nil {
		return signalling.NewCauseError(signalling.CauseIncompatible, "cannot answer the offer", err)
	}
	audio, err := s.c.cfg.NewAudio(peer)
	if err != nil {
		_ = peer.Close()
		return signalling.NewCauseError(signalling.CauseMediaFailed, "audio endpoint", err)
	}
	watchDTMF(audio, call, s)
	s.mu.Lock()
	s.peer, s.audio = peer, audio
	s.mu.Unlock()
	return nil
}

func (s *session) onCandidates(v *Candidates) {
	s.mu.Lock()
	peer := s.peer
	s.mu.Unlock()
	if peer != nil {
		addCandidates(&s.log, peer, v.Candidates)
	}
}

func (s *session) onNegotiate(v *Negotiate) {
	s.mu.Lock()
	peer, answered, audio := s.peer, s.answered, s.audio
	s.mu.Unlock()
	if peer != nil && answered && v.Description.Type == "offer" {
		s.c.answerNegotiation(&s.log, s.intent, s.key.room, s.common(), peer, audio, v)
	}
}

// Kind implements signalling.Leg.
func (s *session) Kind() string { return "matrix" }

// Audio implements signalling.Leg.
func (s *session) Audio() media.Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.audio == nil {
		return nil
	}
	return s.audio
}

// Answer implements signalling.Leg: the phone answered, so the ghost sends
// m.call.answer with the gathered candidates, then the end-of-candidates
// marker.
func (s *session) Answer(ctx context.Context) error {
	s.mu.Lock()
	peer, ended := s.peer, s.ended
	s.mu.Unlock()
	if peer == nil || ended {
		return errors.New("matrix: call already over")
	}
	sdp, err := peer.LocalDescription(ctx)
	if err != nil {
		return err
	}
	ans := &Answer{Common: s.common(), Answer: SessionDescription{Type: "answer", SDP: sdp}}
	ans.SetMetadata(StreamMetadata{media.WebRTCStreamID: {Purpose: PurposeUserMedia}})
	if err := s.c.send(ctx, s.intent, s.key.room, ans); err != nil {
		return fmt.Errorf("matrix: sending m.call.answer: %w", err)
	}
	s.mu.Lock()
	s.answered = true
	s.mu.Unlock()
	if err := s.c.send(ctx, s.intent, s.key.room, &Candidates{Common: s.common(), Candidates: []Candidate{EndOfCandidates()}}); err != nil {
		s.log.Warn().Err(err).Msg("sending end of candidates failed")
	}
	return nil
}

// Hangup implements signalling.Leg.
func (s *session) Hangup(ctx context.Context, cause signalling.Cause) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	sendHangup := !s.ended
	s.ended = true
	peer, audio := s.peer, s.audio
	s.mu.Unlock()
	if sendHangup && s.intent != nil {
		if err := s.c.send(ctx, s.intent, s.key.room, s.endContent(cause)); err != nil {
			s.log.Warn().Err(err).Msg("ending the Matrix call failed")
		}
	}
	if audio != nil {
		_ = audio.Close()
	}
	if peer != nil {
		_ = peer.Close()
	}
	s.finish()
}
