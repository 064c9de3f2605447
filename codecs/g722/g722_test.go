package g722_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"testing"

	"github.com/matrix-gateway/gateway/codecs/g722"
	"github.com/matrix-gateway/gateway/media"
)

func readPCM(t *testing.T, name string) []int16 {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, len(b)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return pcm
}

// TestKnownAnswer checks both directions bit-exactly against vectors made
// with spandsp (testdata/README.md), frame by frame as the RTP path calls.
func TestKnownAnswer(t *testing.T) {
	in := readPCM(t, "testdata/input.pcm")
	want, err := os.ReadFile("testdata/encoded.g722")
	if err != nil {
		t.Fatal(err)
	}
	wantPCM := readPCM(t, "testdata/decoded.pcm")

	enc, err := g722.NewEncoder(g722.Rate)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0, len(want))
	var buf [g722.FrameBytes]byte
	for i := 0; i < len(in); i += 320 {
		n, err := enc.Encode(in[i:min(i+320, len(in))], buf[:])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("encoded byte %d = %#02x, spandsp %#02x (%d bytes)", i, got[i], want[i], len(got))
			}
		}
		t.Fatalf("encoded %d bytes, spandsp %d", len(got), len(want))
	}

	dec, err := g722.NewDecoder(g722.Rate)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int16, 0, len(wantPCM))
	var pcm [320]int16
	for i := 0; i < len(want); i += g722.FrameBytes {
		n, err := dec.Decode(want[i:min(i+g722.FrameBytes, len(want))], pcm[:])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pcm[:n]...)
	}
	if len(out) != len(wantPCM) {
		t.Fatalf("decoded %d samples, spandsp %d", len(out), len(wantPCM))
	}
	// spandsp does not saturate the receive QMF output and wraps around
	// where the true value exceeds 16 bits; we clip. Allow exactly that.
	clipped := 0
	for i := range out {
		if out[i] == wantPCM[i] {
			continue
		}
		// Only the second half of the input is loud enough to clip.
		if i >= len(out)/2 && ((out[i] == math.MaxInt16 && wantPCM[i] < 0) || (out[i] == math.MinInt16 && wantPCM[i] > 0)) {
			clipped++
			continue
		}
		t.Fatalf("decoded sample %d = %d, spandsp %d", i, out[i], wantPCM[i])
	}
	t.Logf("%d of %d samples clipped where spandsp wraps", clipped, len(out))
}

// roundTrip encodes and decodes pcm in 20 ms frames.
func roundTrip(t testing.TB, pcm []int16) []int16 {
	t.Helper()
	enc, err := g722.NewEncoder(g722.Rate)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := g722.NewDecoder(g722.Rate)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int16, 0, len(pcm))
	var payload [g722.FrameBytes]byte
	var frame [320]int16
	for i := 0; i+320 <= len(pcm); i += 320 {
		n, err := enc.Encode(pcm[i:i+320], payload[:])
		if err != nil || n != g722.FrameBytes {
			t.Fatalf("encode: n=%d err=%v", n, err)
		}
		m, err := dec.Decode(payload[:n], frame[:])
		if err != nil || m != 320 {
			t.Fatalf("decode: n=%d err=%v", m, err)
		}
		out = append(out, frame[:m]...)
	}
	return out
}

// snrDB compares out with in delayed by the codec's delay (the two QMFs:
// 22 samples), over the part after the first 100 ms.
func snrDB(in, out []int16, delay int) float64 {
	var sig, noise float64
	for i := 1600; i < len(out); i++ {
		ref := float64(in[i-delay])
		e := float64(out[i]) - ref
		sig += ref * ref
		noise += e * e
	}
	return 10 * math.Log10(sig/noise)
}

// codecDelay is the delay of the QMF pair, in samples.
const codecDelay = 22

// TestDelay finds the codec delay on a non-periodic signal (a chirp).
func TestDelay(t *testing.T) {
	in := make([]int16, 8000)
	for i := range in {
		x := float64(i) / g722.Rate
		in[i] = int16(8000 * math.Sin(2*math.Pi*(200*x+1500*x*x)))
	}
	out := roundTrip(t, in)
	best, bestDelay := math.Inf(-1), 0
	for d := 0; d < 64; d++ {
		if s := snrDB(in, out, d); s > best {
			best, bestDelay = s, d
		}
	}
	if bestDelay != codecDelay || best < 15 {
		t.Errorf("best fit at delay %d (SNR %.1f dB), want delay %d with >= 15 dB", bestDelay, best, codecDelay)
	}
}

func TestTones(t *testing.T) {
	for _, tt := range []struct {
		freq   float64
		minSNR float64 // dB
	}{
		{1000, 20},
		{3500, 20},
		{6000, 10}, // high band: 2 bits per sample
	} {
		in := make([]int16, 16000) // 1 s
		gen := media.NewToneGenerator(tt.freq, g722.Rate)
		gen.Fill(in)
		out := roundTrip(t, in)
		tail := out[1600:]
		if g := media.Goertzel(tail, g722.Rate, tt.freq); g < 0.5 {
			t.Errorf("%v Hz: Goertzel %.3f after round trip, want >= 0.5", tt.freq, g)
		}
		if other := media.Goertzel(tail, g722.Rate, tt.freq*1.37); other > 0.05 {
			t.Errorf("%v Hz: energy at %.0f Hz = %.3f, want none", tt.freq, tt.freq*1.37, other)
		}
		// The transmit and receive QMFs delay the signal by 22 samples.
		snr := snrDB(in, out, codecDelay)
		if snr < tt.minSNR {
			t.Errorf("%v Hz: SNR %.1f dB, want >= %.0f", tt.freq, snr, tt.minSNR)
		}
		t.Logf("%v Hz: SNR %.1f dB", tt.freq, snr)
	}
}

func TestErrors(t *testing.T) {
	if _, err := g722.NewEncoder(8000); !errors.Is(err, g722.ErrRate) {
		t.Errorf("NewEncoder(8000) = %v, want ErrRate", err)
	}
	if _, err := g722.NewDecoder(48000); !errors.Is(err, g722.ErrRate) {
		t.Errorf("NewDecoder(48000) = %v, want ErrRate", err)
	}
	enc, _ := g722.NewEncoder(g722.Rate)
	if _, err := enc.Encode(make([]int16, 3), make([]byte, 2)); !errors.Is(err, g722.ErrOddFrame) {
		t.Errorf("odd frame: %v", err)
	}
	if _, err := enc.Encode(make([]int16, 320), make([]byte, 100)); !errors.Is(err, g722.ErrShortBuf) {
		t.Errorf("short dst: %v", err)
	}
	dec, _ := g722.NewDecoder(g722.Rate)
	if _, err := dec.Decode(make([]byte, 160), make([]int16, 100)); !errors.Is(err, g722.ErrShortBuf) {
		t.Errorf("short pcm: %v", err)
	}
}

func TestConceal(t *testing.T) {
	in := make([]int16, 3200)
	media.NewToneGenerator(1000, g722.Rate).Fill(in)
	enc, _ := g722.NewEncoder(g722.Rate)
	dec, _ := g722.NewDecoder(g722.Rate)
	var payload [g722.FrameBytes]byte
	var pcm [320]int16
	// Nothing received yet: silence.
	if _, err := dec.Conceal(pcm[:]); err != nil || media.RMS(pcm[:]) != 0 {
		t.Fatalf("conceal before audio: rms %.1f err %v", media.RMS(pcm[:]), err)
	}
	for i := 0; i < len(in); i += 320 {
		n, _ := enc.Encode(in[i:i+320], payload[:])
		if _, err := dec.Decode(payload[:n], pcm[:]); err != nil {
			t.Fatal(err)
		}
	}
	// First concealed frame still carries the tone; after 60 ms it is silent.
	var rms [4]float64
	for i := range rms {
		n, err := dec.Conceal(pcm[:])
		if err != nil || n != 320 {
			t.Fatalf("conceal: %d %v", n, err)
		}
		if i == 0 {
			if g := media.Goertzel(pcm[:], g722.Rate, 1000); g < 0.5 {
				t.Errorf("first concealed frame: Goertzel %.3f, want the tone", g)
			}
		}
		rms[i] = media.RMS(pcm[:])
	}
	if !(rms[0] > rms[1] && rms[1] > rms[2] && rms[3] == 0) {
		t.Errorf("concealment RMS %v: want a fade to silence", rms)
	}
}

func TestNoAllocs(t *testing.T) {
	enc, _ := g722.NewEncoder(g722.Rate)
	dec, _ := g722.NewDecoder(g722.Rate)
	in := make([]int16, 320)
	media.NewToneGenerator(1000, g722.Rate).Fill(in)
	payload := make([]byte, g722.FrameBytes)
	out := make([]int16, 320)
	allocs := testing.AllocsPerRun(100, func() {
		n, _ := enc.Encode(in, payload)
		_, _ = dec.Decode(payload[:n], out)
		_, _ = dec.Conceal(out)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame, want 0", allocs)
	}
}

func BenchmarkEncode20ms(b *testing.B) {
	enc, _ := g722.NewEncoder(g722.Rate)
	in := make([]int16, 320)
	media.NewToneGenerator(1000, g722.Rate).Fill(in)
	payload := make([]byte, g722.FrameBytes)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = enc.Encode(in, payload)
	}
}

func BenchmarkDecode20ms(b *testing.B) {
	enc, _ := g722.NewEncoder(g722.Rate)
	dec, _ := g722.NewDecoder(g722.Rate)
	in := make([]int16, 320)
	media.NewToneGenerator(1000, g722.Rate).Fill(in)
	payload := make([]byte, g722.FrameBytes)
	n, _ := enc.Encode(in, payload)
	out := make([]int16, 320)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = dec.Decode(payload[:n], out)
	}
}

// FuzzDecode feeds arbitrary payloads to one decoder: it must never panic,
// always return two samples per byte and keep its state usable.
func FuzzDecode(f *testing.F) {
	enc, _ := g722.NewEncoder(g722.Rate)
	in := make([]int16, 320)
	media.NewToneGenerator(3500, g722.Rate).Fill(in)
	seed := make([]byte, g722.FrameBytes)
	n, _ := enc.Encode(in, seed)
	f.Add(seed[:n])
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 160))
	f.Add(bytes.Repeat([]byte{0x00, 0x3f, 0xc0, 0x80}, 40))
	dec, _ := g722.NewDecoder(g722.Rate)
	out := make([]int16, 2*1500)
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > 1500 {
			payload = payload[:1500]
		}
		n, err := dec.Decode(payload, out)
		if err != nil || n != 2*len(payload) {
			t.Fatalf("Decode(%d bytes) = %d, %v", len(payload), n, err)
		}
		if _, err := dec.Conceal(out[:320]); err != nil {
			t.Fatal(err)
		}
	})
}
