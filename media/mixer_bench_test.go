package media

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/codecs"
	"github.com/matrix-gateway/gateway/codecs/opus"
)

// The conference benchmarks model one 20 ms round of a conference with
// real codecs: half the participants are "Matrix" (Opus at 16 kHz both
// ways, encoder as the gateway configures it: complexity 5, 24 kbit/s,
// FEC), half are "phones" (PCMU, 8 kHz writer and sink, resampled inside
// their ports). Every participant talks (a tone at -30 dBFS), so every
// output is a real mix: the worst case for the mixer.

var benchSizes = []int{3, 10, 30, 100}

// benchOpus is the gateway's Opus codec (cmd/gateway opusOptions with the
// default media config).
var benchOpus = codecs.OpusWith(opus.Options{Complexity: 5, Bitrate: 24000, FEC: true})

// benchParticipant is one participant's receive side: pre-encoded packets
// and the decoder that the participant's endpoint would run.
type benchParticipant struct {
	matrix   bool
	rate     int
	payloads [][]byte
	dec      codecs.Decoder
	sinkEnc  codecs.Encoder // encodes what the participant hears
	pcm      []int16
	out      []byte
	w        PCMWriter
	i        int
}

// encodedTone encodes 1 s of a tone at -30 dBFS as 20 ms payloads.
func encodedTone(b *testing.B, c codecs.Codec, rate int, freq float64) [][]byte {
	b.Helper()
	enc, err := c.NewEncoder(rate)
	if err != nil {
		b.Fatal(err)
	}
	g := &ToneGenerator{Freq: freq, Rate: rate, Amplitude: amplitude(-30)}
	frame := make([]int16, SamplesPerFrame(rate))
	var out [][]byte
	for range 50 {
		g.Fill(frame)
		buf := make([]byte, c.MaxPayload)
		n, err := enc.Encode(frame, buf)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, buf[:n])
	}
	return out
}

func newBenchParticipants(b *testing.B, n int) []*benchParticipant {
	b.Helper()
	ps := make([]*benchParticipant, n)
	for i := range ps {
		c, rate := codecs.PCMU, 8000
		if i%2 == 0 {
			c, rate = benchOpus, 16000
		}
		freq := 200 + 37*float64(i%90)
		dec, err := c.NewDecoder(rate)
		if err != nil {
			b.Fatal(err)
		}
		enc, err := c.NewEncoder(rate)
		if err != nil {
			b.Fatal(err)
		}
		ps[i] = &benchParticipant{
			matrix:   i%2 == 0,
			rate:     rate,
			payloads: encodedTone(b, c, rate, freq),
			dec:      dec,
			sinkEnc:  enc,
			pcm:      make([]int16, 960),
			out:      make([]byte, c.MaxPayload),
		}
	}
	return ps
}

// receive decodes the participant's next packet and writes it to w, as
// its endpoint's receive goroutine would.
func (p *benchParticipant) receive(b *testing.B) {
	n, err := p.dec.Decode(p.payloads[p.i], p.pcm)
	if err != nil {
		b.Fatal(err)
	}
	p.i = (p.i + 1) % len(p.payloads)
	if err := p.w.WritePCM(p.pcm[:n]); err != nil {
		b.Fatal(err)
	}
}

// encodeSink is a port's sink: it encodes each frame as the participant's
// endpoint writer would (the RTP send itself is left out), or, when
// recording, keeps the frames for the codec-only baseline.
type encodeSink struct {
	enc    codecs.Encoder
	buf    []byte
	frames int
	record bool
	rec    [][]int16
}

func (s *encodeSink) WritePCM(pcm []int16) error {
	s.frames++
	if s.record {
		s.rec = append(s.rec, slices.Clone(pcm))
		return nil
	}
	_, err := s.enc.Encode(pcm, s.buf)
	return err
}

// benchConf is a conference of n benchParticipants driven tick by tick.
type benchConf struct {
	m     *Mixer
	ps    []*benchParticipant
	sinks []*encodeSink
}

func newBenchConf(b *testing.B, n int, record bool) *benchConf {
	b.Helper()
	m, err := newMixer(MixerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	c := &benchConf{m: m, ps: newBenchParticipants(b, n), sinks: make([]*encodeSink, n)}
	for i, p := range c.ps {
		port := NewMixPort(fmt.Sprintf("p%d", i), 16000)
		if p.w, err = port.Writer(p.rate); err != nil {
			b.Fatal(err)
		}
		c.sinks[i] = &encodeSink{enc: p.sinkEnc, buf: make([]byte, opus.MaxPacket), record: record}
		if err := port.SetSink(p.rate, c.sinks[i]); err != nil {
			b.Fatal(err)
		}
		addNow(b, m, port)
	}
	return c
}

// round is one 20 ms round: every participant's packet in, one tick out.
func (c *benchConf) round(b *testing.B) {
	for _, p := range c.ps {
		p.receive(b)
	}
	c.m.tick()
}

func reportPerParticipant(b *testing.B, n int) {
	if b.N == 0 {
		return
	}
	perTick := float64(b.Elapsed()) / float64(b.N)
	perParticipant := perTick / float64(n)
	b.ReportMetric(perParticipant/1000, "us/participant")
	b.ReportMetric(float64(FrameMillis*time.Millisecond)/perParticipant, "participants/core")
}

// BenchmarkMixerConference is one mixer tick with n participants: every
// participant's packet decoded and written into its port, then the tick
// (pull, level/VAD/AGC, sum, N-1 outputs, resampling for phones, and the
// sinks' encoders). ns/op is per tick.
func BenchmarkMixerConference(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			c := newBenchConf(b, n, false)
			for range 10 { // warm up: AGC settles, queues fill
				c.round(b)
			}
			b.ReportAllocs()
			for b.Loop() {
				c.round(b)
			}
			reportPerParticipant(b, n)
			for i, s := range c.sinks {
				if st := c.m.ports[i].Stats(); s.frames == 0 || st.SinkErrors != 0 {
					b.Fatalf("participant %d: %d frames encoded, port stats %+v", i, s.frames, st)
				}
			}
		})
	}
}

// BenchmarkConferenceCodecOnly is the codec work of BenchmarkMixerConference
// alone, the baseline for the mixer's overhead: per participant one decode
// of its packet and one encode of the very mix it hears in the conference
// (recorded beforehand, so the encoders see the same signal), no mixing.
func BenchmarkConferenceCodecOnly(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			c := newBenchConf(b, n, true)
			for range 60 {
				c.round(b)
			}
			mixes := make([][][]int16, n)
			for i, s := range c.sinks {
				mixes[i] = s.rec[10:]
			}
			j := 0
			round := func() {
				for i, p := range c.ps {
					if _, err := p.dec.Decode(p.payloads[p.i], p.pcm); err != nil {
						b.Fatal(err)
					}
					p.i = (p.i + 1) % len(p.payloads)
					if _, err := p.sinkEnc.Encode(mixes[i][j], p.out); err != nil {
						b.Fatal(err)
					}
				}
				j = (j + 1) % len(mixes[0])
			}
			b.ReportAllocs()
			for b.Loop() {
				round()
			}
			reportPerParticipant(b, n)
		})
	}
}

// BenchmarkMixerTickOnly is the mixer's own work per tick with n
// participants and no codecs (inputs pre-decoded, sinks discard): the cost
// the mixer adds on top of the codecs.
func BenchmarkMixerTickOnly(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			m, err := newMixer(MixerConfig{})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			ws := make([]PCMWriter, n)
			pkts := make([][]int16, n)
			for i := range n {
				rate := 16000
				if i%2 == 1 {
					rate = 8000
				}
				port := NewMixPort(fmt.Sprintf("p%d", i), 16000)
				if ws[i], err = port.Writer(rate); err != nil {
					b.Fatal(err)
				}
				if err := port.SetSink(rate, &nullSink{}); err != nil {
					b.Fatal(err)
				}
				addNow(b, m, port)
				pkts[i] = Tone(200+37*float64(i%90), rate, FrameMillis, amplitude(-30))
			}
			b.ReportAllocs()
			for b.Loop() {
				for i, w := range ws {
					_ = w.WritePCM(pkts[i])
				}
				m.tick()
			}
			reportPerParticipant(b, n)
		})
	}
}
