// Package matrix is the Matrix leg of the gateway: m.call.* events, the
// appservice endpoints and the mapping between Matrix calls and the
// neutral call core.
package matrix

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// This file models the version 1 VoIP events of the Matrix spec
// (client-server API, module "Voice over IP", https://spec.matrix.org/latest/client-server-api/#voice-over-ip).
// mautrix-go's event/voip.go types are not used: they write version as the
// number 1, cannot express the end-of-candidates entry and lack invitee,
// sdp_stream_metadata, ice_timeout and user_busy.

// Event types of the VoIP module.
const (
	EventInvite                   = "m.call.invite"
	EventCandidates               = "m.call.candidates"
	EventAnswer                   = "m.call.answer"
	EventSelectAnswer             = "m.call.select_answer"
	EventReject                   = "m.call.reject"
	EventNegotiate                = "m.call.negotiate"
	EventHangup                   = "m.call.hangup"
	EventSDPStreamMetadataChanged = "m.call.sdp_stream_metadata_changed"
)

// Limits applied by Parse and Marshal. A Matrix event is at most 65536
// bytes in total (spec: "Size limits"), so these are generous.
const (
	MaxContentLength   = 256 << 10 // bytes of raw content Parse looks at (events are <= 64 KiB)
	MaxIDLength        = 255       // call_id, party_id, selected_party_id, invitee
	MaxSDPLength       = 64 << 10  // bytes of SDP in an offer, answer or description
	MaxCandidates      = 200       // entries in one m.call.candidates
	MaxCandidateLength = 1024      // bytes of one candidate line
	MaxSDPMidLength    = 64        // bytes of sdpMid / usernameFragment
	MaxStreams         = 16        // entries in sdp_stream_metadata
	MaxStringLength    = 255       // any other string (reason, purpose, type)
	MaxLifetime        = 5 * 60000 // ms; longer lifetimes are clamped to this
	DefaultLifetime    = 60000     // ms; what matrix-js-sdk sends (CALL_TIMEOUT_MS)
)

// Stream purposes in sdp_stream_metadata (spec: "SDP stream metadata").
const (
	PurposeUserMedia   = "m.usermedia"
	PurposeScreenshare = "m.screenshare"
)

// CallID is a Matrix call_id, distinct from SIP Call-IDs and the gateway's
// own call IDs.
type CallID string

// PartyID is a Matrix party_id: one device taking part in a call.
type PartyID string

// Version is the VoIP spec version an event follows.
type Version int8

// VoIP versions. Receivers treat every version but 0 as 1 (spec: "version").
const (
	Version0 Version = 0 // legacy (pre-Matrix 1.7) calls; not supported for new calls
	Version1 Version = 1 // the current spec

	versionMissing Version = -1 // sentinel used while parsing
)

// UnmarshalJSON accepts the string "1" (and any other string, which the spec
// says to treat as "1"), the string "0", and the numbers 0 and 1 (any other
// number counts as 1). null leaves the value unchanged.
func (v *Version) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return errMalformedVersion
	}
	switch b[0] {
	case 'n':
		if string(b) != "null" {
			return errMalformedVersion
		}
		return nil
	case '"':
		var s string
		if bytes.IndexByte(b, '\\') < 0 && len(b) >= 2 {
			s = string(b[1 : len(b)-1])
		} else if err := json.Unmarshal(b, &s); err != nil {
			return errMalformedVersion
		}
		if s == "0" {
			*v = Version0
		} else {
			*v = Version1
		}
		return nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil && !isRangeErr(err) {
			return errMalformedVersion
		}
		if f == 0 {
			*v = Version0
		} else {
			*v = Version1
		}
		return nil
	}
	return errMalformedVersion
}

// MarshalJSON always writes the string "1": the gateway speaks version 1 only.
func (Version) MarshalJSON() ([]byte, error) { return []byte(`"1"`), nil }

// String returns "0" or "1".
func (v Version) String() string {
	if v == Version0 {
		return "0"
	}
	return "1"
}

// Common holds the fields every m.call.* event carries (spec: "Common
// fields"). Embedded in each content struct.
type Common struct {
	CallID  CallID  `json:"call_id"`
	PartyID PartyID `json:"party_id"`
	// Version is always marshalled as "1", whatever its value.
	Version Version `json:"version"`
}

// Call returns the common fields; it lets a Content be routed by call_id
// without a type switch.
func (c *Common) Call() *Common { return c }

// Legacy reports whether the event is a version 0 event.
func (c *Common) Legacy() bool { return c.Version == Version0 }

// Content is implemented by every event content type of this file.
type Content interface {
	// EventType returns the Matrix event type, e.g. "m.call.invite".
	EventType() string
	// Call returns the fields common to all call events.
	Call() *Common
}

// SessionDescription is an RTCSessionDescriptionInit: the offer, answer or
// negotiate description.
type SessionDescription struct {
	Type string `json:"type"` // "offer" or "answer"
	SDP  string `json:"sdp"`
}

// StreamInfo describes one stream (spec: "SDP stream metadata").
type StreamInfo struct {
	Purpose    string `json:"purpose"`
	AudioMuted bool   `json:"audio_muted,omitempty"`
	VideoMuted bool   `json:"video_muted,omitempty"`
}

// StreamMetadata maps stream IDs (the msid stream of the SDP) to their
// description.
type StreamMetadata map[string]StreamInfo

// streamMeta carries sdp_stream_metadata under both its stable and its
// MSC3077 key. Parse fills Stable from whichever key is present (stable
// first); Marshal writes both keys with the same value.
type streamMeta struct {
	Stable   StreamMetadata `json:"sdp_stream_metadata,omitempty"`
	Unstable StreamMetadata `json:"org.matrix.msc3077.sdp_stream_metadata,omitempty"`
}

// Metadata returns the stream metadata, from either key.
func (m *streamMeta) Metadata() StreamMetadata {
	if m.Stable != nil {
		return m.Stable
	}
	return m.Unstable
}

// SetMetadata sets the stream metadata under both keys.
func (m *streamMeta) SetMetadata(sm StreamMetadata) { m.Stable, m.Unstable = sm, sm }

// normalize stores the metadata under both keys; an empty map counts as
// absent (it would be omitted on the wire anyway).
func (m *streamMeta) normalize() {
	sm := m.Metadata()
	if len(sm) == 0 {
		sm = nil
	}
	m.SetMetadata(sm)
}

// Invite is m.call.invite: the caller offers a call.
type Invite struct {
	Common
	Offer SessionDescription `json:"offer"`
	// Lifetime is the invite's validity in ms (required, > 0). Parse clamps
	// it to MaxLifetime. See InviteExpiry.
	Lifetime int64 `json:"lifetime"`
	// Invitee is the called user; empty means anyone in the room (omitted
	// when empty).
	Invitee string `json:"invitee,omitempty"`
	streamMeta
}

// Candidate is one ICE candidate. Its fields match pion's
// webrtc.ICECandidateInit, so a conversion webrtc.ICECandidateInit(c) works.
// The end-of-candidates entry has an empty Candidate and nil SDPMid and
// SDPMLineIndex (see EndOfCandidates).
type Candidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// EndOfCandidates returns the entry that tells the peer no more candidates
// will follow: {"candidate": ""}.
func EndOfCandidates() Candidate { return Candidate{} }

// IsEnd reports whether c is an end-of-candidates entry (empty candidate).
func (c *Candidate) IsEnd() bool { return c.Candidate == "" }

// Candidates is m.call.candidates: more ICE candidates for the peer.
type Candidates struct {
	Common
	Candidates []Candidate `json:"candidates"`
}

// Answer is m.call.answer: the callee accepts the call.
type Answer struct {
	Common
	Answer SessionDescription `json:"answer"`
	streamMeta
}

// SelectAnswer is m.call.select_answer: the caller picked one answer.
type SelectAnswer struct {
	Common
	SelectedPartyID PartyID `json:"selected_party_id"`
}

// Reject is m.call.reject: a callee declines an invite.
type Reject struct {
	Common
	// Reason is not in the spec's m.call.reject, but matrix-js-sdk reads it
	// (as it does on m.call.hangup) and ends the call with it; it is the only
	// way to tell a js-sdk caller "user_busy" before answer, because js-sdk
	// ignores an m.call.hangup from a callee it has not selected yet.
	Reason string `json:"reason,omitempty"`
}

// Negotiate is m.call.negotiate: an SDP renegotiation (hold, ICE restart).
type Negotiate struct {
	Common
	Description SessionDescription `json:"description"`
	// Lifetime in ms; the spec requires it but Parse accepts 0 (absent) so
	// a renegotiation is not lost over a missing field. Clamped to
	// MaxLifetime.
	Lifetime int64 `json:"lifetime,omitempty"`
	streamMeta
}

// Hangup is m.call.hangup: a party ends the call.
type Hangup struct {
	Common
	// Reason is one of signalling.MatrixReason*; empty means user_hangup.
	Reason string `json:"reason,omitempty"`
}

// ReasonOrDefault returns Reason, or "user_hangup" when it is absent (spec).
func (h *Hangup) ReasonOrDefault() string {
	if h.Reason == "" {
		return "user_hangup"
	}
	return h.Reason
}

// SDPStreamMetadataChanged is m.call.sdp_stream_metadata_changed: mute state
// or stream purposes changed without renegotiation.
type SDPStreamMetadataChanged struct {
	Common
	streamMeta
}

// EventType implements Content.
func (*Invite) EventType() string { return EventInvite }

// EventType implements Content.
func (*Candidates) EventType() string { return EventCandidates }

// EventType implements Content.
func (*Answer) EventType() string { return EventAnswer }

// EventType implements Content.
func (*SelectAnswer) EventType() string { return EventSelectAnswer }

// EventType implements Content.
func (*Reject) EventType() string { return EventReject }

// EventType implements Content.
func (*Negotiate) EventType() string { return EventNegotiate }

// EventType implements Content.
func (*Hangup) EventType() string { return EventHangup }

// EventType implements Content.
func (*SDPStreamMetadataChanged) EventType() string { return EventSDPStreamMetadataChanged }

// IsCallEvent reports whether eventType is one Parse understands.
func IsCallEvent(eventType string) bool {
	switch eventType {
	case EventInvite, EventCandidates, EventAnswer, EventSelectAnswer, EventReject,
		EventNegotiate, EventHangup, EventSDPStreamMetadataChanged:
		return true
	}
	return false
}

// Parse decodes and validates the content of a VoIP event. It returns one of
// *Invite, *Candidates, *Answer, *SelectAnswer, *Reject, *Negotiate, *Hangup
// or *SDPStreamMetadataChanged. Errors match ErrUnknownEventType or
// ErrMalformed (as an *EventError naming the field).
//
// Parse accepts version 0 events (Version0, party_id optional); the caller
// refuses version 0 invites with (*Invite).CheckSupported.
func Parse(eventType string, content json.RawMessage) (Content, error) {
	var c Content
	switch eventType {
	case EventInvite:
		c = &Invite{}
	case EventCandidates:
		c = &Candidates{}
	case EventAnswer:
		c = &Answer{}
	case EventSelectAnswer:
		c = &SelectAnswer{}
	case EventReject:
		c = &Reject{}
	case EventNegotiate:
		c = &Negotiate{}
	case EventHangup:
		c = &Hangup{}
	case EventSDPStreamMetadataChanged:
		c = &SDPStreamMetadataChanged{}
	default:
		return nil, unknownType(eventType)
	}
	if len(content) > MaxContentLength {
		return nil, malformed(eventType, "", "content too large")
	}
	c.Call().Version = versionMissing
	if err := json.Unmarshal(content, c); err != nil {
		return nil, malformedJSON(eventType, err)
	}
	if err := prepare(c); err != nil {
		return nil, err
	}
	if err := validate(c); err != nil {
		return nil, err
	}
	return c, nil
}

// prepare applies the parse-only normalisations: missing version, default
// description types, clamped lifetimes, and merged stream metadata keys.
func prepare(c Content) error {
	cm := c.Call()
	if cm.Version == versionMissing {
		return malformed(c.EventType(), "version", "missing")
	}
	switch v := c.(type) {
	case *Invite:
		if v.Offer.Type == "" {
			v.Offer.Type = "offer"
		}
		if v.Lifetime <= 0 {
			return malformed(EventInvite, "lifetime", "missing or not positive")
		}
		v.Lifetime = min(v.Lifetime, MaxLifetime)
		v.normalize()
	case *Answer:
		if v.Answer.Type == "" {
			v.Answer.Type = "answer"
		}
		v.normalize()
	case *Negotiate:
		if v.Lifetime < 0 {
			return malformed(EventNegotiate, "lifetime", "negative")
		}
		v.Lifetime = min(v.Lifetime, MaxLifetime)
		v.normalize()
	case *SDPStreamMetadataChanged:
		v.normalize()
	}
	return nil
}

// UnmarshalJSON decodes an invite, accepting a lifetime written as a float
// (6e4, 60000.0) as well as an integer.
func (inv *Invite) UnmarshalJSON(b []byte) error {
	type plain Invite
	aux := struct {
		*plain
		Lifetime json.Number `json:"lifetime"`
	}{plain: (*plain)(inv)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	ms, err := parseMillis(aux.Lifetime)
	if err != nil {
		return err
	}
	inv.Lifetime = ms
	return nil
}

// UnmarshalJSON decodes a negotiate event, accepting a float lifetime.
func (n *Negotiate) UnmarshalJSON(b []byte) error {
	type plain Negotiate
	aux := struct {
		*plain
		Lifetime json.Number `json:"lifetime"`
	}{plain: (*plain)(n)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	ms, err := parseMillis(aux.Lifetime)
	if err != nil {
		return err
	}
	n.Lifetime = ms
	return nil
}

// parseMillis turns a JSON number into whole milliseconds. Absent is 0;
// values beyond int64 saturate (the caller clamps them anyway).
func parseMillis(n json.Number) (int64, error) {
	if n == "" {
		return 0, nil
	}
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil && !isRangeErr(err) {
		return 0, errMalformedLifetime
	}
	switch {
	case math.IsNaN(f):
		return 0, errMalformedLifetime
	case f >= math.MaxInt64:
		return math.MaxInt64, nil
	case f <= math.MinInt64:
		return math.MinInt64, nil
	}
	return int64(f), nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// CheckSupported returns an error matching ErrLegacyVersion when the invite
// is a version 0 invite, which the gateway refuses (it relies on party_id,
// m.call.reject and select_answer of version 1).
func (inv *Invite) CheckSupported() error {
	if inv.Version == Version0 {
		return &EventError{EventType: EventInvite, Field: "version",
			Detail: "version 0 calls are not supported; update the client", sentinel: ErrLegacyVersion}
	}
	return nil
}

// InviteExpiry returns when an invite stops being valid: it is valid for
// lifetime minus its age (the unsigned "age" of the event) from the moment it
// was received (spec: m.call.invite "lifetime"). A non-positive lifetime
// means DefaultLifetime, lifetimes beyond MaxLifetime are clamped, and a
// negative age (clock skew) counts as 0. The result may lie before received
// when the invite arrived already expired.
func InviteExpiry(lifetimeMs, ageMs int64, received time.Time) time.Time {
	if lifetimeMs <= 0 {
		lifetimeMs = DefaultLifetime
	}
	lifetimeMs = min(lifetimeMs, MaxLifetime)
	// Bound the age so the subtraction and Duration conversion cannot
	// overflow; anything older than a day is long expired.
	ageMs = max(min(ageMs, 24*3600*1000), 0)
	return received.Add(time.Duration(lifetimeMs-ageMs) * time.Millisecond)
}

// Marshal validates content and encodes it as the spec wants it: version
// "1", invitee omitted when empty, stream metadata under both keys, the
// end-of-candidates entry as {"candidate":""}. It returns the event type to
// send the body with. content is one of the pointer types Parse returns; it
// is not modified. An empty PartyID is refused.
func Marshal(content Content) (eventType string, body []byte, err error) {
	// Work on a copy so the caller's value is not modified.
	var c Content
	isNil := false
	switch v := content.(type) {
	case *Invite:
		if isNil = v == nil; !isNil {
			cp := *v
			cp.normalize()
			c = &cp
		}
	case *Answer:
		if isNil = v == nil; !isNil {
			cp := *v
			cp.normalize()
			c = &cp
		}
	case *Negotiate:
		if isNil = v == nil; !isNil {
			cp := *v
			cp.normalize()
			c = &cp
		}
	case *SDPStreamMetadataChanged:
		if isNil = v == nil; !isNil {
			cp := *v
			cp.normalize()
			c = &cp
		}
	case *Candidates:
		isNil, c = v == nil, v
	case *SelectAnswer:
		isNil, c = v == nil, v
	case *Reject:
		isNil, c = v == nil, v
	case *Hangup:
		isNil, c = v == nil, v
	case nil:
		return "", nil, unknownType("")
	default:
		return "", nil, unknownType(content.EventType())
	}
	if isNil {
		return "", nil, malformed(content.EventType(), "", "nil content")
	}
	eventType = c.EventType()
	if c.Call().PartyID == "" {
		return "", nil, malformed(eventType, "party_id", "empty")
	}
	if err := validateAs(c, Version1); err != nil {
		return "", nil, err
	}
	switch v := c.(type) {
	case *Invite:
		if v.Lifetime <= 0 || v.Lifetime > MaxLifetime {
			return "", nil, malformed(eventType, "lifetime", "must be in (0, MaxLifetime]")
		}
	case *Negotiate:
		if v.Lifetime < 0 || v.Lifetime > MaxLifetime {
			return "", nil, malformed(eventType, "lifetime", "must be in [0, MaxLifetime]")
		}
	}
	body, err = json.Marshal(c)
	if err != nil {
		return "", nil, malformedJSON(eventType, err)
	}
	return eventType, body, nil
}
