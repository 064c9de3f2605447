package testpeers

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestSippBusy(t *testing.T) {
	uas := StartSippUAS(t, SippBusy, SippOptions{})
	caller := StartBaresip(t, BaresipOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := caller.Dial(ctx, uas.URI("+4930123")); err != nil {
		t.Fatal(err)
	}
	ev, err := caller.WaitEvent(ctx, "CALL_CLOSED")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ev.Param, "486") {
		t.Fatalf("CALL_CLOSED %q, want 486", ev.Param)
	}
	if err := uas.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestSippNeverAnswer(t *testing.T) {
	uas := StartSippUAS(t, SippNeverAnswer, SippOptions{})
	caller := StartBaresip(t, BaresipOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := caller.Dial(ctx, uas.URI("+4930123")); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.WaitEvent(ctx, "CALL_RINGING"); err != nil {
		t.Fatal(err)
	}
	if err := caller.Hangup(ctx); err != nil { // CANCEL
		t.Fatal(err)
	}
	if err := uas.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if msgs := uas.Messages(); !strings.Contains(msgs, "487 Request Terminated") || !strings.Contains(msgs, "CANCEL sip:") {
		t.Fatalf("sipp trace lacks CANCEL/487:\n%s", msgs)
	}
}
