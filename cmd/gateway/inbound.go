package main

import (
	"context"
	"time"

	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/signalling"
	"github.com/matrix-gateway/gateway/signalling/matrix"
	"github.com/matrix-gateway/gateway/sip"
)

// inboundConfig wires calls from trunks to the Matrix users the
// configuration routes their dialled numbers to.
func inboundConfig(cfg *configs.Config, mf sip.MediaFactory, mgr *signalling.Manager, conn *matrix.Connector) sip.InboundConfig {
	var trunks []sip.InboundTrunk
	for i := range cfg.SIP.Trunks {
		t := &cfg.SIP.Trunks[i]
		trunks = append(trunks, sip.InboundTrunk{
			Name: t.Name, Sources: t.InboundSources(),
			Username: t.InboundUsername, Password: t.InboundPassword.Reveal(),
		})
	}
	toMatrix := conn.Dialer(cfg.Inbound.RingTimeout)
	cc := cfg.Phone.DefaultCountryCode
	return sip.InboundConfig{
		Trunks:          trunks,
		IgnoreUntrusted: cfg.SIP.Untrusted == "ignore",
		Rate:            float64(cfg.SIP.InviteRate),
		Burst:           cfg.SIP.InviteBurst,
		Codecs:          cfg.Media.Codecs,
		DefaultCC:       cc,
		Media:           mf,
		Accept: func(l *sip.InLeg, call sip.InboundCall) error {
			dialled, err := signalling.Normalize(call.Dialled, cc)
			if err != nil {
				return signalling.NewCauseError(signalling.CauseNotFound, "dialled number "+call.Dialled, err)
			}
			user := cfg.InboundUserFor(dialled)
			if user == "" {
				return signalling.NewCauseError(signalling.CauseNotFound, "no route for "+dialled, nil)
			}
			_, err = mgr.Originate(context.Background(), signalling.OriginateRequest{
				From:      call.From,
				To:        signalling.Party{Number: dialled, MatrixUser: user},
				Direction: signalling.DirectionToMatrix,
				Deadline:  time.Now().Add(cfg.Inbound.RingTimeout),
				Inbound:   true,
				Dialer:    toMatrix,
				NewInbound: func(c *signalling.Call) (signalling.Leg, error) {
					l.Bind(c)
					return l, nil
				},
			})
			return err
		},
	}
}
