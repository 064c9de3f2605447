package conference

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/matrix-gateway/gateway/signalling"
)

// CommandPrefixes start a conference command in a room message.
var CommandPrefixes = []string{"!conference", "!conf"}

// IsCommand reports whether a message body is a conference command.
func IsCommand(body string) bool {
	_, ok := commandArgs(body)
	return ok
}

func commandArgs(body string) ([]string, bool) {
	f := strings.Fields(strings.TrimSpace(body))
	if len(f) == 0 {
		return nil, false
	}
	for _, p := range CommandPrefixes {
		if strings.EqualFold(f[0], p) {
			return f[1:], true
		}
	}
	return nil, false
}

// CommandRequest is a conference command typed in a room.
type CommandRequest struct {
	Room   string
	Sender signalling.Party // MatrixUser, and the caller ID presented when dialling out
	Body   string
	// PowerLevel is the sender's power level in the room; Required is the
	// level moderator commands need.
	PowerLevel, Required int
	// DefaultCC turns national numbers in "dial" into E.164.
	DefaultCC string
}

const helpText = `Conference commands:
!conf start: give this room a conference call with a dial-in number and PIN (moderators)
!conf stop: end the call and remove the conference from this room (moderators)
!conf info: dial-in number, PIN and who is on the call
!conf join: the gateway calls you (in your direct chat with it) and puts you in the conference
!conf dial NUMBER: call a phone into the conference (moderators; the usual calling rules apply)
!conf mute WHO / !conf unmute WHO / !conf kick WHO: WHO is a participant's number from "info", a Matrix ID or a phone number (moderators)
To join from Matrix, call the gateway's bot in this room. Phones dial in and press the PIN, then #; in the call *6 mutes and unmutes yourself.`

// Command runs a conference command and returns the reply to post. ok is
// false when body is no conference command.
func (r *Registry) Command(ctx context.Context, req CommandRequest) (reply string, ok bool) {
	args, ok := commandArgs(req.Body)
	if !ok {
		return "", false
	}
	if len(args) == 0 {
		return helpText, true
	}
	verb := strings.ToLower(args[0])
	args = args[1:]
	moderator := req.PowerLevel >= req.Required
	needMod := func() (string, bool) {
		return fmt.Sprintf("Only members with power level %d or more may use \"!conf %s\" (yours is %d).", req.Required, verb, req.PowerLevel), true
	}
	switch verb {
	case "help":
		return helpText, true
	case "start", "create":
		if !moderator {
			return needMod()
		}
		if len(args) > 0 {
			return "Usage: !conf start", true
		}
		s, err := r.Create(ctx, req.Room, req.Sender.MatrixUser, "")
		if errors.Is(err, ErrExists) {
			return "This room already has a conference call. " + r.infoText(req.Room), true
		}
		if err != nil {
			return "Could not create the conference: " + err.Error(), true
		}
		_ = s
		return "This room now has a conference call. " + r.infoText(req.Room), true
	case "stop", "end", "remove":
		if !moderator {
			return needMod()
		}
		if err := r.Remove(ctx, req.Room, "the conference was stopped by "+req.Sender.MatrixUser); err != nil {
			return "This room has no conference call.", true
		}
		return "The conference call was removed from this room.", true
	case "info", "who", "list", "status":
		if _, ok := r.Lookup(req.Room); !ok {
			return "This room has no conference call. A moderator can start one with \"!conf start\".", true
		}
		return r.infoText(req.Room), true
	case "join", "callme", "call-me":
		if _, ok := r.Lookup(req.Room); !ok {
			return "This room has no conference call. A moderator can start one with \"!conf start\".", true
		}
		if _, err := r.CallMember(ctx, req.Room, req.Sender.MatrixUser); err != nil {
			return fmt.Sprintf("Could not call you: %s.", publicReason(err)), true
		}
		return fmt.Sprintf("Calling %s: answer in your direct chat with the gateway to join the conference.", req.Sender.MatrixUser), true
	case "dial", "invite", "call":
		if !moderator {
			return needMod()
		}
		if len(args) != 1 {
			return "Usage: !conf dial NUMBER", true
		}
		number, err := signalling.Normalize(args[0], req.DefaultCC)
		if err != nil {
			return fmt.Sprintf("%q is not a phone number: %v", args[0], err), true
		}
		if _, err := r.DialOut(ctx, req.Room, req.Sender, number); err != nil {
			if errors.Is(err, ErrNoConference) {
				return "This room has no conference call.", true
			}
			return fmt.Sprintf("Could not call %s: %s.", number, publicReason(err)), true
		}
		return fmt.Sprintf("Calling %s into the conference.", number), true
	case "mute", "unmute", "kick", "remove-participant":
		if !moderator {
			return needMod()
		}
		if len(args) != 1 {
			return fmt.Sprintf("Usage: !conf %s WHO (a number from \"!conf info\", a Matrix ID or a phone number)", verb), true
		}
		var p Participant
		var err error
		switch verb {
		case "mute":
			p, err = r.Mute(req.Room, args[0], true)
		case "unmute":
			p, err = r.Mute(req.Room, args[0], false)
		default:
			p, err = r.Kick(req.Room, args[0], req.Sender.MatrixUser)
		}
		if err != nil {
			if errors.Is(err, ErrNoSuchSeat) {
				return fmt.Sprintf("Nobody on the call matches %q.", args[0]), true
			}
			return err.Error(), true
		}
		switch verb {
		case "mute":
			return p.Name + " is muted.", true
		case "unmute":
			return p.Name + " is unmuted.", true
		}
		return p.Name + " was removed from the call.", true
	}
	return fmt.Sprintf("Unknown command %q. %s", verb, "Say \"!conf help\" for the list."), true
}

// infoText is the dial-in details and the participant list.
func (r *Registry) infoText(room string) string {
	s, ok := r.Lookup(room)
	if !ok {
		return "This room has no conference call."
	}
	var b strings.Builder
	if len(r.cfg.DialIn) > 0 {
		fmt.Fprintf(&b, "Dial in: %s, PIN %s then #.", strings.Join(r.cfg.DialIn, " or "), s.PIN)
	} else {
		fmt.Fprintf(&b, "PIN %s (no dial-in number is configured).", s.PIN)
	}
	b.WriteString(" Matrix users join by calling the gateway's bot in this room.")
	list := r.Participants(room)
	if len(list) == 0 {
		b.WriteString(" Nobody is on the call.")
		return b.String()
	}
	fmt.Fprintf(&b, " On the call (%d):", len(list))
	for _, p := range list {
		b.WriteString(" ")
		b.WriteString(describeWho(p))
		b.WriteString(";")
	}
	return strings.TrimSuffix(b.String(), ";") + "."
}

// publicReason is what a room is told about a refused dial-out.
func publicReason(err error) string {
	var pr interface{ PublicReason() string }
	if errors.As(err, &pr) && pr.PublicReason() != "" {
		return pr.PublicReason()
	}
	return signalling.CauseOf(err).Text()
}
