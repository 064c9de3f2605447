package matrix

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
)

// RoomStore remembers the DM room of each (ghost, Matrix user) pair, so a
// phone calling the same user again rings in the same room, and which ghosts
// are in which rooms, so a call invite without invitee finds its callee; both
// across restarts.
type RoomStore interface {
	DMRoom(ctx context.Context, ghost, user string) (roomID string, ok bool, err error)
	SetDMRoom(ctx context.Context, ghost, user, roomID string) error
	RoomGhosts(ctx context.Context, roomID string) ([]string, error)
	SetRoomGhost(ctx context.Context, roomID, ghost string, joined bool) error
}

// memoryRooms is the RoomStore used when none is configured.
type memoryRooms struct {
	mu     sync.Mutex
	m      map[[2]string]string
	ghosts map[string]map[string]bool
}

func (r *memoryRooms) RoomGhosts(_ context.Context, room string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for g := range r.ghosts[room] {
		out = append(out, g)
	}
	return out, nil
}

func (r *memoryRooms) SetRoomGhost(_ context.Context, room, ghost string, joined bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ghosts == nil {
		r.ghosts = make(map[string]map[string]bool)
	}
	if joined {
		if r.ghosts[room] == nil {
			r.ghosts[room] = make(map[string]bool)
		}
		r.ghosts[room][ghost] = true
	} else {
		delete(r.ghosts[room], ghost)
	}
	return nil
}

func (r *memoryRooms) DMRoom(_ context.Context, ghost, user string) (string, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	room, ok := r.m[[2]string{ghost, user}]
	return room, ok, nil
}

func (r *memoryRooms) SetDMRoom(_ context.Context, ghost, user, room string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[[2]string]string)
	}
	r.m[[2]string{ghost, user}] = room
	return nil
}

// DefaultRingLifetime is the m.call.invite lifetime of calls to Matrix users.
const DefaultRingLifetime = 60 * time.Second

// joinTimeout bounds how long a call waits for the user to join a new DM.
const joinTimeout = 60 * time.Second

// dialer places calls from phone numbers to Matrix users.
type dialer struct {
	c        *Connector
	lifetime time.Duration
}

// Dialer returns a signalling.Dialer that calls Matrix users: the caller's
// ghost (req.From.Number; the bot for anonymous callers) invites the user
// (req.To.MatrixUser) to their DM room and sends m.call.invite with
// invitee set and the given lifetime (DefaultRingLifetime if zero).
func (c *Connector) Dialer(lifetime time.Duration) signalling.Dialer {
	if lifetime <= 0 {
		lifetime = DefaultRingLifetime
	}
	return &dialer{c: c, lifetime: lifetime}
}

// Dial implements signalling.Dialer. It returns at once; the call is set up
// in the leg's own goroutine, which posts ringing, answer or hangup.
func (d *dialer) Dial(_ context.Context, req signalling.DialRequest, p signalling.Poster) (signalling.Leg, error) {
	user := id.UserID(req.To.MatrixUser)
	if _, _, err := user.Parse(); err != nil || user == "" {
		return nil, signalling.NewCauseError(signalling.CauseNotFound, "not a Matrix user ID: "+req.To.MatrixUser, err)
	}
	ghost := d.c.as.BotMXID()
	if req.From.Number != "" {
		ghost = d.c.cfg.GhostUserID(req.From.Number)
	}
	lifetime := d.lifetime
	if !req.Deadline.IsZero() {
		lifetime = min(lifetime, time.Until(req.Deadline))
	}
	oc := &outCall{
		c:        d.c,
		callee:   user,
		ghost:    ghost,
		intent:   d.c.as.Intent(ghost),
		poster:   p,
		lifetime: lifetime,
		from:     req.From,
		queue:    make(chan inbound, sessionQueue),
		done:     make(chan struct{}),
		stop:     make(chan struct{}),
		pending:  make(map[PartyID][]Candidate),
	}
	oc.callID = CallID(req.CallID)
	oc.log = d.c.log.With().Str("call", string(req.CallID)).Stringer("callee", user).Stringer("ghost", ghost).Logger()
	d.c.wg.Add(1)
	go func() { defer d.c.wg.Done(); oc.run() }()
	return oc, nil
}

// outCall is a call in which the gateway's ghost is the caller and a Matrix
// user the callee. It is the call core's outbound Leg toward Matrix.
type outCall struct {
	c        *Connector
	callee   id.UserID
	ghost    id.UserID
	intent   *appservice.IntentAPI
	poster   signalling.Poster
	lifetime time.Duration
	from     signalling.Party
	log      zerolog.Logger
	callID   CallID
	queue    chan inbound
	done     chan struct{}
	stop     chan struct{} // closed by Hangup
	doneOnce sync.Once
	stopOnce sync.Once

	mu       sync.Mutex
	key      sessionKey
	peer     *media.Peer
	audio    AudioEndpoint
	answered bool
	selected PartyID
	ended    bool // a hangup was sent or received: send nothing more
	closed   bool
	invited  bool // m.call.invite was sent
	pending  map[PartyID][]Candidate
	reason   string
}

var (
	_ signalling.Leg       = (*outCall)(nil)
	_ signalling.Describer = (*outCall)(nil)
)

func (oc *outCall) push(in inbound) {
	select {
	case <-oc.done:
	case oc.queue <- in:
	default:
		oc.log.Warn().Msg("call event queue full: event dropped")
	}
}

func (oc *outCall) peerUser() id.UserID { return oc.callee }

// fail ends the set-up with a cause, unless the call already hung up.
func (oc *outCall) fail(cause signalling.Cause, detail string, err error) {
	select {
	case <-oc.stop:
		return
	default:
	}
	ev := oc.log.Warn().Stringer("cause", cause)
	if err != nil {
		ev = ev.Err(err)
	}
	ev.Msg(detail)
	oc.mu.Lock()
	oc.ended = true
	oc.mu.Unlock()
	oc.poster.Post(signalling.Event{Leg: oc, Type: signalling.EventHangup, Cause: cause, Detail: detail})
}

// run sets the call up, then processes the callee's events in order.
func (oc *outCall) run() {
	defer oc.finish()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-oc.stop:
			cancel()
		case <-oc.done:
		}
	}()
	if !oc.setup(ctx) {
		return
	}
	for {
		select {
		case in := <-oc.queue:
			if in.leave != "" {
				oc.remoteEnd(signalling.CauseFromMatrix("", oc.isAnswered()), in.leave)
				continue
			}
			oc.handle(in)
		case <-oc.stop:
			return
		case <-oc.c.stop:
			return
		}
	}
}

func (oc *outCall) finish() {
	oc.doneOnce.Do(func() {
		close(oc.done)
		oc.mu.Lock()
		key := oc.key
		oc.mu.Unlock()
		if key.room != "" {
			oc.c.forgetKey(key, oc)
		}
	})
}

func (oc *outCall) isAnswered() bool {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	return oc.answered
}

// setup finds or makes the DM room, waits for the callee to be in it, makes
// the WebRTC offer and sends m.call.invite. false: the call failed (posted).
func (oc *outCall) setup(ctx context.Context) bool {
	t0 := time.Now()
	if err := oc.intent.EnsureRegistered(ctx); err != nil {
		oc.fail(signalling.CauseUnreachable, "registering the caller's ghost failed", err)
		return false
	}
	if oc.from.Number != "" {
		name := oc.c.cfg.GhostDisplayName(oc.from.Number)
		if oc.from.DisplayName != "" {
			name = oc.from.DisplayName + " (" + name + ")"
		}
		if oc.c.displayNameChanged(oc.ghost, name) {
			if err := oc.intent.SetDisplayName(ctx, name); err != nil {
				oc.log.Debug().Err(err).Msg("setting the ghost's display name failed")
			}
		}
	}
	room, joined, err := oc.c.dmRoom(ctx, oc.intent, oc.ghost, oc.callee)
	if err != nil {
		cause := signalling.CauseOf(err)
		if cause == signalling.CauseUnknown {
			cause = signalling.CauseUnreachable
		}
		var herr mautrix.HTTPError
		if errors.As(err, &herr) && herr.RespError != nil && herr.RespError.ErrCode == mautrix.MNotFound.ErrCode {
			cause = signalling.CauseNotFound
		}
		oc.fail(cause, "no room with the Matrix user", err)
		return false
	}
	oc.log = oc.log.With().Stringer("room_id", room).Logger()
	if !joined {
		jctx, jcancel := context.WithTimeout(ctx, min(joinTimeout, oc.lifetime))
		err = oc.c.waitJoined(jctx, oc.intent, room, oc.callee)
		jcancel()
		if err != nil {
			oc.fail(signalling.CauseNoAnswer, "the Matrix user did not join the room", err)
			return false
		}
	}
	tRoom := time.Now()
	peer, err := oc.c.cfg.WebRTC.Offer(oc.onICE)
	if err != nil {
		oc.fail(signalling.CauseMediaFailed, "making the WebRTC offer failed", err)
		return false
	}
	audio, err := oc.c.cfg.NewAudio(peer)
	if err != nil {
		_ = peer.Close()
		oc.fail(signalling.CauseMediaFailed, "audio endpoint", err)
		return false
	}
	watchDTMF(audio, oc.poster, oc)
	sdp, err := peer.LocalDescription(ctx)
	if err != nil {
		_ = audio.Close()
		_ = peer.Close()
		oc.fail(signalling.CauseMediaFailed, "ICE gathering failed", err)
		return false
	}
	tICE := time.Now()
	key := sessionKey{room: room, call: oc.callID}
	oc.mu.Lock()
	oc.key, oc.peer, oc.audio = key, peer, audio
	oc.mu.Unlock()
	// Route the callee's events to this call before they can arrive.
	if !oc.c.register(key, oc) {
		oc.fail(signalling.CauseProtocolError, "call_id already in use", nil)
		return false
	}
	lifetime := max(oc.lifetime.Milliseconds(), 1000)
	inv := &Invite{Common: oc.common(), Offer: SessionDescription{Type: "offer", SDP: sdp}, Lifetime: lifetime, Invitee: string(oc.callee)}
	inv.SetMetadata(StreamMetadata{media.WebRTCStreamID: {Purpose: PurposeUserMedia}})
	err = oc.c.send(ctx, oc.intent, room, inv)
	oc.mu.Lock()
	oc.invited = err == nil
	endedMeanwhile, reason := oc.closed, oc.reason
	oc.mu.Unlock()
	if endedMeanwhile {
		// The call ended while the invite was in flight (the caller
		// cancelled): the invite may have reached the room even if our
		// request was cut short, and the clients would ring on. End it there.
		if reason == "" {
			reason = signalling.CauseCancelled.MatrixReason()
		}
		hctx, hcancel := context.WithTimeout(context.Background(), 4*time.Second)
		if herr := oc.c.send(hctx, oc.intent, room, &Hangup{Common: oc.common(), Reason: reason}); herr != nil {
			oc.log.Warn().Err(herr).Msg("sending m.call.hangup after a cancelled invite failed")
		}
		hcancel()
		return false
	}
	if err != nil {
		oc.fail(signalling.CauseUnreachable, "sending m.call.invite failed", err)
		return false
	}
	oc.poster.Post(signalling.Event{Leg: oc, Type: signalling.EventRinging})
	oc.log.Info().Dur("room", tRoom.Sub(t0)).Dur("ice", tICE.Sub(tRoom)).Dur("invite", time.Since(tICE)).
		Msg("ringing the Matrix user")
	// All our candidates are in the offer; the marker lets clients stop waiting.
	if err := oc.c.send(ctx, oc.intent, room, &Candidates{Common: oc.common(), Candidates: []Candidate{EndOfCandidates()}}); err != nil {
		oc.log.Warn().Err(err).Msg("sending end of candidates failed")
	}
	return true
}

func (oc *outCall) onICE(st webrtc.ICEConnectionState) {
	oc.log.Debug().Stringer("ice", st).Msg("ICE state")
	if st == webrtc.ICEConnectionStateFailed {
		oc.remoteEnd(signalling.CauseMediaFailed, "ICE failed")
	}
}

func (oc *outCall) common() Common {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	return Common{CallID: oc.callID, PartyID: oc.c.partyID, Version: Version1}
}

// callIDNow is the Matrix call_id the call uses now (it changes on glare).
func (oc *outCall) callIDNow() CallID {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	return oc.callID
}

// ringingOut reports whether our invite is out and not answered.
func (oc *outCall) ringingOut() bool {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	return oc.invited && !oc.answered && !oc.ended
}

// adopt answers the callee's own invite instead of waiting for an answer
// to ours (glare, the callee's call_id is lower): our invite is withdrawn,
// the call continues under the callee's call_id, and the call core sees an
// answer.
func (oc *outCall) adopt(inv *Invite) {
	oc.mu.Lock()
	if oc.answered || oc.ended {
		oc.mu.Unlock()
		return
	}
	oldPeer, oldAudio, oldKey, oldCommon := oc.peer, oc.audio, oc.key, Common{CallID: oc.callID, PartyID: oc.c.partyID, Version: Version1}
	oc.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	peer, err := oc.c.cfg.WebRTC.Answer(inv.Offer.SDP, oc.onICE)
	if err != nil {
		oc.remoteEnd(signalling.CauseIncompatible, "glare: cannot answer the user's offer")
		return
	}
	audio, err := oc.c.cfg.NewAudio(peer)
	if err != nil {
		_ = peer.Close()
		oc.remoteEnd(signalling.CauseMediaFailed, "glare: audio endpoint")
		return
	}
	watchDTMF(audio, oc.poster, oc)
	sdp, err := peer.LocalDescription(ctx)
	if err != nil {
		_ = audio.Close()
		_ = peer.Close()
		oc.remoteEnd(signalling.CauseMediaFailed, "glare: ICE gathering failed")
		return
	}
	// Withdraw our invite; the user's client drops it too (it lost).
	_ = oc.c.send(ctx, oc.intent, oldKey.room, &Hangup{Common: oldCommon, Reason: signalling.MatrixReasonUserHangup})
	oc.mu.Lock()
	oc.callID = inv.CallID
	oc.key = sessionKey{room: oldKey.room, call: inv.CallID}
	oc.peer, oc.audio = peer, audio
	oc.answered, oc.selected = true, inv.PartyID
	oc.pending = nil
	oc.mu.Unlock()
	oc.c.forgetKey(oldKey, oc)
	_ = oldAudio.Close()
	_ = oldPeer.Close()
	ans := &Answer{Common: oc.common(), Answer: SessionDescription{Type: "answer", SDP: sdp}}
	ans.SetMetadata(StreamMetadata{media.WebRTCStreamID: {Purpose: PurposeUserMedia}})
	if err := oc.c.send(ctx, oc.intent, oldKey.room, ans); err != nil {
		oc.remoteEnd(signalling.CauseUnreachable, "glare: sending m.call.answer failed")
		return
	}
	_ = oc.c.send(ctx, oc.intent, oldKey.room, &Candidates{Common: oc.common(), Candidates: []Candidate{EndOfCandidates()}})
	oc.log.Info().Str("call_id", string(inv.CallID)).Msg("glare: answered the user's call")
	oc.poster.Post(signalling.Event{Leg: oc, Type: signalling.EventAnswered})
}

// remoteEnd tells the call the Matrix side ended.
func (oc *outCall) remoteEnd(cause signalling.Cause, detail string) {
	oc.mu.Lock()
	oc.ended = true
	oc.mu.Unlock()
	oc.poster.Post(signalling.Event{Leg: oc, Type: signalling.EventHangup, Cause: cause, Detail: detail})
}

// handle processes one event from the callee.
func (oc *outCall) handle(in inbound) {
	switch v := in.content.(type) {
	case *Invite:
		oc.adopt(v)
	case *Answer:
		oc.onAnswer(v)
	case *Candidates:
		oc.onCandidates(v)
	case *Reject:
		if !oc.isAnswered() {
			oc.setReason("reject")
			// Spec v1: a reject from any of the callee's devices ends the call.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = oc.c.send(ctx, oc.intent, oc.key.room, &SelectAnswer{Common: oc.common(), SelectedPartyID: v.PartyID})
			cancel()
			oc.remoteEnd(signalling.CauseRejected, "m.call.reject")
		}
	case *Hangup:
		oc.mu.Lock()
		answered, selected := oc.answered, oc.selected
		oc.mu.Unlock()
		if answered && v.PartyID != selected {
			return // a device that was not selected
		}
		oc.setReason(v.ReasonOrDefault())
		cause := signalling.CauseFromMatrix(v.Reason, answered)
		if !answered && cause == signalling.CauseCancelled {
			cause = signalling.CauseRejected // a callee hanging up before answer declines
		}
		oc.remoteEnd(cause, "m.call.hangup "+v.ReasonOrDefault())
	case *Negotiate:
		// The callee renegotiating (hold): answer with our current description.
		oc.onNegotiate(v)
	}
}

func (oc *outCall) setReason(r string) {
	oc.mu.Lock()
	oc.reason = r
	oc.mu.Unlock()
}

// onAnswer takes the first answer: the device that sent it is selected and
// the others are told with m.call.select_answer.
func (oc *outCall) onAnswer(v *Answer) {
	oc.mu.Lock()
	if oc.answered || oc.ended {
		oc.mu.Unlock()
		return
	}
	peer := oc.peer
	oc.mu.Unlock()
	if err := peer.SetAnswer(v.Answer.SDP); err != nil {
		oc.log.Warn().Err(err).Msg("unusable m.call.answer")
		oc.remoteEnd(signalling.CauseIncompatible, "unusable answer SDP")
		return
	}
	oc.mu.Lock()
	oc.answered, oc.selected = true, v.PartyID
	pending := oc.pending[v.PartyID]
	oc.pending = nil
	oc.mu.Unlock()
	addCandidates(&oc.log, peer, pending)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := oc.c.send(ctx, oc.intent, oc.key.room, &SelectAnswer{Common: oc.common(), SelectedPartyID: v.PartyID}); err != nil {
		oc.log.Warn().Err(err).Msg("sending m.call.select_answer failed")
	}
	oc.log.Info().Str("party_id", string(v.PartyID)).Msg("Matrix user answered")
	oc.poster.Post(signalling.Event{Leg: oc, Type: signalling.EventAnswered})
}

// onCandidates adds the selected device's candidates; before an answer they
// are kept per device.
func (oc *outCall) onCandidates(v *Candidates) {
	oc.mu.Lock()
	if !oc.answered {
		if oc.pending != nil && len(oc.pending[v.PartyID]) < MaxCandidates {
			oc.pending[v.PartyID] = append(oc.pending[v.PartyID], v.Candidates...)
		}
		oc.mu.Unlock()
		return
	}
	peer, selected := oc.peer, oc.selected
	oc.mu.Unlock()
	if v.PartyID == selected {
		addCandidates(&oc.log, peer, v.Candidates)
	}
}

func (oc *outCall) onNegotiate(v *Negotiate) {
	oc.mu.Lock()
	peer, answered, selected, room, audio := oc.peer, oc.answered, oc.selected, oc.key.room, oc.audio
	oc.mu.Unlock()
	if answered && v.PartyID == selected && v.Description.Type == "offer" {
		oc.c.answerNegotiation(&oc.log, oc.intent, room, oc.common(), peer, audio, v)
	}
}

// Kind implements signalling.Leg.
func (oc *outCall) Kind() string { return "matrix" }

// Answer implements signalling.Leg; an outbound leg is answered by its peer.
func (oc *outCall) Answer(context.Context) error { return nil }

// Audio implements signalling.Leg.
func (oc *outCall) Audio() media.Endpoint {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	if oc.audio == nil {
		return nil
	}
	return oc.audio
}

// Hangup implements signalling.Leg: the caller's ghost sends m.call.hangup
// (cancelling the invite before answer) and the peer is closed.
func (oc *outCall) Hangup(ctx context.Context, cause signalling.Cause) {
	oc.mu.Lock()
	if oc.closed {
		oc.mu.Unlock()
		return
	}
	oc.closed = true
	send := !oc.ended && oc.invited
	oc.ended = true
	peer, audio, room := oc.peer, oc.audio, oc.key.room
	if send || !oc.invited {
		// Not invited yet: setup sends the hangup with this reason if its
		// invite was in flight.
		oc.reason = cause.MatrixReason()
	}
	oc.mu.Unlock()
	oc.stopOnce.Do(func() { close(oc.stop) })
	if send {
		if err := oc.c.send(ctx, oc.intent, room, &Hangup{Common: oc.common(), Reason: cause.MatrixReason()}); err != nil {
			oc.log.Warn().Err(err).Msg("sending m.call.hangup failed")
		}
	}
	if audio != nil {
		_ = audio.Close()
	}
	if peer != nil {
		_ = peer.Close()
	}
	<-oc.done
}

// Describe implements signalling.Describer.
func (oc *outCall) Describe(r *signalling.CallRecord) {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	r.MatrixRoom, r.MatrixCallID, r.MatrixReason = string(oc.key.room), string(oc.callID), oc.reason
	describeAudio(r, oc.audio)
}

// describeAudio adds a Matrix endpoint's codec and packet counts to r.
func describeAudio(r *signalling.CallRecord, a AudioEndpoint) {
	if a == nil {
		return
	}
	r.MatrixCodec = a.String()
	if s, ok := a.(interface{ Stats() media.RTPStats }); ok {
		st := s.Stats()
		r.MatrixPacketsIn, r.MatrixPacketsLost = st.PacketsIn, st.Lost
	}
}

// dmRoom returns the DM room of ghost and user, creating it (and inviting
// the user again if they left) when needed; joined tells whether the user
// is in it already.
func (c *Connector) dmRoom(ctx context.Context, intent *appservice.IntentAPI, ghost, user id.UserID) (room id.RoomID, joined bool, err error) {
	if stored, ok, err := c.rooms.DMRoom(ctx, string(ghost), string(user)); err == nil && ok {
		members, err := intent.JoinedMembers(ctx, id.RoomID(stored))
		if err == nil {
			if _, joined = members.Joined[user]; !joined {
				if _, err := intent.InviteUser(ctx, id.RoomID(stored), &mautrix.ReqInviteUser{UserID: user}); err != nil {
					c.log.Debug().Err(err).Msg("re-inviting the user to the DM failed")
				}
			}
			return id.RoomID(stored), joined, nil
		}
		c.log.Info().Err(err).Str("room_id", stored).Msg("stored DM room unusable; creating a new one")
	}
	// A user that does not exist would get a room nobody joins: ask first.
	if _, err := intent.GetProfile(ctx, user); err != nil {
		var herr mautrix.HTTPError
		if errors.As(err, &herr) && herr.IsStatus(404) {
			return "", false, signalling.NewCauseError(signalling.CauseNotFound, "no such Matrix user "+string(user), err)
		}
		c.log.Debug().Err(err).Msg("profile lookup failed; trying the invite anyway")
	}
	resp, err := intent.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Invite: []id.UserID{user}, IsDirect: true, Preset: "trusted_private_chat",
	})
	if err != nil {
		return "", false, fmt.Errorf("matrix: creating the DM room: %w", err)
	}
	c.setGhost(resp.RoomID, ghost, true)
	if err := c.rooms.SetDMRoom(ctx, string(ghost), string(user), string(resp.RoomID)); err != nil {
		c.log.Warn().Err(err).Msg("saving the DM room failed")
	}
	return resp.RoomID, false, nil
}

// displayNameChanged records name as ghost's display name and reports
// whether it differs from the one set before (since start).
func (c *Connector) displayNameChanged(ghost id.UserID, name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.names == nil {
		c.names = make(map[id.UserID]string)
	}
	if c.names[ghost] == name {
		return false
	}
	c.names[ghost] = name
	return true
}

// waitJoined returns once user is joined to room (asking the homeserver,
// then waiting for the membership event), or ctx ends.
func (c *Connector) waitJoined(ctx context.Context, intent *appservice.IntentAPI, room id.RoomID, user id.UserID) error {
	ch := c.joinWaiter(room, user)
	defer c.dropJoinWaiter(room, user, ch)
	if members, err := intent.JoinedMembers(ctx, room); err == nil {
		if _, ok := members.Joined[user]; ok {
			return nil
		}
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
