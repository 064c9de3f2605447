package g711_test

import (
	"math"
	"testing"

	zaf "github.com/zaf/g711"

	"github.com/matrix-gateway/gateway/codecs/g711"
	"github.com/matrix-gateway/gateway/media"
)

// The tables must agree with zaf/g711's per-sample reference for every input.
func TestTablesMatchReference(t *testing.T) {
	pcm := make([]int16, 1)
	b := make([]byte, 1)
	for i := range 1 << 16 {
		pcm[0] = int16(uint16(i))
		g711.EncodeULaw(b, pcm)
		if want := zaf.EncodeUlawFrame(pcm[0]); b[0] != want {
			t.Fatalf("u-law encode %d: got %#x want %#x", pcm[0], b[0], want)
		}
		g711.EncodeALaw(b, pcm)
		if want := zaf.EncodeAlawFrame(pcm[0]); b[0] != want {
			t.Fatalf("A-law encode %d: got %#x want %#x", pcm[0], b[0], want)
		}
	}
	for i := range 256 {
		b[0] = byte(i)
		g711.DecodeULaw(pcm, b)
		if want := zaf.DecodeUlawFrame(b[0]); pcm[0] != want {
			t.Fatalf("u-law decode %#x: got %d want %d", b[0], pcm[0], want)
		}
		g711.DecodeALaw(pcm, b)
		if want := zaf.DecodeAlawFrame(b[0]); pcm[0] != want {
			t.Fatalf("A-law decode %#x: got %d want %d", b[0], pcm[0], want)
		}
	}
}

func snrDB(ref, got []int16) float64 {
	var sig, noise float64
	for i := range ref {
		sig += float64(ref[i]) * float64(ref[i])
		d := float64(ref[i]) - float64(got[i])
		noise += d * d
	}
	return 10 * math.Log10(sig/noise)
}

func TestRoundTripTone(t *testing.T) {
	for _, law := range []g711.Law{g711.ULaw, g711.ALaw} {
		t.Run(law.String(), func(t *testing.T) {
			enc, err := g711.NewEncoder(law, 8000)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := g711.NewDecoder(law, 8000)
			if err != nil {
				t.Fatal(err)
			}
			in := media.Tone(440, 8000, 500, 8000)
			payload := make([]byte, 160)
			out := make([]int16, len(in))
			for off := 0; off < len(in); off += 160 {
				n, err := enc.Encode(in[off:off+160], payload)
				if err != nil || n != 160 {
					t.Fatalf("encode: %d %v", n, err)
				}
				m, err := dec.Decode(payload[:n], out[off:off+160])
				if err != nil || m != 160 {
					t.Fatalf("decode: %d %v", m, err)
				}
			}
			// G.711 keeps about 37 dB SNR on a mid-level tone.
			if snr := snrDB(in, out); snr < 33 {
				t.Errorf("SNR %.1f dB, want >= 33", snr)
			}
			if g := media.Goertzel(out, 8000, 440); g < 0.99 {
				t.Errorf("440 Hz fraction %.3f, want >= 0.99", g)
			}
			if g := media.Goertzel(out, 8000, 1000); g > 0.01 {
				t.Errorf("1000 Hz fraction %.3f in a 440 Hz tone", g)
			}
		})
	}
}

func TestRate(t *testing.T) {
	if _, err := g711.NewEncoder(g711.ULaw, 16000); err == nil {
		t.Error("encoder accepted 16 kHz")
	}
	if _, err := g711.NewDecoder(g711.ALaw, 48000); err == nil {
		t.Error("decoder accepted 48 kHz")
	}
}

func TestShortBuffers(t *testing.T) {
	enc, _ := g711.NewEncoder(g711.ULaw, 8000)
	if _, err := enc.Encode(make([]int16, 160), make([]byte, 80)); err == nil {
		t.Error("encode into a short buffer succeeded")
	}
	dec, _ := g711.NewDecoder(g711.ULaw, 8000)
	if _, err := dec.Decode(make([]byte, 160), make([]int16, 80)); err == nil {
		t.Error("decode into a short buffer succeeded")
	}
}

func TestConceal(t *testing.T) {
	dec, _ := g711.NewDecoder(g711.ULaw, 8000)
	pcm := make([]int16, 160)
	// Nothing received yet: silence.
	if _, err := dec.Conceal(pcm); err != nil {
		t.Fatal(err)
	}
	if media.RMS(pcm) != 0 {
		t.Fatalf("conceal before any audio is not silent: rms %.1f", media.RMS(pcm))
	}
	tone := media.Tone(440, 8000, 20, 8000)
	payload := make([]byte, 160)
	g711.EncodeULaw(payload, tone)
	if _, err := dec.Decode(payload, pcm); err != nil {
		t.Fatal(err)
	}
	// Three concealed frames fade out; the fourth is silent.
	var levels []float64
	for range 4 {
		if n, err := dec.Conceal(pcm); err != nil || n != 160 {
			t.Fatalf("conceal: %d %v", n, err)
		}
		levels = append(levels, media.RMS(pcm))
	}
	if !(levels[0] > levels[1] && levels[1] > levels[2] && levels[2] > 0 && levels[3] == 0) {
		t.Errorf("conceal levels %v, want a fade to silence over 3 frames", levels)
	}
	if g := media.Goertzel(pcm[:0], 8000, 440); g != 0 {
		t.Errorf("Goertzel of nothing: %v", g)
	}
	// A new frame resets the fade.
	if _, err := dec.Decode(payload, pcm); err != nil {
		t.Fatal(err)
	}
	if _, err := dec.Conceal(pcm); err != nil {
		t.Fatal(err)
	}
	if math.Abs(media.RMS(pcm)-levels[0]) > 1 {
		t.Errorf("conceal after new audio: rms %.1f, want %.1f", media.RMS(pcm), levels[0])
	}
}

func TestNoAllocs(t *testing.T) {
	enc, _ := g711.NewEncoder(g711.ALaw, 8000)
	dec, _ := g711.NewDecoder(g711.ALaw, 8000)
	pcm := media.Tone(1000, 8000, 20, 8000)
	payload := make([]byte, 160)
	out := make([]int16, 160)
	allocs := testing.AllocsPerRun(100, func() {
		_, _ = enc.Encode(pcm, payload)
		_, _ = dec.Decode(payload, out)
		_, _ = dec.Conceal(out)
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per frame, want 0", allocs)
	}
}

func BenchmarkEncodeULawFrame(b *testing.B) {
	pcm := media.Tone(440, 8000, 20, 8000)
	dst := make([]byte, 160)
	b.ReportAllocs()
	for b.Loop() {
		g711.EncodeULaw(dst, pcm)
	}
}

func BenchmarkDecodeULawFrame(b *testing.B) {
	pcm := media.Tone(440, 8000, 20, 8000)
	src := make([]byte, 160)
	g711.EncodeULaw(src, pcm)
	b.ReportAllocs()
	for b.Loop() {
		g711.DecodeULaw(pcm, src)
	}
}

func BenchmarkEncodeALawFrame(b *testing.B) {
	pcm := media.Tone(440, 8000, 20, 8000)
	dst := make([]byte, 160)
	b.ReportAllocs()
	for b.Loop() {
		g711.EncodeALaw(dst, pcm)
	}
}

func BenchmarkDecodeALawFrame(b *testing.B) {
	pcm := media.Tone(440, 8000, 20, 8000)
	src := make([]byte, 160)
	g711.EncodeALaw(src, pcm)
	b.ReportAllocs()
	for b.Loop() {
		g711.DecodeALaw(pcm, src)
	}
}

// BenchmarkZafEncodeULawFrame is the zaf/g711 baseline for comparison.
func BenchmarkZafEncodeULawFrame(b *testing.B) {
	pcm := media.Tone(440, 8000, 20, 8000)
	lpcm := make([]byte, 320)
	for i, s := range pcm {
		lpcm[2*i], lpcm[2*i+1] = byte(s), byte(uint16(s)>>8)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = zaf.EncodeUlaw(lpcm)
	}
}
