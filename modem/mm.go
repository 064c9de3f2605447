// Package modem is the GSM leg: it drives ModemManager's D-Bus API (modem
// discovery, registration and signal tracking, voice calls, DTMF) and offers
// a signalling.Dialer and signalling.Leg so a call can join a GSM call to a
// Matrix or SIP leg. Audio is control-only unless an AudioConfig names the
// modem's PCM device (an ALSA PCM, an audio tty, FIFOs, or the AudioPort
// ModemManager reports): the leg then carries the call's audio as a
// media.StreamEndpoint (see docs/architecture.md, "Modem and routing").
package modem

import "strings"

// ModemManager's bus name, object paths and interfaces.
const (
	mmService      = "org.freedesktop.ModemManager1"
	mmPath         = "/org/freedesktop/ModemManager1"
	ifModem        = mmService + ".Modem"
	ifVoice        = ifModem + ".Voice"
	if3GPP         = ifModem + ".Modem3gpp"
	ifCall         = mmService + ".Call"
	ifProps        = "org.freedesktop.DBus.Properties"
	ifObjectMgr    = "org.freedesktop.DBus.ObjectManager"
	ifDBus         = "org.freedesktop.DBus"
	modemStateRegd = 8 // MM_MODEM_STATE_REGISTERED
)

// CallState is ModemManager's MMCallState.
type CallState int32

// Call states.
const (
	CallUnknown    CallState = 0
	CallDialing    CallState = 1
	CallRingingOut CallState = 2
	CallRingingIn  CallState = 3
	CallActive     CallState = 4
	CallHeld       CallState = 5
	CallWaiting    CallState = 6
	CallTerminated CallState = 7
)

var callStateNames = [...]string{"unknown", "dialing", "ringing-out", "ringing-in", "active", "held", "waiting", "terminated"}

func (s CallState) String() string {
	if s >= 0 && int(s) < len(callStateNames) {
		return callStateNames[s]
	}
	return "unknown"
}

// CallStateReason is ModemManager's MMCallStateReason.
type CallStateReason uint32

// Call state reasons.
const (
	ReasonUnknown          CallStateReason = 0
	ReasonOutgoingStarted  CallStateReason = 1
	ReasonIncomingNew      CallStateReason = 2
	ReasonAccepted         CallStateReason = 3
	ReasonTerminated       CallStateReason = 4
	ReasonRefusedOrBusy    CallStateReason = 5
	ReasonError            CallStateReason = 6
	ReasonAudioSetupFailed CallStateReason = 7
	ReasonTransferred      CallStateReason = 8
	ReasonDeflected        CallStateReason = 9
)

var reasonNames = [...]string{"unknown", "outgoing-started", "incoming-new", "accepted", "terminated",
	"refused-or-busy", "error", "audio-setup-failed", "transferred", "deflected"}

func (r CallStateReason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// CallDirection is ModemManager's MMCallDirection.
type CallDirection int32

// Call directions.
const (
	DirectionUnknown  CallDirection = 0
	DirectionIncoming CallDirection = 1
	DirectionOutgoing CallDirection = 2
)

func (d CallDirection) String() string {
	switch d {
	case DirectionIncoming:
		return "incoming"
	case DirectionOutgoing:
		return "outgoing"
	}
	return "unknown"
}

// AccessTech is ModemManager's MMModemAccessTechnology bitmask.
type AccessTech uint32

// Access technologies the gateway cares about.
const (
	AccessGSM  AccessTech = 1 << 1
	AccessUMTS AccessTech = 1 << 5
	AccessLTE  AccessTech = 1 << 14
	Access5GNR AccessTech = 1 << 15
)

func (a AccessTech) String() string {
	var parts []string
	for _, t := range []struct {
		bit  AccessTech
		name string
	}{{AccessGSM, "gsm"}, {AccessUMTS, "umts"}, {AccessLTE, "lte"}, {Access5GNR, "5gnr"}} {
		if a&t.bit != 0 {
			parts = append(parts, t.name)
		}
	}
	if a != 0 && len(parts) == 0 {
		return "other"
	}
	return strings.Join(parts, ",")
}
