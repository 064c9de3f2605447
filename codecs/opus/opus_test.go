package opus_test

import (
	"errors"
	"testing"

	"github.com/matrix-gateway/gateway/codecs/opus"
	"github.com/matrix-gateway/gateway/media"
)

// encodeTone encodes ms of a tone at encRate into 20 ms packets.
func encodeTone(t testing.TB, freq float64, encRate, ms int, opts opus.Options) [][]byte {
	t.Helper()
	enc, err := opus.NewEncoder(encRate, opts)
	if err != nil {
		t.Fatal(err)
	}
	gen := media.NewToneGenerator(freq, encRate)
	frame := make([]int16, encRate/50)
	var pkts [][]byte
	for range ms / 20 {
		gen.Fill(frame)
		buf := make([]byte, opus.MaxPacket)
		n, err := enc.Encode(frame, buf)
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, buf[:n])
	}
	return pkts
}

// decodeAll decodes packets at decRate; a nil packet is concealed.
func decodeAll(t testing.TB, pkts [][]byte, decRate int) []int16 {
	t.Helper()
	dec, err := opus.NewDecoder(decRate)
	if err != nil {
		t.Fatal(err)
	}
	var out []int16
	pcm := make([]int16, decRate*120/1000)
	for _, p := range pkts {
		var n int
		if p == nil {
			n, err = dec.Conceal(pcm[:decRate/50])
		} else {
			n, err = dec.Decode(p, pcm)
		}
		if err != nil {
			t.Fatal(err)
		}
		if n != decRate/50 {
			t.Fatalf("decoded %d samples, want %d", n, decRate/50)
		}
		out = append(out, pcm[:n]...)
	}
	return out
}

func TestToneEachRate(t *testing.T) {
	for _, rate := range opus.Rates {
		for _, freq := range []float64{440, 1000} {
			pkts := encodeTone(t, freq, rate, 600, opus.Options{})
			out := decodeAll(t, pkts, rate)
			steady := out[len(out)/3:] // skip the encoder's start-up
			if g := media.Goertzel(steady, rate, freq); g < 0.8 {
				t.Errorf("%d Hz at %d Hz: fraction %.3f, want >= 0.8", int(freq), rate, g)
			}
		}
	}
}

// The G.711 bridging path: 48 kHz (browser) Opus decoded straight to 8 kHz,
// and 8 kHz PCM encoded as narrowband Opus and decoded at 48 kHz.
func TestCrossRate(t *testing.T) {
	out := decodeAll(t, encodeTone(t, 440, 48000, 600, opus.Options{}), 8000)
	if g := media.Goertzel(out[len(out)/3:], 8000, 440); g < 0.8 {
		t.Errorf("48k -> 8k: 440 Hz fraction %.3f", g)
	}
	out = decodeAll(t, encodeTone(t, 1000, 8000, 600, opus.Options{}), 48000)
	if g := media.Goertzel(out[len(out)/3:], 48000, 1000); g < 0.8 {
		t.Errorf("8k -> 48k: 1000 Hz fraction %.3f", g)
	}
}

func TestConcealKeepsTone(t *testing.T) {
	pkts := encodeTone(t, 440, 8000, 600, opus.Options{})
	pkts[20] = nil
	out := decodeAll(t, pkts, 8000)
	lost := out[20*160 : 21*160]
	if media.RMS(lost) < 100 {
		t.Errorf("concealed frame is near silent: rms %.1f", media.RMS(lost))
	}
	if g := media.Goertzel(out[15*160:25*160], 8000, 440); g < 0.6 {
		t.Errorf("440 Hz fraction around the loss %.3f", g)
	}
}

func TestFEC(t *testing.T) {
	pkts := encodeTone(t, 440, 8000, 600, opus.Options{FEC: true, PacketLossPercent: 20})
	dec, err := opus.NewDecoder(8000)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, 960)
	for i := range 20 {
		if _, err := dec.Decode(pkts[i], pcm); err != nil {
			t.Fatal(err)
		}
	}
	// Packet 20 is lost: recover it from packet 21.
	n, err := dec.DecodeFEC(pkts[21], pcm[:160])
	if err != nil || n != 160 {
		t.Fatalf("DecodeFEC: %d %v", n, err)
	}
	if g := media.Goertzel(pcm[:160], 8000, 440); g < 0.6 || media.RMS(pcm[:160]) < 100 {
		t.Errorf("FEC frame: 440 Hz fraction %.3f rms %.1f", g, media.RMS(pcm[:160]))
	}
	if n, err := dec.Decode(pkts[21], pcm); err != nil || n != 160 {
		t.Fatalf("decode after FEC: %d %v", n, err)
	}
}

func TestOptions(t *testing.T) {
	enc, err := opus.NewEncoder(8000, opus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := enc.Options()
	if o.Complexity != opus.DefaultComplexity || o.Bitrate != opus.DefaultBitrate || o.FEC {
		t.Errorf("defaults: %+v", o)
	}
	if enc.String() != "opus(encode 8k c5)" {
		t.Errorf("String: %q", enc.String())
	}
	if _, err := opus.NewEncoder(44100, opus.Options{}); !errors.Is(err, opus.ErrRate) {
		t.Errorf("44.1 kHz encoder: %v", err)
	}
	if _, err := opus.NewDecoder(11025); !errors.Is(err, opus.ErrRate) {
		t.Errorf("11.025 kHz decoder: %v", err)
	}
	for _, bad := range []opus.Options{{Complexity: 11}, {Complexity: -1}, {Bitrate: 100}, {PacketLossPercent: 101}} {
		if _, err := opus.NewEncoder(8000, bad); err == nil {
			t.Errorf("options %+v accepted", bad)
		}
	}
}

func TestDecodeGarbage(t *testing.T) {
	dec, _ := opus.NewDecoder(8000)
	pcm := make([]int16, 960)
	if _, err := dec.Decode(nil, pcm); err == nil {
		t.Error("decoded an empty payload")
	}
	// A TOC byte announcing a code-3 packet with an impossible frame count.
	if _, err := dec.Decode([]byte{0x03, 0xFF}, pcm); err == nil {
		t.Error("decoded a malformed packet")
	}
	// A 20 ms packet does not fit in 10 ms of PCM.
	if _, err := dec.Decode(encodeTone(t, 440, 8000, 20, opus.Options{})[0], pcm[:80]); err == nil {
		t.Error("decoded 20 ms into 10 ms of PCM")
	}
}

func TestNoAllocs(t *testing.T) {
	enc, _ := opus.NewEncoder(8000, opus.Options{})
	dec, _ := opus.NewDecoder(8000)
	frame := media.Tone(440, 8000, 20, 8000)
	buf := make([]byte, opus.MaxPacket)
	pcm := make([]int16, 960)
	allocs := testing.AllocsPerRun(50, func() {
		n, _ := enc.Encode(frame, buf)
		_, _ = dec.Decode(buf[:n], pcm)
		_, _ = dec.Conceal(pcm[:160])
		_, _ = dec.DecodeFEC(buf[:n], pcm[:160])
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per frame, want 0", allocs)
	}
}

func benchEncode(b *testing.B, rate, complexity int) {
	enc, err := opus.NewEncoder(rate, opus.Options{Complexity: complexity})
	if err != nil {
		b.Fatal(err)
	}
	pcm := media.Tone(440, rate, 1000, 8000)
	frame := rate / 50
	buf := make([]byte, opus.MaxPacket)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Encode(pcm[i*frame:(i+1)*frame], buf); err != nil {
			b.Fatal(err)
		}
		i = (i + 1) % 50
	}
}

func BenchmarkEncode8kC5Frame(b *testing.B)  { benchEncode(b, 8000, 5) }
func BenchmarkEncode8kC10Frame(b *testing.B) { benchEncode(b, 8000, 10) }
func BenchmarkEncode48kC5Frame(b *testing.B) { benchEncode(b, 48000, 5) }

func benchDecode(b *testing.B, encRate, decRate int) {
	pkts := encodeTone(b, 440, encRate, 1000, opus.Options{})
	dec, err := opus.NewDecoder(decRate)
	if err != nil {
		b.Fatal(err)
	}
	pcm := make([]int16, decRate/50)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dec.Decode(pkts[i], pcm); err != nil {
			b.Fatal(err)
		}
		i = (i + 1) % len(pkts)
	}
}

func BenchmarkDecode48kTo8kFrame(b *testing.B)  { benchDecode(b, 48000, 8000) }
func BenchmarkDecode48kTo48kFrame(b *testing.B) { benchDecode(b, 48000, 48000) }

func BenchmarkConcealFrame(b *testing.B) {
	pkts := encodeTone(b, 440, 8000, 100, opus.Options{})
	dec, _ := opus.NewDecoder(8000)
	pcm := make([]int16, 160)
	for _, p := range pkts {
		_, _ = dec.Decode(p, pcm)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dec.Conceal(pcm); err != nil {
			b.Fatal(err)
		}
	}
}
