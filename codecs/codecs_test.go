package codecs_test

import (
	"errors"
	"testing"

	"github.com/matrix-gateway/gateway/codecs"
	"github.com/matrix-gateway/gateway/media"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		name, rtpmap string
		pt           uint8
		dynamic      bool
		rates        []int
	}{
		{"PCMU", "PCMU/8000", 0, false, []int{8000}},
		{"pcma", "PCMA/8000", 8, false, []int{8000}},
		{"OPUS", "opus/48000/2", 111, true, []int{48000, 24000, 16000, 12000, 8000}},
		{"g722", "G722/8000", 9, false, []int{16000}},
	}
	for _, tt := range tests {
		c, err := codecs.Lookup(tt.name)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", tt.name, err)
		}
		if c.String() != tt.rtpmap || c.PayloadType != tt.pt || c.Dynamic != tt.dynamic {
			t.Errorf("%s: got %s pt %d dynamic %v", tt.name, c, c.PayloadType, c.Dynamic)
		}
		if len(c.Rates) != len(tt.rates) {
			t.Fatalf("%s rates %v, want %v", tt.name, c.Rates, tt.rates)
		}
		for i := range tt.rates {
			if c.Rates[i] != tt.rates[i] || !c.SupportsRate(tt.rates[i]) {
				t.Errorf("%s rates %v, want %v", tt.name, c.Rates, tt.rates)
			}
		}
	}
	if _, err := codecs.Lookup("G729"); !errors.Is(err, codecs.ErrUnknown) {
		t.Errorf("Lookup(G729): %v", err)
	}
	if codecs.PCMU.SupportsRate(16000) {
		t.Error("PCMU claims 16 kHz")
	}
}

// A 1000 Hz tone through every codec at every native rate, through the
// generic interfaces, with one concealed frame in the middle.
func TestToneThroughEveryCodec(t *testing.T) {
	for _, c := range codecs.All() {
		for _, rate := range c.Rates {
			enc, err := c.NewEncoder(rate)
			if err != nil {
				t.Fatalf("%s encoder at %d: %v", c, rate, err)
			}
			dec, err := c.NewDecoder(rate)
			if err != nil {
				t.Fatalf("%s decoder at %d: %v", c, rate, err)
			}
			gen := media.NewToneGenerator(1000, rate)
			frame := make([]int16, media.SamplesPerFrame(rate))
			payload := make([]byte, c.MaxPayload)
			pcm := make([]int16, rate*120/1000)
			var out []int16
			for i := range 30 {
				gen.Fill(frame)
				n, err := enc.Encode(frame, payload)
				if err != nil || n == 0 || n > c.MaxPayload {
					t.Fatalf("%s encode at %d: %d %v", c, rate, n, err)
				}
				if i == 20 {
					n, err = dec.Conceal(pcm[:len(frame)])
				} else {
					n, err = dec.Decode(payload[:n], pcm)
				}
				if err != nil || n != len(frame) {
					t.Fatalf("%s decode at %d: %d %v", c, rate, n, err)
				}
				out = append(out, pcm[:n]...)
			}
			steady := out[len(out)/3:]
			if g := media.Goertzel(steady, rate, 1000); g < 0.7 {
				t.Errorf("%s at %d Hz: 1000 Hz fraction %.3f", c, rate, g)
			}
			if g := media.Goertzel(steady, rate, 440); g > 0.05 {
				t.Errorf("%s at %d Hz: 440 Hz fraction %.3f in a 1000 Hz tone", c, rate, g)
			}
		}
		if _, err := c.NewEncoder(44100); err == nil {
			t.Errorf("%s encoder accepted 44.1 kHz", c)
		}
		if _, err := c.NewDecoder(44100); err == nil {
			t.Errorf("%s decoder accepted 44.1 kHz", c)
		}
	}
}
