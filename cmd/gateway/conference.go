package main

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/signalling"
	"github.com/matrix-gateway/gateway/signalling/conference"
	"github.com/matrix-gateway/gateway/signalling/matrix"
	"github.com/matrix-gateway/gateway/signalling/store"
)

// newConferences makes the conference registry and adds the conferences
// the configuration lists.
func newConferences(cfg *configs.Config, log zerolog.Logger, mgr *signalling.Manager, st *store.Store, conn *matrix.Connector, metrics prometheus.Registerer) (*conference.Registry, error) {
	cc := cfg.Conferences
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg, err := conference.NewRegistry(ctx, conference.Config{
		Log: log, Manager: mgr, Store: st, Announce: conn.ConferenceAnnouncer(),
		DialIn: cc.DialIn, Rate: cc.MixRate, MaxParticipants: cc.MaxParticipants, MaxSpeakers: cc.MaxSpeakers,
		PINDigits: cc.PINDigits, PINAttempts: cc.PINAttempts, PINTimeout: cc.PINTimeout,
		PINFailures: cc.PINFailures, PINFailureWindow: cc.PINFailureWindow, DialOutTimeout: cc.DialOutTimeout,
		Metrics: metrics, MatrixDialer: conn.Dialer(cfg.Inbound.RingTimeout),
	})
	if err != nil {
		return nil, err
	}
	for i, r := range cc.Rooms {
		if err := reg.Ensure(ctx, r.Room, r.PIN); err != nil {
			reg.Close()
			return nil, fmt.Errorf("conferences.rooms[%d]: %w", i, err)
		}
	}
	return reg, nil
}
