package matrix

import (
	"errors"
	"strings"

	"github.com/matrix-gateway/gateway/signalling"
)

// Errors returned by Parse, Marshal and CheckSupported.
var (
	// ErrMalformed marks a call event that is not valid JSON or breaks the
	// spec or the size limits.
	ErrMalformed = errors.New("matrix: malformed call event")
	// ErrUnknownEventType marks an event type that is not a VoIP event.
	ErrUnknownEventType = errors.New("matrix: not a call event type")
	// ErrLegacyVersion marks a version 0 invite, which the gateway refuses.
	ErrLegacyVersion = errors.New("matrix: VoIP version 0 is not supported")
)

var (
	errMalformedVersion  = errors.New("version is neither a string nor a number")
	errMalformedLifetime = errors.New("lifetime is not a number")
)

// EventError describes why a call event was refused. It matches
// ErrMalformed, ErrUnknownEventType or ErrLegacyVersion with errors.Is, and
// maps to a hangup cause (signalling.CauseOf).
type EventError struct {
	EventType string // e.g. "m.call.invite"
	Field     string // JSON path of the offending field, e.g. "offer.sdp"; empty for JSON errors
	Detail    string
	sentinel  error
	err       error // underlying JSON error, if any
}

// Error formats the error as "matrix: malformed call event: m.call.invite: offer.sdp: empty".
func (e *EventError) Error() string {
	var b strings.Builder
	b.WriteString(e.sentinel.Error())
	if e.EventType != "" {
		b.WriteString(": ")
		b.WriteString(e.EventType)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.err != nil {
		b.WriteString(": ")
		b.WriteString(e.err.Error())
	}
	return b.String()
}

// Unwrap returns the sentinel and the underlying JSON error.
func (e *EventError) Unwrap() []error {
	if e.err != nil {
		return []error{e.sentinel, e.err}
	}
	return []error{e.sentinel}
}

// HangupCause maps the error to a neutral cause: a version 0 invite is
// incompatible, anything else a protocol error.
func (e *EventError) HangupCause() signalling.Cause {
	if e.sentinel == ErrLegacyVersion {
		return signalling.CauseIncompatible
	}
	return signalling.CauseProtocolError
}

func malformed(eventType, field, detail string) error {
	return &EventError{EventType: eventType, Field: field, Detail: detail, sentinel: ErrMalformed}
}

func malformedJSON(eventType string, err error) error {
	return &EventError{EventType: eventType, sentinel: ErrMalformed, err: err}
}

func unknownType(eventType string) error {
	return &EventError{EventType: eventType, sentinel: ErrUnknownEventType}
}

// validate checks a parsed event against the rules of its own version.
func validate(c Content) error { return validateAs(c, c.Call().Version) }

// validateAs checks c against the spec and the size limits as if it were an
// event of version ver (party_id is required from version 1 on).
func validateAs(c Content, ver Version) error {
	t := c.EventType()
	cm := c.Call()
	if cm.CallID == "" {
		return malformed(t, "call_id", "empty")
	}
	if err := checkString(t, "call_id", string(cm.CallID), MaxIDLength); err != nil {
		return err
	}
	if cm.PartyID == "" && ver != Version0 {
		return malformed(t, "party_id", "empty")
	}
	if err := checkString(t, "party_id", string(cm.PartyID), MaxIDLength); err != nil {
		return err
	}
	switch v := c.(type) {
	case *Invite:
		if err := checkDescription(t, "offer", &v.Offer); err != nil {
			return err
		}
		if err := checkString(t, "invitee", v.Invitee, MaxIDLength); err != nil {
			return err
		}
		if v.Invitee != "" && v.Invitee[0] != '@' {
			return malformed(t, "invitee", "not a user ID")
		}
		return checkStreams(t, v.Metadata(), false)
	case *Answer:
		if err := checkDescription(t, "answer", &v.Answer); err != nil {
			return err
		}
		return checkStreams(t, v.Metadata(), false)
	case *Negotiate:
		if v.Description.Type != "offer" && v.Description.Type != "answer" {
			return malformed(t, "description.type", "neither offer nor answer")
		}
		if err := checkDescription(t, "description", &v.Description); err != nil {
			return err
		}
		return checkStreams(t, v.Metadata(), false)
	case *SDPStreamMetadataChanged:
		return checkStreams(t, v.Metadata(), true)
	case *Candidates:
		return checkCandidates(t, v.Candidates)
	case *SelectAnswer:
		if v.SelectedPartyID == "" {
			return malformed(t, "selected_party_id", "empty")
		}
		return checkString(t, "selected_party_id", string(v.SelectedPartyID), MaxIDLength)
	case *Hangup:
		return checkString(t, "reason", v.Reason, MaxStringLength)
	}
	return nil
}

func checkDescription(t, field string, d *SessionDescription) error {
	if d.SDP == "" {
		return malformed(t, field+".sdp", "empty")
	}
	if len(d.SDP) > MaxSDPLength {
		return malformed(t, field+".sdp", "too long")
	}
	return checkString(t, field+".type", d.Type, MaxStringLength)
}

func checkCandidates(t string, cs []Candidate) error {
	if cs == nil {
		return malformed(t, "candidates", "missing")
	}
	if len(cs) > MaxCandidates {
		return malformed(t, "candidates", "too many")
	}
	for i := range cs {
		c := &cs[i]
		if err := checkString(t, "candidates.candidate", c.Candidate, MaxCandidateLength); err != nil {
			return err
		}
		if c.SDPMid != nil {
			if err := checkString(t, "candidates.sdpMid", *c.SDPMid, MaxSDPMidLength); err != nil {
				return err
			}
		}
		if c.UsernameFragment != nil {
			if err := checkString(t, "candidates.usernameFragment", *c.UsernameFragment, MaxSDPMidLength); err != nil {
				return err
			}
		}
		// WebRTC's addIceCandidate needs sdpMid or sdpMLineIndex for a real
		// candidate; the end-of-candidates entry has neither.
		if c.Candidate != "" && c.SDPMid == nil && c.SDPMLineIndex == nil {
			return malformed(t, "candidates", "candidate without sdpMid and sdpMLineIndex")
		}
	}
	return nil
}

func checkStreams(t string, sm StreamMetadata, required bool) error {
	if sm == nil {
		if required {
			return malformed(t, "sdp_stream_metadata", "missing or empty")
		}
		return nil
	}
	if len(sm) > MaxStreams {
		return malformed(t, "sdp_stream_metadata", "too many streams")
	}
	for id, info := range sm {
		if err := checkString(t, "sdp_stream_metadata", id, MaxStringLength); err != nil {
			return err
		}
		if err := checkString(t, "sdp_stream_metadata.purpose", info.Purpose, MaxStringLength); err != nil {
			return err
		}
	}
	return nil
}

// checkString enforces a length bound and refuses control characters, which
// would let a value break out of an SDP line, a SIP header or a log line.
func checkString(t, field, s string, maxLen int) error {
	if len(s) > maxLen {
		return malformed(t, field, "too long")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return malformed(t, field, "contains a control character")
		}
	}
	return nil
}
