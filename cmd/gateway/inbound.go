package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/signalling"
	"github.com/matrix-gateway/gateway/signalling/conference"
	"github.com/matrix-gateway/gateway/signalling/matrix"
	"github.com/matrix-gateway/gateway/sip"
)

// inboundConfig wires calls from trunks to the Matrix users the
// configuration routes their dialled numbers to.
func inboundConfig(cfg *configs.Config, mf sip.MediaFactory, mgr *signalling.Manager, conn *matrix.Connector, confs *conference.Registry) sip.InboundConfig {
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
			if confs != nil {
				if handled, err := acceptConference(cfg, mgr, confs, l, call, dialled); handled {
					return err
				}
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

// startRegistrations registers with every trunk that asks for it and
// exports each registration's state as gateway_sip_registered{trunk}.
func startRegistrations(cfg *configs.Config, ua *sip.UA, reg prometheus.Registerer) ([]*sip.Registration, error) {
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gateway_sip_registered", Help: "1 while the registration with a trunk is current.",
	}, []string{"trunk"})
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_sip_registration_failures_total", Help: "Failed REGISTER attempts, by trunk.",
	}, []string{"trunk"})
	reg.MustRegister(gauge, failures)
	var out []*sip.Registration
	for i := range cfg.SIP.Trunks {
		t := &cfg.SIP.Trunks[i]
		if !t.Register {
			continue
		}
		r, err := ua.Register(sip.RegisterConfig{
			Trunk: t.Name, Host: t.Host, Port: t.Port, Transport: t.Transport,
			User: t.RegistrationUser(), Domain: t.FromHost(), Username: t.Username, Password: t.Password.Reveal(),
			Expires: t.RegisterExpires,
		}, func(st sip.RegistrationStatus) {
			if st.Registered {
				gauge.WithLabelValues(st.Trunk).Set(1)
			} else {
				gauge.WithLabelValues(st.Trunk).Set(0)
				failures.WithLabelValues(st.Trunk).Inc()
			}
		})
		if err != nil {
			for _, x := range out {
				x.Close()
			}
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// acceptConference takes calls for conferences: a trusted trunk naming the
// room in the room header joins it directly; a call to a dial-in number
// gets the PIN prompt. handled is false for every other call.
func acceptConference(cfg *configs.Config, mgr *signalling.Manager, confs *conference.Registry, l *sip.InLeg, call sip.InboundCall, dialled string) (handled bool, err error) {
	var dialer signalling.Dialer
	cc := &cfg.Conferences
	if room := call.Header(cc.RoomHeader); room != "" && cc.TrustsRoomHeader(call.Trunk) {
		d, err := confs.JoinDialer(room, "sip", "header")
		if err != nil {
			return true, signalling.NewCauseError(signalling.CauseNotFound, "room "+room+" named in "+cc.RoomHeader, err)
		}
		dialer = d
	} else if confs.IsDialIn(dialled) {
		dialer = confs.IVRDialer()
	} else {
		return false, nil
	}
	_, err = mgr.Originate(context.Background(), signalling.OriginateRequest{
		From:      call.From,
		To:        signalling.Party{Number: dialled, DisplayName: "conference"},
		Direction: signalling.DirectionConference,
		Inbound:   true,
		Dialer:    dialer,
		NewInbound: func(c *signalling.Call) (signalling.Leg, error) {
			l.Bind(c)
			return l, nil
		},
	})
	return true, err
}
