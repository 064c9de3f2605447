package matrix

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gateway/gateway/signalling"
	"github.com/matrix-gateway/gateway/signalling/conference"
)

// ConferenceStateType is the room state event in which the gateway keeps a
// room's conference: dial-in numbers, PIN, whether a call is on and who is
// on it (conference.Roster).
const ConferenceStateType = "org.matrix.gateway.conference"

var conferenceState = event.Type{Type: ConferenceStateType, Class: event.StateEventType}

// SetConferences lets rooms host conference calls: the bot answers calls
// placed to it in a conference room by seating the caller, and runs the
// "!conf" room commands. Members need powerLevel for moderator commands.
// Call it before Start.
func (c *Connector) SetConferences(r *conference.Registry, powerLevel int, defaultCC string) {
	c.confs, c.confLevel, c.confCC = r, powerLevel, defaultCC
}

// BotUserID is the gateway's bot: the conference user Matrix participants call.
func (c *Connector) BotUserID() id.UserID { return c.as.BotMXID() }

// ConferenceAnnouncer returns the conference.Announcer that posts notices
// and the roster state event as the bot.
func (c *Connector) ConferenceAnnouncer() conference.Announcer { return confAnnouncer{c} }

type confAnnouncer struct{ c *Connector }

// botGone reports whether the bot was removed from room: nothing may be
// sent there (the intent would try to rejoin).
func (c *Connector) botGone(room id.RoomID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.botLeft[room]
}

// Notice implements conference.Announcer.
func (a confAnnouncer) Notice(ctx context.Context, room, text string) {
	if a.c.botGone(id.RoomID(room)) {
		return
	}
	if _, err := a.c.as.BotIntent().SendNotice(ctx, id.RoomID(room), text); err != nil {
		a.c.log.Warn().Err(err).Str("room_id", room).Msg("conference notice failed")
	}
}

// Roster implements conference.Announcer.
func (a confAnnouncer) Roster(ctx context.Context, room string, r conference.Roster) {
	if a.c.botGone(id.RoomID(room)) {
		return
	}
	if _, err := a.c.as.BotIntent().SendStateEvent(ctx, id.RoomID(room), conferenceState, "", r); err != nil {
		a.c.log.Warn().Err(err).Str("room_id", room).Msg("publishing the conference roster failed")
	}
}

// isConferenceCall reports whether an invite in room calls the conference:
// it names the bot as invitee, or names nobody in a conference room where
// no phone ghost is.
func (c *Connector) isConferenceCall(ctx context.Context, room id.RoomID, inv *Invite) bool {
	if c.confs == nil {
		return false
	}
	if inv.Invitee != "" {
		return id.UserID(inv.Invitee) == c.as.BotMXID()
	}
	if _, ok := c.confs.Lookup(string(room)); !ok {
		return false
	}
	return len(c.roomGhosts(ctx, room)) == 0
}

// joinConference answers a Matrix user's call to the bot by seating them in
// the room's conference.
func (s *session) joinConference(ctx context.Context, evt *event.Event, inv *Invite) bool {
	bot := s.c.as.BotMXID()
	s.ghost, s.intent = bot, s.c.as.BotIntent()
	s.log = s.log.With().Bool("conference", true).Logger()
	expiry, ok := s.checkInvite(ctx, evt, inv)
	if !ok {
		return false
	}
	dialer, err := s.c.confs.JoinDialer(string(s.key.room), "matrix", "matrix")
	if err != nil {
		s.refuse(ctx, signalling.CauseNotFound, "This room has no conference call. A moderator can start one with \"!conf start\".")
		return false
	}
	call, err := s.c.cfg.Manager.Originate(ctx, signalling.OriginateRequest{
		From:       signalling.Party{MatrixUser: string(s.caller)},
		To:         signalling.Party{MatrixUser: string(bot), DisplayName: "conference"},
		Deadline:   expiry,
		Direction:  signalling.DirectionConference,
		Inbound:    true, // room members may join their room's conference; dial-out is checked per number
		Dialer:     dialer,
		Log:        &s.log,
		NewInbound: s.newInbound(inv),
	})
	if err != nil {
		cause := signalling.CauseOf(err)
		s.log.Info().Err(err).Stringer("cause", cause).Msg("conference call refused")
		s.refuse(ctx, cause, "Could not join the conference call: "+publicReason(err, cause)+".")
		return false
	}
	s.mu.Lock()
	s.call = call
	s.mu.Unlock()
	return true
}

// handleMessage runs conference commands typed in rooms the bot is in.
func (c *Connector) handleMessage(evt *event.Event) {
	if c.confs == nil || c.isOurs(evt.Sender) {
		return
	}
	var content struct {
		MsgType string `json:"msgtype"`
		Body    string `json:"body"`
	}
	if err := json.Unmarshal(evt.Content.VeryRaw, &content); err != nil || content.MsgType != "m.text" {
		return
	}
	if len(content.Body) > 512 || !conference.IsCommand(content.Body) {
		return
	}
	if !c.cmdLimit.allow(evt.Sender, time.Now()) {
		c.log.Debug().Stringer("sender", evt.Sender).Msg("conference command over the rate limit ignored")
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.runCommand(evt.RoomID, evt.Sender, content.Body)
	}()
}

// runCommand checks the sender's power level and runs one command.
func (c *Connector) runCommand(room id.RoomID, sender id.UserID, body string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := c.log.With().Stringer("room_id", room).Stringer("sender", sender).Logger()
	bot := c.as.BotIntent()
	level := 0
	pl := &event.PowerLevelsEventContent{}
	if err := bot.StateEvent(ctx, room, event.StatePowerLevels, "", pl); err != nil {
		log.Warn().Err(err).Msg("reading the room's power levels failed; treating the sender as level 0")
	} else {
		if create, err := bot.FullStateEvent(ctx, room, event.StateCreate, ""); err == nil {
			pl.CreateEvent = create
		}
		level = pl.GetUserLevel(sender)
	}
	reply, ok := c.confs.Command(ctx, conference.CommandRequest{
		Room:       string(room),
		Sender:     signalling.Party{MatrixUser: string(sender), Number: c.cfg.CallerID(sender)},
		Body:       body,
		PowerLevel: level,
		Required:   c.confLevel,
		DefaultCC:  c.confCC,
	})
	if !ok {
		return
	}
	log.Info().Str("command", firstWords(body, 2)).Int("power_level", level).Msg("conference command")
	if verb := strings.ToLower(firstWords(body, 2)); strings.HasSuffix(verb, " start") && pl.GetUserLevel(c.as.BotMXID()) < pl.GetEventLevel(conferenceState) {
		reply += fmt.Sprintf(" (Give %s power level %d so that it can keep the participant list in the room state; until then it only posts notices.)",
			c.as.BotMXID(), pl.GetEventLevel(conferenceState))
	}
	if _, err := bot.SendNotice(ctx, room, reply); err != nil {
		log.Warn().Err(err).Msg("replying to a conference command failed")
	}
}

// roomGone ends a room's conference when the gateway's bot is no longer in
// it (kicked, banned, the room was shut down) or the room was replaced.
func (c *Connector) roomGone(room id.RoomID, why string) {
	if c.confs == nil {
		return
	}
	if _, ok := c.confs.Lookup(string(room)); !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.confs.Remove(ctx, string(room), why); err != nil {
		c.log.Warn().Err(err).Stringer("room_id", room).Msg("removing the room's conference failed")
	}
}

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		f = f[:n]
	}
	return strings.Join(f, " ")
}

// commandLimiter bounds how many conference commands one user may send
// (each costs two homeserver requests and a reply): a burst of 5, then one
// every 2 s. It tracks at most maxTracked users; beyond that the oldest
// entries are forgotten.
type commandLimiter struct {
	mu    sync.Mutex
	users map[id.UserID]*cmdBucket
}

type cmdBucket struct {
	tokens float64
	last   time.Time
}

const (
	cmdBurst      = 5
	cmdPerSecond  = 0.5
	cmdMaxTracked = 10000
)

func (l *commandLimiter) allow(u id.UserID, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.users == nil {
		l.users = make(map[id.UserID]*cmdBucket)
	}
	b := l.users[u]
	if b == nil {
		if len(l.users) >= cmdMaxTracked {
			for k, v := range l.users {
				if now.Sub(v.last) > time.Minute {
					delete(l.users, k)
				}
			}
			if len(l.users) >= cmdMaxTracked {
				clear(l.users)
			}
		}
		b = &cmdBucket{tokens: cmdBurst, last: now}
		l.users[u] = b
	}
	b.tokens = min(cmdBurst, b.tokens+now.Sub(b.last).Seconds()*cmdPerSecond)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
