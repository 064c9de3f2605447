package testpeers

import (
	"context"
	"strings"
	"testing"
	"time"
)

// trimmed drops the first and last 300 ms of a recording (ramp-up, jitter buffer start, hangup).
func trimmed(t *testing.T, samples []int16, rate int) []int16 {
	t.Helper()
	cut := rate * 3 / 10
	if len(samples) < 2*cut+rate/2 {
		t.Fatalf("recording too short: %d samples at %d Hz", len(samples), rate)
	}
	return samples[cut : len(samples)-cut]
}

func TestBaresipCallRecordsTones(t *testing.T) {
	callee := StartBaresip(t, BaresipOptions{Users: []string{"+4930123"}, ToneHz: 440, ToneSeconds: 3})
	caller := StartBaresip(t, BaresipOptions{ToneHz: 1000, ToneSeconds: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if err := caller.Dial(ctx, callee.UserURI("+4930123")); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.WaitEvent(ctx, "CALL_ESTABLISHED"); err != nil {
		t.Fatal(err)
	}
	if ev, err := callee.WaitEvent(ctx, "CALL_ESTABLISHED"); err != nil {
		t.Fatal(err)
	} else if ev.Direction != "incoming" {
		t.Fatalf("callee event direction %q", ev.Direction)
	}
	// The caller's 2 s file ends first and closes the call on both sides.
	for _, p := range []*Baresip{caller, callee} {
		if _, err := p.WaitEvent(ctx, "CALL_CLOSED"); err != nil {
			t.Fatal(err)
		}
	}
	check := func(name string, p *Baresip, want, other float64) {
		t.Helper()
		samples, rate, err := p.LastRecording()
		if err != nil {
			t.Fatal(err)
		}
		s := trimmed(t, samples, rate)
		w, o := ToneRatio(s, rate, want), ToneRatio(s, rate, other)
		t.Logf("%s heard %.2f s: %.0f Hz ratio %.3f, %.0f Hz ratio %.3f, rms %.3f", name, float64(len(samples))/float64(rate), want, w, other, o, RMS(s))
		if w < 0.5 || o > 0.05 {
			t.Errorf("%s: expected the %.0f Hz tone: ratio %.3f (other %.3f)", name, want, w, o)
		}
	}
	check("callee", callee, 1000, 440)
	check("caller", caller, 440, 1000)
}

func TestBaresipBusyRejects(t *testing.T) {
	callee := StartBaresip(t, BaresipOptions{Answer: AnswerBusy})
	caller := StartBaresip(t, BaresipOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := caller.Dial(ctx, callee.URI); err != nil {
		t.Fatal(err)
	}
	ev, err := caller.WaitEvent(ctx, "CALL_CLOSED", "CALL_ESTABLISHED")
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "CALL_CLOSED" || !strings.HasPrefix(ev.Param, "486") {
		t.Fatalf("caller got %s %q, want CALL_CLOSED 486", ev.Type, ev.Param)
	}
}

func TestBaresipManualAnswer(t *testing.T) {
	callee := StartBaresip(t, BaresipOptions{Answer: AnswerManual})
	caller := StartBaresip(t, BaresipOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := caller.Dial(ctx, callee.URI); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.WaitEvent(ctx, "CALL_RINGING"); err != nil {
		t.Fatal(err)
	}
	if _, err := callee.WaitEvent(ctx, "CALL_INCOMING"); err != nil {
		t.Fatal(err)
	}
	if err := callee.Accept(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.WaitEvent(ctx, "CALL_ESTABLISHED"); err != nil {
		t.Fatal(err)
	}
	if err := caller.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := callee.WaitEvent(ctx, "CALL_CLOSED"); err != nil {
		t.Fatal(err)
	}
}
