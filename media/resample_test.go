package media

import (
	"math"
	"testing"
)

// settle is how many output samples to skip before measuring, past the
// filter's start-up transient.
const settle = 200

func dbRatio(a, b float64) float64 { return 20 * math.Log10(a/b) }

func TestUpsampler2xTone(t *testing.T) {
	in := Tone(1000, 8000, 500, 8000)
	var u Upsampler2x
	out := make([]int16, 2*len(in))
	if n := u.Process(out, in); n != len(out) {
		t.Fatalf("Process wrote %d samples, want %d", n, len(out))
	}
	out = out[settle:]
	if g := Goertzel(out, 16000, 1000); g < 0.95 {
		t.Errorf("1 kHz after upsampling: Goertzel %.4f, want >= 0.95", g)
	}
	// The image of 1 kHz at 7 kHz must be suppressed.
	if g := Goertzel(out, 16000, 7000); g > 1e-4 {
		t.Errorf("7 kHz image after upsampling: Goertzel %.6f, want < 1e-4", g)
	}
	// Unity gain: a tone of peak 8000 keeps RMS 8000/sqrt2 within 0.2 dB.
	if d := dbRatio(RMS(out), 8000/math.Sqrt2); math.Abs(d) > 0.2 {
		t.Errorf("upsampler gain %.2f dB, want 0", d)
	}
}

func TestDownsampler2xTone(t *testing.T) {
	in := Tone(1000, 16000, 500, 8000)
	var d Downsampler2x
	out := make([]int16, len(in)/2)
	if n := d.Process(out, in); n != len(out) {
		t.Fatalf("Process wrote %d samples, want %d", n, len(out))
	}
	out = out[settle:]
	if g := Goertzel(out, 8000, 1000); g < 0.95 {
		t.Errorf("1 kHz after downsampling: Goertzel %.4f, want >= 0.95", g)
	}
	if d := dbRatio(RMS(out), 8000/math.Sqrt2); math.Abs(d) > 0.2 {
		t.Errorf("downsampler gain %.2f dB, want 0", d)
	}
}

func TestDownsampler2xRejectsAlias(t *testing.T) {
	// 6 kHz at 16 kHz would fold to 2 kHz at 8 kHz without the filter.
	for _, f := range []float64{4800, 6000, 7000} {
		in := Tone(f, 16000, 500, 16000)
		var d Downsampler2x
		out := make([]int16, len(in)/2)
		d.Process(out, in)
		att := dbRatio(RMS(in), max(RMS(out[settle:]), 0.1)) // 0.1: below one LSB
		t.Logf("%.0f Hz attenuated by %.1f dB", f, att)
		if att < 30 {
			t.Errorf("%.0f Hz attenuated by %.1f dB, want >= 30", f, att)
		}
	}
	// The telephone band passes: 3.4 kHz loses less than 1 dB.
	in := Tone(3400, 16000, 500, 8000)
	var d Downsampler2x
	out := make([]int16, len(in)/2)
	d.Process(out, in)
	if loss := dbRatio(RMS(in), RMS(out[settle:])); loss > 1 {
		t.Errorf("3.4 kHz lost %.2f dB, want < 1", loss)
	}
}

// TestResamplerStreaming feeds the same signal in one call and in pieces of
// odd sizes: the filter state and phase carry across calls, so the outputs
// are identical.
func TestResamplerStreaming(t *testing.T) {
	sizes := []int{1, 3, 7, 13, 2, 159, 161, 1, 300, 11}
	chunked := func(process func(dst, src []int16) int, in []int16) []int16 {
		var out []int16
		buf := make([]int16, 1024)
		for i := 0; len(in) > 0; i++ {
			k := min(sizes[i%len(sizes)], len(in))
			n := process(buf, in[:k])
			out = append(out, buf[:n]...)
			in = in[k:]
		}
		return out
	}
	in := Tone(1000, 16000, 300, 12000)
	for i := range in {
		in[i] += int16(i*7919%601 - 300) // some broadband content
	}

	var d1, d2 Downsampler2x
	whole := make([]int16, len(in)/2)
	d1.Process(whole, in)
	pieces := chunked(d2.Process, in)
	if !equalPCM(whole, pieces) {
		t.Errorf("downsampler: chunked output (%d samples) differs from one-shot (%d)", len(pieces), len(whole))
	}

	var u1, u2 Upsampler2x
	wholeUp := make([]int16, 2*len(in))
	u1.Process(wholeUp, in)
	piecesUp := chunked(u2.Process, in)
	if !equalPCM(wholeUp, piecesUp) {
		t.Errorf("upsampler: chunked output (%d samples) differs from one-shot (%d)", len(piecesUp), len(wholeUp))
	}
}

func TestResamplerShortDst(t *testing.T) {
	var u Upsampler2x
	dst := make([]int16, 7)
	if n := u.Process(dst, make([]int16, 10)); n != 6 {
		t.Errorf("upsampler into 7 samples wrote %d, want 6", n)
	}
	var d Downsampler2x
	if n := d.Process(dst[:3], make([]int16, 10)); n != 3 {
		t.Errorf("downsampler into 3 samples wrote %d, want 3", n)
	}
}

func TestResamplerNoAllocs(t *testing.T) {
	var u Upsampler2x
	var d Downsampler2x
	in := Tone(440, 8000, 20, 8000)
	up := make([]int16, 2*len(in))
	down := make([]int16, len(in))
	allocs := testing.AllocsPerRun(100, func() {
		u.Process(up, in)
		d.Process(down, up[:123])
		d.Process(down, up[123:])
	})
	if allocs != 0 {
		t.Errorf("resamplers allocate %.1f times per call", allocs)
	}
}

func equalPCM(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func BenchmarkUpsampler2x(b *testing.B) {
	var u Upsampler2x
	in := Tone(1000, 8000, 20, 8000)
	out := make([]int16, 2*len(in))
	for b.Loop() {
		u.Process(out, in)
	}
}

func BenchmarkDownsampler2x(b *testing.B) {
	var d Downsampler2x
	in := Tone(1000, 16000, 20, 8000)
	out := make([]int16, len(in)/2)
	for b.Loop() {
		d.Process(out, in)
	}
}
