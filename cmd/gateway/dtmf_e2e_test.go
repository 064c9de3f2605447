package main

import (
	"strings"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/internal/matrixclient"
)

// TestE2EDTMF sends digits both ways through the gateway between the Go
// Matrix client (RFC 4733 on the WebRTC track) and baresip (RFC 4733 on the
// SIP leg's RTP): each side must receive every digit once and in order.
func TestE2EDTMF(t *testing.T) {
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
		t.Fatalf("baresip did not establish the call: %v", err)
	}
	time.Sleep(time.Second) // media flowing both ways

	t.Run("Matrix to phone", func(t *testing.T) {
		const digits = "159*0#D"
		if err := call.SendDTMF(digits); err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		ctx := ctxT(t, 15*time.Second)
		for got.Len() < len(digits) {
			ev, err := e.answer.WaitEvent(ctx, "CALL_DTMF_START")
			if err != nil {
				t.Fatalf("phone received %q of %q: %v", got.String(), digits, err)
			}
			got.WriteString(ev.Param)
		}
		if got.String() != digits {
			t.Errorf("phone received %q, want %q", got.String(), digits)
		}
		// No digit arrives twice: nothing more after a quiet second.
		time.Sleep(time.Second)
		if ev, err := e.answer.WaitEvent(ctxT(t, time.Second), "CALL_DTMF_START"); err == nil {
			t.Errorf("phone received an extra digit %q", ev.Param)
		}
	})

	t.Run("phone to Matrix", func(t *testing.T) {
		const digits = "2468#*A"
		for _, d := range digits {
			if _, err := e.answer.Command(ctxT(t, 5*time.Second), "sndcode", string(d)); err != nil {
				t.Fatalf("baresip sndcode %c: %v", d, err)
			}
			time.Sleep(300 * time.Millisecond)
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(call.Digits()) < len(digits) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // any duplicate would arrive by now
		if got := call.Digits(); got != digits {
			t.Errorf("Matrix client received %q, want %q", got, digits)
		}
	})

	if err := call.Hangup(ctxT(t, 10*time.Second), "user_hangup"); err != nil {
		t.Fatal(err)
	}
}
