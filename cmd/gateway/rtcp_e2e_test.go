package main

import (
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/internal/matrixclient"
	"github.com/matrix-gateway/gateway/signalling/store"
)

// RTCP against a real SIP peer: during a call of several seconds baresip
// and the gateway exchange sender/receiver reports on the RTCP ports, so
// the call record carries the round trip to the phone (LSR/DLSR), its
// jitter and a MOS for each side.
func TestE2ERTCPWithBaresip(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real peers; not run with -short")
	}
	e := startE2E(t)
	ghost, room := e.dmWith(e.alice, numAnswer)
	call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: ghost, ToneHz: userToneHz})
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, call.Answered(), 20*time.Second, "m.call.answer")
	if _, err := e.answer.WaitEvent(ctxT(t, 10*time.Second), "CALL_ESTABLISHED"); err != nil {
		t.Fatal(err)
	}
	// Our first report goes out after 1.25-3.75 s, baresip reports every
	// few seconds: 12 s leaves room for an SR from us and an RR about it.
	time.Sleep(12 * time.Second)
	if err := call.Hangup(ctxT(t, 10*time.Second), "user_hangup"); err != nil {
		t.Fatal(err)
	}
	r := waitRecord(t, e, numAnswer, store.StateEnded, nil)
	t.Logf("health: phone jitter %.2f ms RTT %.2f ms MOS %.2f lost by peer %d; matrix jitter %.2f ms RTT %.2f ms MOS %.2f",
		r.PhoneJitterMS, r.PhoneRTTMS, r.PhoneMOS, r.PhoneLostByPeer, r.MatrixJitterMS, r.MatrixRTTMS, r.MatrixMOS)
	if r.PhoneRTTMS <= 0 || r.PhoneRTTMS > 1000 {
		t.Errorf("no plausible RTT to baresip from RTCP: %.3f ms", r.PhoneRTTMS)
	}
	// The Matrix side's round trip, from the client's receiver reports about
	// the sender reports pion sends for the gateway.
	if r.MatrixRTTMS <= 0 || r.MatrixRTTMS > 1000 {
		t.Errorf("no plausible RTT to the Matrix client from RTCP: %.3f ms", r.MatrixRTTMS)
	}
	if r.PhoneMOS < 4 || r.MatrixMOS < 3.5 || r.PhoneLostByPeer != 0 {
		t.Errorf("health on a clean loopback call: %+v", r)
	}
}
