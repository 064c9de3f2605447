package modem

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/modem/modemtest"
	"github.com/matrix-gateway/gateway/signalling"
)

// farEP is the far end of an IP call (a PCMU trunk: 8 kHz only): it talks
// a tone into whatever it is bridged to and keeps what it hears.
type farEP struct {
	mu   sync.Mutex
	sink media.PCMWriter
	got  []int16
	stop chan struct{}
}

func (e *farEP) Rates() []int                        { return []int{8000} }
func (e *farEP) Writer(int) (media.PCMWriter, error) { return e, nil }
func (e *farEP) String() string                      { return "far/8000" }
func (e *farEP) SetSink(_ int, w media.PCMWriter) error {
	e.mu.Lock()
	e.sink = w
	e.mu.Unlock()
	return nil
}
func (e *farEP) WritePCM(pcm []int16) error {
	e.mu.Lock()
	if len(e.got) < 8000*30 {
		e.got = append(e.got, pcm...)
	}
	e.mu.Unlock()
	return nil
}

func (e *farEP) talk(freq float64) {
	frame := make([]int16, 160)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	ph := 0.0
	for range 1000 {
		select {
		case <-e.stop:
			return
		case <-tick.C:
		}
		for i := range frame {
			frame[i] = int16(8000 * math.Sin(ph))
			ph += 2 * math.Pi * freq / 8000
		}
		e.mu.Lock()
		w := e.sink
		e.mu.Unlock()
		if w != nil {
			_ = w.WritePCM(frame)
		}
	}
}

func (e *farEP) heard() []int16 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]int16(nil), e.got...)
}

// answeringIP is an IP route whose leg answers at once.
type answeringIP struct {
	ep     *farEP
	mu     sync.Mutex
	hungUp bool
}

func (d *answeringIP) Route(context.Context, signalling.Party, signalling.Party) (signalling.Dialer, error) {
	return d, nil
}

func (d *answeringIP) Dial(_ context.Context, _ signalling.DialRequest, p signalling.Poster) (signalling.Leg, error) {
	l := &farLeg{d: d}
	go p.Post(signalling.Event{Leg: l, Type: signalling.EventAnswered})
	return l, nil
}

type farLeg struct{ d *answeringIP }

func (l *farLeg) Kind() string                 { return "sip" }
func (l *farLeg) Answer(context.Context) error { return nil }
func (l *farLeg) Audio() media.Endpoint        { return l.d.ep }
func (l *farLeg) Hangup(context.Context, signalling.Cause) {
	l.d.mu.Lock()
	l.d.hungUp = true
	l.d.mu.Unlock()
}

// TestDiallerBridgesPhoneAudioToIPCalls: a call the dialler places over IP
// is bridged, once answered, to the phone's microphone and speaker
// (dialler audio device, 16 kHz FIFOs here) and the 8 kHz far end: each
// side hears the other; hangup closes the device.
func TestDiallerBridgesPhoneAudioToIPCalls(t *testing.T) {
	session := modemtest.StartBus(t)
	dev := modemtest.NewPCMDevice(t, 16000)
	dev.Start(1000, 20*time.Second) // the user talking into the phone
	far := &farEP{stop: make(chan struct{})}
	defer close(far.stop)
	go far.talk(440)
	ip := &answeringIP{ep: far}
	d, err := NewDialler(DiallerConfig{
		Conn: session.Conn(t), Router: ip, From: signalling.Party{DisplayName: "phone"},
		LocalAudio: &AudioConfig{Device: dev.Device(), Rate: 16000},
		Log:        zerolog.New(zerolog.NewTestWriter(t)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	id, _, err := d.Dial(context.Background(), "+15550100")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500 && !dev.Opened(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !dev.Opened() {
		t.Fatal("the dialler did not open the phone's audio device")
	}
	time.Sleep(2 * time.Second)
	if got := far.heard(); len(got) < 8000 || media.Goertzel(got[len(got)-8000:], 8000, 1000) < 0.5 {
		t.Errorf("the far end does not hear the phone's microphone (%d samples)", len(got))
	}
	played := dev.Played()
	if len(played) < 16000 || media.Goertzel(played[len(played)-16000:], 16000, 440) < 0.5 {
		t.Errorf("the phone's speaker does not play the far end (%d samples)", len(played))
	}
	c := d.call(id)
	if c == nil {
		t.Fatal("call not listed")
	}
	c.hangup(signalling.CauseNormal)
	c.mu.Lock()
	local := c.local
	c.mu.Unlock()
	if local != nil {
		t.Error("the phone's audio is still bridged after hangup")
	}
	ip.mu.Lock()
	hung := ip.hungUp
	ip.mu.Unlock()
	if !hung {
		t.Error("the IP leg was not hung up")
	}
}
