package sip

import (
	"errors"

	"github.com/emiago/sipgo"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
)

// describeState is what the leg keeps for its call record beyond its
// protocol state. Guarded by Leg.mu.
type describeState struct {
	status int            // final status of a failed INVITE (a 2xx is read from the dialog)
	ep     media.Endpoint // the RTP endpoint, kept after Audio stops returning it
}

var _ signalling.Describer = (*Leg)(nil)

// rtpStatser is the part of *media.RTPEndpoint the record reads.
type rtpStatser interface {
	Stats() media.RTPStats
}

// Describe adds the SIP side to a call record: trunk, Call-ID, the INVITE's
// final status, the phone codec and the packets received from and lost by
// the trunk. It implements signalling.Describer and takes Leg.mu; the
// counters are atomic, so it is cheap at any time, even after the leg ended.
func (l *Leg) Describe(r *signalling.CallRecord) {
	l.mu.Lock()
	ep, status, dlg := l.desc.ep, l.desc.status, l.dlg
	l.mu.Unlock()
	r.Trunk = l.trunk.Name
	r.SIPCallID = string(l.sipCall)
	if status == 0 && dlg != nil && dlg.InviteResponse != nil {
		// dlg is published under mu after WaitAnswer stored the response.
		status = dlg.InviteResponse.StatusCode
	}
	r.SIPStatus = status
	if ep == nil {
		return
	}
	r.PhoneCodec = ep.String()
	if s, ok := ep.(rtpStatser); ok {
		st := s.Stats()
		r.PhonePacketsIn, r.PhonePacketsLost = st.PacketsIn, st.Lost
	}
}

// noteFinalResponse keeps the status of the final response that made the
// INVITE fail, for Describe.
func (l *Leg) noteFinalResponse(err error) {
	var dr *sipgo.ErrDialogResponse
	if errors.As(err, &dr) && dr.Res != nil {
		l.mu.Lock()
		l.desc.status = dr.Res.StatusCode
		l.mu.Unlock()
	}
}
