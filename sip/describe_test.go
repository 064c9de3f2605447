package sip

import (
	"context"
	"testing"

	"github.com/emiago/sipgo"
	sipgosip "github.com/emiago/sipgo/sip"

	"github.com/matrix-gateway/gateway/signalling"
)

func TestDescribeAnsweredLeg(t *testing.T) {
	ft, _, _, leg, _ := dialAnswered(t, "udp")
	var r signalling.CallRecord
	leg.(*Leg).Describe(&r)
	if r.Trunk != "test" || r.SIPCallID != string(leg.(*Leg).SIPCallID()) || r.SIPStatus != 200 || r.PhoneCodec != "fake/8000" {
		t.Errorf("answered: %+v", r)
	}
	leg.Hangup(context.Background(), signalling.CauseNormal)
	recv(t, ft.byes, "BYE")
	waitDone(t, leg)
	// After the leg ended (Audio is nil) the record still has its side.
	var after signalling.CallRecord
	leg.(*Leg).Describe(&after)
	if leg.Audio() != nil || after.PhoneCodec != "fake/8000" || after.SIPStatus != 200 || after.SIPCallID == "" {
		t.Errorf("after hangup: %+v", after)
	}
}

func TestDescribeFailedLeg(t *testing.T) {
	ft := newFakeTrunk(t, func(ft *fakeTrunk, d *sipgo.DialogServerSession, req *sipgosip.Request, tx sipgosip.ServerTransaction) {
		_ = d.Respond(486, "Busy Here", nil)
	})
	u := newTestUA(t)
	rec := newRecorder()
	leg, err := u.Dialer(testTrunk(ft.port, "udp"), &fakeMedia{}).Dial(context.Background(), testRequest(), rec)
	if err != nil {
		t.Fatal(err)
	}
	rec.expect(t, signalling.EventHangup, evWait)
	var r signalling.CallRecord
	leg.(*Leg).Describe(&r)
	if r.SIPStatus != 486 || r.Trunk != "test" || r.PhoneCodec != "" || r.PhonePacketsIn != 0 {
		t.Errorf("busy: %+v", r)
	}
	waitDone(t, leg)
}
