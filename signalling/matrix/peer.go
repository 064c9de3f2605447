package matrix

import (
	"context"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gateway/gateway/media"
)

// What both kinds of Matrix call (the ghost called, the ghost calling) do
// with their WebRTC peer.

// addCandidates gives the peer's ICE agent remote candidates, the
// end-of-candidates marker included.
func addCandidates(log *zerolog.Logger, peer *media.Peer, cands []Candidate) {
	for i := range cands {
		c := &cands[i]
		if err := peer.AddCandidate(c.Candidate, c.SDPMid, c.SDPMLineIndex); err != nil {
			log.Debug().Err(err).Msg("remote candidate refused")
		}
	}
}

// answerNegotiation applies a renegotiation offer (hold, resume, ICE
// restart) and sends the answer as m.call.negotiate.
// A hold (the offer says the peer sends nothing) pauses audio's dead-media
// watch; resuming restarts it.
func (c *Connector) answerNegotiation(log *zerolog.Logger, intent *appservice.IntentAPI, room id.RoomID,
	common Common, peer *media.Peer, audio AudioEndpoint, v *Negotiate) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sdp, err := peer.Renegotiate(ctx, v.Description.SDP)
	if err != nil {
		log.Warn().Err(err).Msg("renegotiation failed")
		return
	}
	if audio != nil {
		media.NoteHold(audio, v.Description.SDP)
	}
	lifetime := v.Lifetime
	if lifetime <= 0 {
		lifetime = DefaultLifetime
	}
	if err := c.send(ctx, intent, room, &Negotiate{Common: common,
		Description: SessionDescription{Type: "answer", SDP: sdp}, Lifetime: lifetime}); err != nil {
		log.Warn().Err(err).Msg("sending m.call.negotiate failed")
	}
}
