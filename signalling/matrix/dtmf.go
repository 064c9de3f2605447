package matrix

import (
	"context"
	"errors"
	"time"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
)

// DTMF on Matrix legs: RFC 4733 telephone-event on the WebRTC audio track,
// sent and received by the leg's RTP endpoint.

// dtmfAudio is what a Matrix leg's audio endpoint offers for DTMF
// (media.RTPEndpoint configured with media.WebRTCEventPayloadType).
type dtmfAudio interface {
	CanSendDTMF() bool
	SendDTMF(ctx context.Context, digit rune, d time.Duration) error
	SetDTMFHandler(h media.DTMFHandler)
}

// ErrNoDTMF is returned when the Matrix leg's audio cannot carry DTMF.
var ErrNoDTMF = errors.New("matrix: the call's audio carries no DTMF")

var (
	_ signalling.DTMFSender = (*session)(nil)
	_ signalling.DTMFSender = (*outCall)(nil)
)

// watchDTMF makes audio post the digits the Matrix peer sends as leg's events.
func watchDTMF(audio AudioEndpoint, p signalling.Poster, leg signalling.Leg) {
	if da, ok := audio.(dtmfAudio); ok && p != nil {
		da.SetDTMFHandler(func(digit rune, d time.Duration) {
			p.Post(signalling.Event{Leg: leg, Type: signalling.EventDTMF, Digit: digit, Duration: d})
		})
	}
}

func sendDTMF(ctx context.Context, audio AudioEndpoint, digit rune, d time.Duration) error {
	da, ok := audio.(dtmfAudio)
	if !ok || !da.CanSendDTMF() {
		return ErrNoDTMF
	}
	return da.SendDTMF(ctx, digit, d)
}

// SendDTMF implements signalling.DTMFSender.
func (s *session) SendDTMF(ctx context.Context, digit rune, d time.Duration) error {
	s.mu.Lock()
	audio := s.audio
	s.mu.Unlock()
	return sendDTMF(ctx, audio, digit, d)
}

// SendDTMF implements signalling.DTMFSender.
func (oc *outCall) SendDTMF(ctx context.Context, digit rune, d time.Duration) error {
	oc.mu.Lock()
	audio := oc.audio
	oc.mu.Unlock()
	return sendDTMF(ctx, audio, digit, d)
}
