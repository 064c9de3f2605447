package media

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestGoertzel(t *testing.T) {
	mix := func(a, b []int16) []int16 {
		out := make([]int16, len(a))
		for i := range a {
			out[i] = a[i] + b[i]
		}
		return out
	}
	noise := make([]int16, 1600)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = int16(rng.IntN(8000) - 4000)
	}
	tests := []struct {
		name     string
		pcm      []int16
		rate     int
		freq     float64
		min, max float64
	}{
		{"pure 440 at 8k", Tone(440, 8000, 200, 8000), 8000, 440, 0.98, 1},
		{"pure 1000 at 48k", Tone(1000, 48000, 100, 3000), 48000, 1000, 0.98, 1},
		{"off-bin 437 Hz", Tone(437, 8000, 100, 8000), 8000, 437, 0.98, 1},
		{"440 absent from 1000", Tone(1000, 8000, 200, 8000), 8000, 440, 0, 0.01},
		{"two tones: 440 half", mix(Tone(440, 8000, 200, 4000), Tone(1000, 8000, 200, 4000)), 8000, 440, 0.45, 0.55},
		{"two tones: 1000 half", mix(Tone(440, 8000, 200, 4000), Tone(1000, 8000, 200, 4000)), 8000, 1000, 0.45, 0.55},
		{"noise", noise, 8000, 440, 0, 0.05},
		{"silence", make([]int16, 800), 8000, 440, 0, 0},
		{"empty", nil, 8000, 440, 0, 0},
	}
	for _, tt := range tests {
		g := Goertzel(tt.pcm, tt.rate, tt.freq)
		if g < tt.min || g > tt.max {
			t.Errorf("%s: %.4f not in [%.2f, %.2f]", tt.name, g, tt.min, tt.max)
		}
	}
}

func TestToneDetector(t *testing.T) {
	d := NewToneDetector(440, 8000)
	gen := NewToneGenerator(440, 8000)
	frame := make([]int16, 160)
	// 1 s of tone in 20 ms frames, then 0.5 s of silence, then 0.5 s of 1 kHz.
	for range 50 {
		gen.Fill(frame)
		_ = d.WritePCM(frame)
	}
	_ = d.WritePCM(make([]int16, 4000))
	_ = d.WritePCM(Tone(1000, 8000, 500, 8000))
	if d.Blocks() != 20 || d.Hits() != 10 {
		t.Errorf("blocks %d hits %d, want 20 and 10", d.Blocks(), d.Hits())
	}
	if d.Last() > 0.01 {
		t.Errorf("last fraction %.3f for a 1 kHz block", d.Last())
	}
	quiet := Tone(440, 8000, 100, 50) // below DefaultToneMinRMS
	if d.Present(quiet) {
		t.Error("a -56 dBFS tone counted as present")
	}
	if !d.Present(Tone(440, 8000, 100, 8000)) {
		t.Error("a clean tone is not present")
	}
}

// Frames from the generator join without a phase jump.
func TestToneGeneratorContinuous(t *testing.T) {
	g := NewToneGenerator(440, 8000)
	a := make([]int16, 160)
	b := make([]int16, 160)
	g.Fill(a)
	g.Fill(b)
	want := Tone(440, 8000, 40, 8000)
	for i := range 160 {
		if a[i] != want[i] || b[i] != want[160+i] {
			t.Fatalf("sample %d differs from a continuous tone", i)
		}
	}
	if rms := RMS(want); math.Abs(rms-8000/math.Sqrt2) > 50 {
		t.Errorf("RMS %.1f, want %.1f", rms, 8000/math.Sqrt2)
	}
}
