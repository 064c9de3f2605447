package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
	"github.com/matrix-gateway/gateway/signalling/conference"
)

// AudioEndpoint is the media endpoint of a Matrix call: Opus over the
// WebRTC peer's tracks.
type AudioEndpoint interface {
	media.Endpoint
	Close() error
}

// Config wires the Matrix leg to the rest of the gateway.
type Config struct {
	Log     zerolog.Logger
	AS      *appservice.AppService // created, not yet started
	Manager *signalling.Manager
	WebRTC  *media.WebRTC
	// NewAudio wraps a WebRTC peer into an Opus media endpoint.
	NewAudio func(p *media.Peer) (AudioEndpoint, error)
	// GhostUserID returns the ghost user for an E.164 number.
	GhostUserID func(e164 string) id.UserID
	// NumberFromUserID returns the E.164 number of a ghost user ID.
	NumberFromUserID func(userID id.UserID) (string, bool)
	// GhostDisplayName returns a ghost's display name for an E.164 number.
	GhostDisplayName func(e164 string) string
	// MayUseGateway reports whether a Matrix user may invite ghosts and call
	// out at all (the policy's user rules). Numbers are checked per call.
	MayUseGateway func(userID id.UserID) bool
	// CallerID returns the E.164 number presented to the phone network for a
	// Matrix user ("" for none).
	CallerID func(userID id.UserID) string
	// BotDisplayName is the bot's display name.
	BotDisplayName string
	// Rooms remembers DM rooms for calls to Matrix users; nil keeps them in
	// memory only.
	Rooms RoomStore
}

// Connector is the Matrix side of the gateway: it consumes appservice
// transactions, joins ghosts to rooms, and turns m.call.* events into legs of
// the call core. Events of one call are handled in order by that call's own
// goroutine.
type Connector struct {
	cfg     Config
	log     zerolog.Logger
	as      *appservice.AppService
	partyID PartyID

	rooms RoomStore

	confs     *conference.Registry // nil: no conferences
	confLevel int
	confCC    string
	cmdLimit  commandLimiter

	mu       sync.Mutex
	sessions map[sessionKey]callHandler
	ghosts   map[id.RoomID]map[id.UserID]bool // ghosts joined per room
	joins    map[joinKey][]chan struct{}      // waiting for a user to join a room
	names    map[id.UserID]string             // display names set on ghosts since start
	botLeft  map[id.RoomID]bool               // rooms the bot was removed from: never send there
	seen     *eventIDSet

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

type sessionKey struct {
	room id.RoomID
	call CallID
}

type joinKey struct {
	room id.RoomID
	user id.UserID
}

// callHandler is one Matrix call the connector routes events to: a session
// (the ghost is called) or an outCall (the ghost calls).
type callHandler interface {
	push(inbound)
	// peerUser is the only Matrix user whose events belong to the call.
	peerUser() id.UserID
}

// New makes the connector. Start it with Start.
func New(cfg Config) (*Connector, error) {
	var problems []error
	if cfg.AS == nil {
		problems = append(problems, errors.New("matrix: no appservice"))
	}
	if cfg.Manager == nil || cfg.WebRTC == nil || cfg.NewAudio == nil {
		problems = append(problems, errors.New("matrix: manager, webrtc and audio factory are required"))
	}
	if cfg.GhostUserID == nil || cfg.NumberFromUserID == nil || cfg.MayUseGateway == nil {
		problems = append(problems, errors.New("matrix: ghost mapping and user policy are required"))
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	if cfg.Rooms == nil {
		cfg.Rooms = &memoryRooms{}
	}
	if cfg.CallerID == nil {
		cfg.CallerID = func(id.UserID) string { return "" }
	}
	if cfg.GhostDisplayName == nil {
		cfg.GhostDisplayName = func(n string) string { return n }
	}
	return &Connector{
		cfg:      cfg,
		log:      cfg.Log.With().Str("leg", "matrix").Logger(),
		as:       cfg.AS,
		partyID:  PartyID("gw" + string(signalling.NewCallID())[3:]),
		rooms:    cfg.Rooms,
		sessions: make(map[sessionKey]callHandler),
		joins:    make(map[joinKey][]chan struct{}),
		ghosts:   make(map[id.RoomID]map[id.UserID]bool),
		botLeft:  make(map[id.RoomID]bool),
		seen:     newEventIDSet(1024),
		stop:     make(chan struct{}),
	}, nil
}

// Start runs the appservice HTTP listener and the event dispatcher.
func (c *Connector) Start(ctx context.Context) error {
	if err := c.as.BotIntent().EnsureRegistered(ctx); err != nil {
		return fmt.Errorf("matrix: registering the bot user with the homeserver: %w", err)
	}
	if c.cfg.BotDisplayName != "" {
		if err := c.as.BotIntent().SetDisplayName(ctx, c.cfg.BotDisplayName); err != nil {
			c.log.Warn().Err(err).Msg("could not set the bot's display name")
		}
	}
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.as.Start() }()
	go func() { defer c.wg.Done(); c.dispatch() }()
	c.as.Ready = true
	return nil
}

// Close stops the listener and the dispatcher. Live calls are ended by the
// manager (drain) before Close is called.
func (c *Connector) Close() {
	c.once.Do(func() {
		close(c.stop)
		c.as.Stop()
		c.wg.Wait()
	})
}

// dispatch reads appservice events. It never blocks on a call: call events
// are queued to the call's session.
func (c *Connector) dispatch() {
	for {
		select {
		case <-c.stop:
			return
		case evt := <-c.as.Events:
			c.handleEvent(evt)
		}
	}
}

func (c *Connector) isOurs(u id.UserID) bool {
	if u == c.as.BotMXID() {
		return true
	}
	_, ok := c.cfg.NumberFromUserID(u)
	return ok
}

func (c *Connector) handleEvent(evt *event.Event) {
	if evt == nil {
		return
	}
	if evt.ID != "" && !c.seen.add(evt.ID) {
		c.log.Debug().Stringer("event_id", evt.ID).Msg("duplicate event ignored")
		return
	}
	switch {
	case evt.Type == event.StateMember:
		c.handleMember(evt)
	case evt.Type == event.EventMessage:
		c.handleMessage(evt)
	case evt.Type == event.StateTombstone:
		go c.roomGone(evt.RoomID, "the room was replaced")
	case IsCallEvent(evt.Type.Type):
		if c.isOurs(evt.Sender) {
			return // our own echo
		}
		c.handleCallEvent(evt)
	}
}

func (c *Connector) handleMember(evt *event.Event) {
	if evt.StateKey == nil {
		return
	}
	target := id.UserID(*evt.StateKey)
	var content struct {
		Membership event.Membership `json:"membership"`
	}
	if err := json.Unmarshal(evt.Content.VeryRaw, &content); err != nil {
		return
	}
	switch {
	case c.isOurs(target) && content.Membership == event.MembershipInvite:
		go c.acceptInvite(evt.RoomID, target, evt.Sender)
	case c.isOurs(target) && content.Membership == event.MembershipJoin:
		c.setGhost(evt.RoomID, target, true)
		if target == c.as.BotMXID() {
			c.mu.Lock()
			delete(c.botLeft, evt.RoomID)
			c.mu.Unlock()
		}
	case c.isOurs(target) && (content.Membership == event.MembershipLeave || content.Membership == event.MembershipBan):
		c.setGhost(evt.RoomID, target, false)
		c.endRoomCalls(evt.RoomID, "", "the phone user left the room")
		if target == c.as.BotMXID() {
			c.mu.Lock()
			if len(c.botLeft) < 100000 {
				c.botLeft[evt.RoomID] = true
			}
			c.mu.Unlock()
			go c.roomGone(evt.RoomID, "the gateway is no longer in the room")
		}
	case content.Membership == event.MembershipJoin:
		c.notifyJoin(evt.RoomID, target)
	case content.Membership == event.MembershipLeave || content.Membership == event.MembershipBan:
		// A party leaving the room is a hangup (spec).
		c.endRoomCalls(evt.RoomID, target, "the caller left the room")
	}
}

func (c *Connector) setGhost(room id.RoomID, ghost id.UserID, joined bool) {
	if ghost == c.as.BotMXID() {
		return
	}
	c.mu.Lock()
	m := c.ghosts[room]
	changed := m[ghost] != joined
	if joined {
		if m == nil {
			m = make(map[id.UserID]bool)
			c.ghosts[room] = m
		}
		m[ghost] = true
	} else {
		delete(m, ghost)
		if len(m) == 0 {
			delete(c.ghosts, room)
		}
	}
	c.mu.Unlock()
	if changed {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.rooms.SetRoomGhost(ctx, string(room), string(ghost), joined); err != nil {
			c.log.Warn().Err(err).Msg("recording the ghost's room membership failed")
		}
	}
}

// roomGhosts lists the gateway's ghosts joined to a room, from the joins
// seen since start, the appservice state store, and the room store.
func (c *Connector) roomGhosts(ctx context.Context, room id.RoomID) []id.UserID {
	c.mu.Lock()
	var out []id.UserID
	for g := range c.ghosts[room] {
		out = append(out, g)
	}
	c.mu.Unlock()
	if len(out) > 0 {
		return out
	}
	if members, err := c.as.StateStore.GetRoomJoinedOrInvitedMembers(ctx, room); err == nil {
		for _, m := range members {
			if _, ok := c.cfg.NumberFromUserID(m); ok {
				out = append(out, m)
			}
		}
	}
	if len(out) > 0 {
		return out
	}
	// After a restart: what was recorded before.
	stored, err := c.rooms.RoomGhosts(ctx, string(room))
	if err != nil {
		c.log.Warn().Err(err).Msg("reading the room's ghosts failed")
	}
	for _, g := range stored {
		out = append(out, id.UserID(g))
	}
	return out
}

// acceptInvite joins a ghost (or the bot) to a room it was invited to, if
// the inviter may use the gateway; otherwise it declines the invite.
func (c *Connector) acceptInvite(room id.RoomID, target, inviter id.UserID) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := c.log.With().Stringer("room_id", room).Stringer("user", target).Stringer("inviter", inviter).Logger()
	intent := c.as.Intent(target)
	if !c.cfg.MayUseGateway(inviter) {
		log.Info().Msg("declining invite from a user who may not use the gateway")
		if _, err := intent.LeaveRoom(ctx, room, &mautrix.ReqLeave{Reason: "You are not allowed to use this phone gateway."}); err != nil {
			log.Warn().Err(err).Msg("declining invite failed")
		}
		return
	}
	if err := intent.EnsureRegistered(ctx); err != nil {
		log.Error().Err(err).Msg("registering ghost failed")
		return
	}
	if number, ok := c.cfg.NumberFromUserID(target); ok {
		if err := intent.SetDisplayName(ctx, c.cfg.GhostDisplayName(number)); err != nil {
			log.Warn().Err(err).Msg("setting ghost display name failed")
		}
	}
	if _, err := intent.JoinRoomByID(ctx, room); err != nil {
		log.Error().Err(err).Msg("joining room failed")
		return
	}
	c.setGhost(room, target, true)
	log.Info().Msg("joined room")
}

// handleCallEvent routes one m.call.* event to its call's session.
func (c *Connector) handleCallEvent(evt *event.Event) {
	log := c.log.With().Stringer("room_id", evt.RoomID).Stringer("event_id", evt.ID).
		Str("type", evt.Type.Type).Stringer("sender", evt.Sender).Logger()
	content, err := Parse(evt.Type.Type, evt.Content.VeryRaw)
	if err != nil {
		log.Warn().Err(err).Msg("malformed call event ignored")
		if evt.Type.Type == EventInvite {
			c.refuseMalformedInvite(evt, err)
		}
		return
	}
	key := sessionKey{room: evt.RoomID, call: content.Call().CallID}
	c.mu.Lock()
	h := c.sessions[key]
	if h == nil && evt.Type.Type == EventInvite {
		if oc := c.glare(evt.RoomID, evt.Sender); oc != nil {
			// Both sides called each other (spec: glare): the lower call_id
			// wins. If it is the user's, our ringing call adopts it.
			if key.call < oc.callIDNow() {
				c.sessions[key] = oc
				c.mu.Unlock()
				log.Info().Str("call_id", string(key.call)).Msg("glare: the user's call wins; answering it")
				oc.push(inbound{evt: evt, content: content})
				return
			}
			c.mu.Unlock()
			log.Info().Str("call_id", string(key.call)).Msg("glare: our call wins; the user's client will answer it")
			return
		}
		s := newSession(c, key, evt.Sender)
		h = s
		c.sessions[key] = s
		c.wg.Add(1)
		go func() { defer c.wg.Done(); s.run() }()
	}
	c.mu.Unlock()
	if h == nil {
		log.Debug().Str("call_id", string(key.call)).Msg("event for an unknown call ignored")
		return
	}
	if h.peerUser() != evt.Sender {
		log.Warn().Msg("call event from a user other than the caller ignored")
		return
	}
	h.push(inbound{evt: evt, content: content})
}

// refuseMalformedInvite answers an invite we could not parse with a hangup,
// when its call_id can be recovered, so the caller does not ring forever.
func (c *Connector) refuseMalformedInvite(evt *event.Event, perr error) {
	var loose struct {
		CallID CallID `json:"call_id"`
	}
	if json.Unmarshal(evt.Content.VeryRaw, &loose) != nil || loose.CallID == "" || len(loose.CallID) > MaxIDLength {
		return
	}
	ghosts := c.roomGhosts(context.Background(), evt.RoomID)
	if len(ghosts) != 1 {
		return
	}
	reason := signalling.MatrixReasonUnknownError
	text := "The call could not be placed: the call invite was malformed."
	if errors.Is(perr, ErrLegacyVersion) {
		text = "The call could not be placed: this client uses version 0 of Matrix calls, which the phone gateway does not support."
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		intent := c.as.Intent(ghosts[0])
		_ = c.send(ctx, intent, evt.RoomID, &Reject{Common: Common{CallID: loose.CallID, PartyID: c.partyID, Version: Version1}, Reason: reason})
		_, _ = intent.SendNotice(ctx, evt.RoomID, text)
	}()
}

// endRoomCalls hangs up the calls in a room, all of them or those of one caller.
func (c *Connector) endRoomCalls(room id.RoomID, caller id.UserID, why string) {
	c.mu.Lock()
	var list []callHandler
	for k, h := range c.sessions {
		if k.room == room && (caller == "" || h.peerUser() == caller) {
			list = append(list, h)
		}
	}
	c.mu.Unlock()
	for _, h := range list {
		h.push(inbound{leave: why})
	}
}

// glare returns our unanswered call to user in room, if any. c.mu is held.
func (c *Connector) glare(room id.RoomID, user id.UserID) *outCall {
	for k, h := range c.sessions {
		if oc, ok := h.(*outCall); ok && k.room == room && oc.callee == user && oc.ringingOut() {
			return oc
		}
	}
	return nil
}

// register routes the events of a call the gateway places; false if the
// key is taken.
func (c *Connector) register(key sessionKey, h callHandler) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, taken := c.sessions[key]; taken {
		return false
	}
	c.sessions[key] = h
	return true
}

// forgetKey stops routing a call's events, if h still owns the key.
func (c *Connector) forgetKey(key sessionKey, h callHandler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions[key] == h {
		delete(c.sessions, key)
	}
}

// joinWaiter returns a channel closed when user joins room.
func (c *Connector) joinWaiter(room id.RoomID, user id.UserID) chan struct{} {
	ch := make(chan struct{})
	c.mu.Lock()
	defer c.mu.Unlock()
	k := joinKey{room, user}
	c.joins[k] = append(c.joins[k], ch)
	return ch
}

func (c *Connector) dropJoinWaiter(room id.RoomID, user id.UserID, ch chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := joinKey{room, user}
	list := c.joins[k]
	for i, x := range list {
		if x == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(c.joins, k)
	} else {
		c.joins[k] = list
	}
}

func (c *Connector) notifyJoin(room id.RoomID, user id.UserID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := joinKey{room, user}
	for _, ch := range c.joins[k] {
		close(ch)
	}
	delete(c.joins, k)
}

// send marshals a call event and sends it as intent.
func (c *Connector) send(ctx context.Context, intent *appservice.IntentAPI, room id.RoomID, content Content) error {
	typ, body, err := Marshal(content)
	if err != nil {
		return err
	}
	_, err = intent.SendMessageEvent(ctx, room, event.Type{Type: typ, Class: event.MessageEventType}, json.RawMessage(body))
	return err
}

// eventIDSet remembers the last n event IDs to drop duplicates that arrive in
// separate transactions.
type eventIDSet struct {
	mu   sync.Mutex
	ids  map[id.EventID]struct{}
	ring []id.EventID
	next int
}

func newEventIDSet(n int) *eventIDSet {
	return &eventIDSet{ids: make(map[id.EventID]struct{}, n), ring: make([]id.EventID, n)}
}

// add records e and reports whether it was new.
func (s *eventIDSet) add(e id.EventID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids[e]; ok {
		return false
	}
	if old := s.ring[s.next]; old != "" {
		delete(s.ids, old)
	}
	s.ring[s.next] = e
	s.next = (s.next + 1) % len(s.ring)
	s.ids[e] = struct{}{}
	return true
}
