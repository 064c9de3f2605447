package signalling

import "strings"

// Cause is a neutral reason for ending a call or a leg. Each leg translates
// its protocol's reasons to a Cause and back through the table below, so the
// mapping between SIP status codes and Matrix hangup reasons lives in one place.
type Cause int

// Neutral hangup causes.
const (
	CauseNormal        Cause = iota // a party hung up after answer
	CauseCancelled                  // the caller gave up before answer
	CauseBusy                       // the callee is busy (SIP 486/600)
	CauseRejected                   // the callee declined (SIP 603)
	CauseNoAnswer                   // nobody answered in time (SIP 408/480, invite lifetime)
	CauseNotFound                   // the number does not exist (SIP 404/410/604)
	CauseInvalidNumber              // the number is malformed or incomplete (SIP 484/485)
	CauseForbidden                  // policy refused the call (toll-fraud rules, SIP 401/403/407)
	CauseLimit                      // a concurrency or rate limit refused the call (SIP 503 from us)
	CauseUnreachable                // the trunk or far side cannot be reached (transport error, no response)
	CauseCongestion                 // the far side is overloaded (SIP 503)
	CauseServerError                // the far side failed (other 5xx)
	CauseIncompatible               // no common codec or broken SDP (SIP 488/606)
	CauseMediaFailed                // ICE/DTLS/RTP failure after set-up
	CauseProtocolError              // a malformed or unexpected message
	CauseShutdown                   // the gateway is shutting down
	CauseUnknown                    // anything else
	numCauses
)

// Matrix m.call.hangup reasons (spec v1.x, Voice over IP).
const (
	MatrixReasonICEFailed       = "ice_failed"
	MatrixReasonICETimeout      = "ice_timeout"
	MatrixReasonInviteTimeout   = "invite_timeout"
	MatrixReasonUserHangup      = "user_hangup"
	MatrixReasonUserMediaFailed = "user_media_failed"
	MatrixReasonUserBusy        = "user_busy"
	MatrixReasonUnknownError    = "unknown_error"
)

// causeInfo is one row of the mapping table.
type causeInfo struct {
	name   string // stable name used in logs, metrics and call records
	sip    int    // SIP status the gateway sends for this cause (0: BYE/CANCEL, no status)
	matrix string // Matrix hangup reason the gateway sends for this cause
	text   string // human explanation, used in room notices
}

// causeTable is THE mapping between neutral causes, SIP status codes and
// Matrix hangup reasons. Keep it the only one.
var causeTable = [numCauses]causeInfo{
	CauseNormal:        {"normal", 0, MatrixReasonUserHangup, "the call ended normally"},
	CauseCancelled:     {"cancelled", 487, MatrixReasonUserHangup, "the caller hung up before the call was answered"},
	CauseBusy:          {"busy", 486, MatrixReasonUserBusy, "the number is busy"},
	CauseRejected:      {"rejected", 603, MatrixReasonUserHangup, "the call was declined"},
	CauseNoAnswer:      {"no_answer", 480, MatrixReasonInviteTimeout, "nobody answered"},
	CauseNotFound:      {"not_found", 404, MatrixReasonUnknownError, "the number does not exist"},
	CauseInvalidNumber: {"invalid_number", 484, MatrixReasonUnknownError, "the number is invalid or incomplete"},
	CauseForbidden:     {"forbidden", 403, MatrixReasonUnknownError, "the call is not allowed"},
	CauseLimit:         {"limit", 503, MatrixReasonUserBusy, "too many calls at once"},
	CauseUnreachable:   {"unreachable", 502, MatrixReasonUnknownError, "the phone network could not be reached"},
	CauseCongestion:    {"congestion", 503, MatrixReasonUserBusy, "the phone network is congested"},
	CauseServerError:   {"server_error", 500, MatrixReasonUnknownError, "the phone network reported an error"},
	CauseIncompatible:  {"incompatible", 488, MatrixReasonUserMediaFailed, "no common audio codec"},
	CauseMediaFailed:   {"media_failed", 0, MatrixReasonICEFailed, "the audio connection failed"},
	CauseProtocolError: {"protocol_error", 400, MatrixReasonUnknownError, "a malformed message was received"},
	CauseShutdown:      {"shutdown", 503, MatrixReasonUserHangup, "the gateway is shutting down"},
	CauseUnknown:       {"unknown", 500, MatrixReasonUnknownError, "the call failed"},
}

func (c Cause) info() causeInfo {
	if c < 0 || c >= numCauses {
		return causeTable[CauseUnknown]
	}
	return causeTable[c]
}

// String returns the cause's stable name, e.g. "busy".
func (c Cause) String() string { return c.info().name }

// Text returns a short human explanation of the cause.
func (c Cause) Text() string { return c.info().text }

// SIPStatus returns the SIP final response status the gateway sends to
// refuse or end a call for this cause. Zero means the cause has no final
// response of its own (the call is ended with BYE or CANCEL).
func (c Cause) SIPStatus() int { return c.info().sip }

// MatrixReason returns the m.call.hangup reason for this cause.
func (c Cause) MatrixReason() string { return c.info().matrix }

// CauseFromSIP maps a SIP final status code received from the far side to a
// neutral cause (RFC 3261 section 21, RFC 3398 for ISUP-derived meanings).
func CauseFromSIP(status int) Cause {
	switch {
	case status >= 200 && status < 300:
		return CauseNormal
	case status == 486 || status == 600:
		return CauseBusy
	case status == 603:
		return CauseRejected
	case status == 408 || status == 480:
		return CauseNoAnswer
	case status == 487:
		return CauseCancelled
	case status == 404 || status == 410 || status == 604:
		return CauseNotFound
	case status == 484 || status == 485:
		return CauseInvalidNumber
	case status == 401 || status == 403 || status == 407:
		return CauseForbidden
	case status == 488 || status == 606 || status == 415:
		return CauseIncompatible
	case status == 503:
		return CauseCongestion
	case status == 502 || status == 504:
		return CauseUnreachable
	case status >= 500 && status < 600:
		return CauseServerError
	case status >= 400 && status < 500:
		return CauseUnknown
	default:
		return CauseUnknown
	}
}

// CauseFromMatrix maps a received m.call.hangup reason to a neutral cause.
// An absent reason means user_hangup (spec). answered tells whether the call
// was already up, which turns a plain hangup into Normal or Cancelled.
func CauseFromMatrix(reason string, answered bool) Cause {
	switch strings.TrimSpace(reason) {
	case "", MatrixReasonUserHangup:
		if answered {
			return CauseNormal
		}
		return CauseCancelled
	case MatrixReasonUserBusy:
		return CauseBusy
	case MatrixReasonInviteTimeout:
		return CauseNoAnswer
	case MatrixReasonICEFailed, MatrixReasonICETimeout, MatrixReasonUserMediaFailed:
		return CauseMediaFailed
	default:
		return CauseUnknown
	}
}
