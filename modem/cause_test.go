package modem

import (
	"testing"

	"github.com/matrix-gateway/gateway/signalling"
)

func TestEndCause(t *testing.T) {
	for _, tc := range []struct {
		name   string
		dir    CallDirection
		reason CallStateReason
		active bool
		local  bool
		gone   string
		want   signalling.Cause
	}{
		{"AT busy: reason unknown before answer", DirectionOutgoing, ReasonUnknown, false, false, "", signalling.CauseBusy},
		{"AT remote hangup: reason unknown after answer", DirectionOutgoing, ReasonUnknown, true, false, "", signalling.CauseNormal},
		{"QMI refused or busy", DirectionOutgoing, ReasonRefusedOrBusy, false, false, "", signalling.CauseBusy},
		{"terminated after answer", DirectionIncoming, ReasonTerminated, true, false, "", signalling.CauseNormal},
		{"caller gave up before we answered", DirectionIncoming, ReasonUnknown, false, false, "", signalling.CauseCancelled},
		{"audio setup failed", DirectionOutgoing, ReasonAudioSetupFailed, false, false, "", signalling.CauseMediaFailed},
		{"modem error", DirectionOutgoing, ReasonError, false, false, "", signalling.CauseServerError},
		{"we hung up after answer", DirectionOutgoing, ReasonTerminated, true, true, "", signalling.CauseNormal},
		{"we hung up before answer", DirectionOutgoing, ReasonTerminated, false, true, "", signalling.CauseCancelled},
		{"modem removed", DirectionOutgoing, ReasonUnknown, true, false, "modem removed", signalling.CauseUnreachable},
	} {
		got, detail := endCause(tc.dir, tc.reason, tc.active, tc.local, tc.gone)
		if got != tc.want || detail == "" {
			t.Errorf("%s: %s (%q), want %s", tc.name, got, detail, tc.want)
		}
	}
}

func TestEnumStrings(t *testing.T) {
	if CallRingingOut.String() != "ringing-out" || CallState(42).String() != "unknown" ||
		ReasonRefusedOrBusy.String() != "refused-or-busy" || DirectionIncoming.String() != "incoming" {
		t.Error("enum names")
	}
	if s := (AccessLTE | AccessGSM).String(); s != "gsm,lte" {
		t.Errorf("access tech %q", s)
	}
}
