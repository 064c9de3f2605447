package testpeers

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A bare Dendrite offers no PSTN protocol: the dial-pad lookup must fail cleanly.
func TestBrowserLookupWithoutGateway(t *testing.T) {
	d := StartDendrite(t, DendriteOptions{})
	userID, token := d.RegisterUser(t, "alice", "alicepassword")
	b := StartBrowser(t, BrowserOptions{Homeserver: d.URL, UserID: userID, AccessToken: token, Number: "+4930123", Timeout: 60 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	login, err := b.WaitEvent(ctx, "login")
	if err != nil {
		t.Fatal(err)
	}
	if login.UserID != userID {
		t.Fatalf("logged in as %q, want %q", login.UserID, userID)
	}
	ev, err := b.WaitEvent(ctx, "error")
	if err != nil {
		t.Fatal(err)
	}
	if ev.Stage != "protocols" || !strings.Contains(ev.Message, "no PSTN protocol") {
		t.Fatalf("error %+v, want stage protocols / no PSTN protocol", ev)
	}
	if code, err := b.Wait(ctx); err != nil || code != 1 {
		t.Fatalf("driver exit %d, %v; want 1", code, err)
	}
}

// Two js-sdk clients call each other through Dendrite; each hears the other's tone.
func TestBrowserCallBetweenClients(t *testing.T) {
	d := StartDendrite(t, DendriteOptions{})
	aliceID, aliceTok := d.RegisterUser(t, "alice", "alicepassword")
	bobID, bobTok := d.RegisterUser(t, "bob", "bobpassword")
	dir := t.TempDir()
	aliceWAV, bobWAV := filepath.Join(dir, "alice.wav"), filepath.Join(dir, "bob.wav")
	if err := WriteToneWAV(aliceWAV, 48000, 1000, 0.5, 5); err != nil {
		t.Fatal(err)
	}
	if err := WriteToneWAV(bobWAV, 48000, 440, 0.5, 5); err != nil {
		t.Fatal(err)
	}
	bob := StartBrowser(t, BrowserOptions{Homeserver: d.URL, UserID: bobID, AccessToken: bobTok, Mode: "answer", AudioWAV: bobWAV, Timeout: 90 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if _, err := bob.WaitEvent(ctx, "waiting"); err != nil {
		t.Fatal(err)
	}
	alice := StartBrowser(t, BrowserOptions{Homeserver: d.URL, UserID: aliceID, AccessToken: aliceTok, Invitee: bobID, AudioWAV: aliceWAV, HangupAfter: 5 * time.Second, Timeout: 90 * time.Second})

	for name, b := range map[string]*Browser{"alice": alice, "bob": bob} {
		ev, err := b.WaitEvent(ctx, "state")
		for err == nil && ev.State != "connected" {
			ev, err = b.WaitEvent(ctx, "state")
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// Each side must report the other's tone while connected.
	heard := func(name string, b *Browser, want, other float64) {
		t.Helper()
		for {
			ev, err := b.WaitEvent(ctx, "audio", "hangup")
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if ev.Event == "hangup" {
				t.Fatalf("%s: call ended before the %.0f Hz tone was heard", name, want)
			}
			t.Logf("%s audio: %.1f dBFS, dominant %.0f Hz, tones %v", name, ev.RMSDBFS, ev.DominantHz, ev.Tones)
			if ev.Tone(want) > 0.5 && ev.Tone(other) < 0.1 {
				return
			}
		}
	}
	heard("alice", alice, 440, 1000)
	heard("bob", bob, 1000, 440)
	for name, b := range map[string]*Browser{"alice": alice, "bob": bob} {
		ev, err := b.WaitEvent(ctx, "hangup")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ev.Reason != "user_hangup" {
			t.Errorf("%s: hangup reason %q, want user_hangup", name, ev.Reason)
		}
	}
}
