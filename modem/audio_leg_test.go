package modem

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/modem/modemtest"
	"github.com/matrix-gateway/gateway/modem/modemtest/fakeat"
	"github.com/matrix-gateway/gateway/signalling"
)

// TestLegCarriesAudio drives the real ModemManager on the fake modem with
// a files: audio device made of two FIFOs: an outgoing call opens the audio
// before EventAnswered and carries tones both ways until hangup; a device
// that cannot be opened ends a call with media_failed; an incoming call
// opens its audio in Answer; the end of the capture stream ends the call.
func TestLegCarriesAudio(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	log := zerolog.New(zerolog.NewTestWriter(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()

	t.Run("outgoing", func(t *testing.T) {
		dev := modemtest.NewPCMDevice(t, 8000)
		dev.Start(1000, 20*time.Second)
		a := &AudioConfig{Device: dev.Device(), Rate: 8000, Log: log}
		rec := newRecorder()
		d := &Dialer{Client: r.client, Audio: a}
		l, err := d.Dial(ctx, signalling.DialRequest{To: signalling.Party{Number: "+15550100500"}}, rec)
		if err != nil {
			t.Fatal(err)
		}
		leg := l.(*Leg)
		if _, ok := leg.Audio().(ControlOnlyAudio); !ok {
			t.Errorf("audio before answer: %v", leg.Audio())
		}
		waitFake(t, r.fake, "dial", func(f *fakeat.Modem) bool { return len(f.Calls()) == 1 })
		if err := r.fake.RemoteAnswer(); err != nil {
			t.Fatal(err)
		}
		rec.next(t, signalling.EventAnswered)
		ep, ok := leg.Audio().(*media.StreamEndpoint)
		if !ok {
			t.Fatalf("audio at EventAnswered: %v", leg.Audio())
		}
		for i := 0; i < 100 && !dev.Opened(); i++ { // the device side marks its opens just after ours
			time.Sleep(10 * time.Millisecond)
		}
		if !dev.Opened() {
			t.Fatal("the device's FIFOs were not opened")
		}
		if !strings.Contains(ep.String(), "files:") {
			t.Errorf("endpoint %q", ep)
		}
		det := media.NewToneDetector(1000, 8000)
		if err := ep.SetSink(8000, det); err != nil {
			t.Fatal(err)
		}
		w, err := ep.Writer(8000)
		if err != nil {
			t.Fatal(err)
		}
		g := media.NewToneGenerator(440, 8000)
		frame := make([]int16, 160)
		tick := time.NewTicker(20 * time.Millisecond)
		for i := 0; i < 75; i++ { // 1.5 s
			<-tick.C
			g.Fill(frame)
			_ = w.WritePCM(frame)
		}
		tick.Stop()
		time.Sleep(200 * time.Millisecond)
		if h, b := det.Hits(), det.Blocks(); b < 10 || h < b-2 {
			t.Errorf("far phone's 1000 Hz at the gateway: %d of %d blocks", h, b)
		}
		played := dev.Played()
		if len(played) < 8000 || media.Goertzel(played[len(played)/4:], 8000, 440) < 0.9 {
			t.Errorf("gateway's 440 Hz at the far phone: %d samples, level %.3f", len(played), media.Goertzel(played, 8000, 440))
		}
		var rcd signalling.CallRecord
		leg.Describe(&rcd)
		if !strings.HasPrefix(rcd.PhoneCodec, "gsm pcm/8000 files:") || rcd.PhonePacketsIn < 50 {
			t.Errorf("record: codec %q, frames in %d", rcd.PhoneCodec, rcd.PhonePacketsIn)
		}
		leg.Hangup(ctx, signalling.CauseNormal)
		waitFake(t, r.fake, "hangup", func(f *fakeat.Modem) bool { return len(f.Calls()) == 0 })
		select {
		case <-ep.Done():
		default:
			t.Error("audio still open after Hangup")
		}
	})

	t.Run("device cannot be opened", func(t *testing.T) {
		dir := t.TempDir()
		a := &AudioConfig{Device: "files:" + filepath.Join(dir, "no-capture") + "," + filepath.Join(dir, "no-playback"), Log: log}
		rec := newRecorder()
		d := &Dialer{Client: r.client, Audio: a}
		l, err := d.Dial(ctx, signalling.DialRequest{To: signalling.Party{Number: "+15550100501"}}, rec)
		if err != nil {
			t.Fatal(err)
		}
		waitFake(t, r.fake, "dial", func(f *fakeat.Modem) bool { return len(f.Calls()) == 1 })
		if err := r.fake.RemoteAnswer(); err != nil {
			t.Fatal(err)
		}
		ev := <-waitEvent(t, rec, signalling.EventHangup, signalling.EventAnswered)
		if ev.Type != signalling.EventHangup || ev.Cause != signalling.CauseMediaFailed || !strings.Contains(ev.Detail, "no-capture") {
			t.Fatalf("event %s %s %q, want hangup media_failed naming the device", ev.Type, ev.Cause, ev.Detail)
		}
		l.Hangup(ctx, ev.Cause) // as the call does after the leg's hangup
		waitFake(t, r.fake, "hangup", func(f *fakeat.Modem) bool { return len(f.Calls()) == 0 })
	})

	t.Run("incoming then the capture ends", func(t *testing.T) {
		dev := modemtest.NewPCMDevice(t, 16000)
		dev.Start(1000, 20*time.Second)
		calls := make(chan *Call, 1)
		r.client.OnIncoming(func(c *Call) { calls <- c })
		defer r.client.OnIncoming(nil)
		if err := r.fake.Ring("+15550100502"); err != nil {
			t.Fatal(err)
		}
		var call *Call
		select {
		case call = <-calls:
		case <-time.After(wait):
			t.Fatal("no incoming call")
		}
		rec := newRecorder()
		leg := NewLeg(call, rec, WithAudio(&AudioConfig{Device: dev.Device(), Rate: 16000, Log: log}))
		defer leg.Hangup(context.Background(), signalling.CauseNormal)
		if err := leg.Answer(ctx); err != nil {
			t.Fatal(err)
		}
		ep, ok := leg.Audio().(*media.StreamEndpoint)
		if !ok || ep.Rates()[0] != 16000 {
			t.Fatalf("audio after Answer: %v", leg.Audio())
		}
		det := media.NewToneDetector(1000, 16000)
		_ = ep.SetSink(16000, det)
		deadline := time.Now().Add(10 * time.Second)
		for det.Hits() < 5 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if det.Hits() < 5 {
			t.Errorf("1000 Hz at 16 kHz: %d of %d blocks", det.Hits(), det.Blocks())
		}
		dev.StopCapture()
		ev := rec.next(t, signalling.EventHangup)
		if ev.Cause != signalling.CauseMediaFailed || !strings.Contains(ev.Detail, "audio capture") {
			t.Errorf("capture end: %s %q, want media_failed", ev.Cause, ev.Detail)
		}
		leg.Hangup(ctx, ev.Cause)
		waitFake(t, r.fake, "hangup", func(f *fakeat.Modem) bool { return len(f.Calls()) == 0 })
	})
}

// waitEvent returns the first event of one of the types, bounded.
func waitEvent(t *testing.T, rec *recorder, types ...signalling.EventType) <-chan signalling.Event {
	t.Helper()
	out := make(chan signalling.Event, 1)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case ev := <-rec.ch:
			for _, ty := range types {
				if ev.Type == ty {
					out <- ev
					return out
				}
			}
		case <-timer.C:
			t.Fatalf("no %v event within %s", types, wait)
		}
	}
}
