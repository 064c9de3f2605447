package main

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/signalling"
)

// timings collects call records for measurements.
type timings struct {
	mu   sync.Mutex
	recs []signalling.CallRecord
}

func (t *timings) CallStarted(signalling.CallRecord)  {}
func (t *timings) CallAnswered(signalling.CallRecord) {}
func (t *timings) CallEnded(r signalling.CallRecord) {
	t.mu.Lock()
	t.recs = append(t.recs, r)
	t.mu.Unlock()
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*q+0.5)]
}

// TestMeasureInboundSetup measures the gateway's own share of setting up a
// call from a phone to a Matrix user, over real peers on loopback: from the
// INVITE (call start) to m.call.invite sent (the Matrix leg reports ringing
// right after sending it), and from the Matrix answer to the 200 OK sent and
// ACKed with audio bridged. It is a measurement, not a test: it only runs
// with GATEWAY_MEASURE=1 and asserts nothing about the figures.
func TestMeasureInboundSetup(t *testing.T) {
	if os.Getenv("GATEWAY_MEASURE") != "1" {
		t.Skip("measurement; run with GATEWAY_MEASURE=1")
	}
	e := startE2E(t)
	e.alice.SetAutoJoin(true)
	tm := &timings{}
	e.gw.manager.AddRecorder(tm)
	phone := callerPhone(t)
	const n = 30
	for i := 0; i < n; i++ {
		if err := phone.Dial(ctxT(t, 5*time.Second), e.dialURI(didAlice)); err != nil {
			t.Fatal(err)
		}
		inc, err := e.alice.WaitIncoming(ctxT(t, 30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		call, err := inc.Answer(ctxT(t, 10*time.Second), "alice-dev1", userToneHz)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := phone.WaitEvent(ctxT(t, 10*time.Second), "CALL_ESTABLISHED"); err != nil {
			t.Fatal(err)
		}
		if err := call.Hangup(ctxT(t, 10*time.Second), "user_hangup"); err != nil {
			t.Fatal(err)
		}
		if _, err := phone.WaitEvent(ctxT(t, 10*time.Second), "CALL_CLOSED"); err != nil {
			t.Fatal(err)
		}
		waitNoCalls(t, e)
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	var ringing, answer []time.Duration
	for i, r := range tm.recs {
		if r.Direction != signalling.DirectionToMatrix || r.Ringing.IsZero() || r.Bridged.IsZero() {
			continue
		}
		if i == 0 {
			continue // the first call also creates the DM room
		}
		ringing = append(ringing, r.Ringing.Sub(r.Started))
		answer = append(answer, r.Bridged.Sub(r.Answered))
	}
	if len(ringing) == 0 {
		t.Fatal("no complete call records")
	}
	var b strings.Builder
	b.WriteString("inbound set-up inside the gateway, calls after the first (DM room exists):\n")
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"INVITE in -> m.call.invite sent", ringing}, {"m.call.answer in -> 200 OK ACKed, audio bridged", answer}} {
		b.WriteString(m.name + ": ")
		b.WriteString("n=" + strconv.Itoa(len(m.d)) + " p50=" + quantile(m.d, 0.5).Round(10*time.Microsecond).String() +
			" p99=" + quantile(m.d, 0.99).Round(10*time.Microsecond).String() + "\n")
	}
	t.Log(b.String())
	// Where the time goes: the Matrix leg logs its set-up steps.
	if data, err := os.ReadFile(e.logPath); err == nil {
		lines := strings.Split(string(data), "\n")
		n := 0
		for i := len(lines) - 1; i >= 0 && n < 3; i-- {
			if strings.Contains(lines[i], "ringing the Matrix user") {
				t.Log(lines[i])
				n++
			}
		}
	}
}
