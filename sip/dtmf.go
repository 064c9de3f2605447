package sip

import (
	"context"
	"errors"
	"time"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
)

// DTMF on SIP legs: RFC 4733 telephone-event in RTP when the far side
// negotiated it, SIP INFO (application/dtmf-relay) otherwise. Received
// digits (RTP events decoded by the endpoint, or INFO) are posted to the
// call as signalling.EventDTMF.

// ErrNoDialog is returned when a digit cannot be sent because the call is
// not answered yet.
var ErrNoDialog = errors.New("sip: no confirmed dialog to send DTMF in")

// dtmfEndpoint is what an RTP endpoint offers for DTMF (media.RTPEndpoint).
type dtmfEndpoint interface {
	CanSendDTMF() bool
	SendDTMF(ctx context.Context, digit rune, d time.Duration) error
	SetDTMFHandler(h media.DTMFHandler)
}

var (
	_ signalling.DTMFSender = (*Leg)(nil)
	_ signalling.DTMFSender = (*InLeg)(nil)
	_ dtmfEndpoint          = (*media.RTPEndpoint)(nil)
)

// watchDTMF makes ep post the digits it decodes through post.
func watchDTMF(ep media.Endpoint, post func(rune, time.Duration)) {
	if de, ok := ep.(dtmfEndpoint); ok {
		de.SetDTMFHandler(post)
	}
}

// SendDTMF implements signalling.DTMFSender: telephone-event in RTP if
// negotiated, else SIP INFO (which blocks for one transaction, at most 4 s).
func (l *Leg) SendDTMF(ctx context.Context, digit rune, d time.Duration) error {
	if _, ok := media.DTMFEvent(digit); !ok {
		return media.ErrDTMFDigit
	}
	l.mu.Lock()
	ep, dlg := l.endpoint, l.dlg
	l.mu.Unlock()
	if de, ok := ep.(dtmfEndpoint); ok && de.CanSendDTMF() {
		return de.SendDTMF(ctx, digit, d)
	}
	if dlg == nil || dlg.InviteResponse == nil || dlg.InviteResponse.Contact() == nil {
		return ErrNoDialog
	}
	return sendInfo(ctx, dlg, dlg.InviteResponse.Contact().Address, digit, d)
}

// postDTMF posts a received digit to the call.
func (l *Leg) postDTMF(digit rune, d time.Duration) {
	l.post(signalling.Event{Type: signalling.EventDTMF, Digit: digit, Duration: d})
}

// SendDTMF implements signalling.DTMFSender, as for Leg.
func (l *InLeg) SendDTMF(ctx context.Context, digit rune, d time.Duration) error {
	if _, ok := media.DTMFEvent(digit); !ok {
		return media.ErrDTMFDigit
	}
	l.mu.Lock()
	ms, answered := l.session, l.answered
	l.mu.Unlock()
	if ms != nil {
		if de, ok := ms.Endpoint().(dtmfEndpoint); ok && de.CanSendDTMF() {
			return de.SendDTMF(ctx, digit, d)
		}
	}
	if !answered || l.dlg.InviteRequest.Contact() == nil {
		return ErrNoDialog
	}
	return sendInfo(ctx, l.dlg, l.dlg.InviteRequest.Contact().Address, digit, d)
}

// postDTMF posts a received digit to the call.
func (l *InLeg) postDTMF(digit rune, d time.Duration) {
	l.mu.Lock()
	p, closed := l.poster, l.closed
	l.mu.Unlock()
	if p != nil && !closed {
		p.Post(signalling.Event{Leg: l, Type: signalling.EventDTMF, Digit: digit, Duration: d})
	}
}
