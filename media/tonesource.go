package media

import (
	"math"
	"time"
)

// PCMSource produces 16-bit mono PCM at the rate of the mixer it is played
// into (join and leave tones, IVR prompts). ReadPCM fills buf and returns
// how many samples it wrote; fewer than len(buf) means the source has
// finished and the rest of buf counts as silence. A Mixer calls ReadPCM from
// its own goroutine once per 20 ms tick, so it must not block or allocate.
type PCMSource interface {
	ReadPCM(buf []int16) int
}

// ToneSegment is one part of a tone sequence: up to two summed frequencies
// in Hz (0 = unused; both 0 = silence), a duration, and the level of each
// frequency in dBFS (peak of the sine relative to full scale, so -12 is a
// peak of about 8200, like ToneGenerator's default).
type ToneSegment struct {
	Freq1, Freq2 float64
	Dur          time.Duration
	DBFS         int
}

// toneFadeMillis is the fade in and out at each end of a tone segment.
const toneFadeMillis = 5

type toneSeg struct {
	n      int     // length in samples
	w1, w2 float64 // phase step per sample (radians), 0 = unused
	amp    float64 // peak amplitude of each frequency
}

// toneSource plays a sequence of ToneSegments once.
type toneSource struct {
	segs []toneSeg
	fade []float64 // raised-cosine ramp, rising
	seg  int       // current segment
	pos  int       // sample position within it
	ph1  float64   // phase accumulators, continuous across reads and segments
	ph2  float64
}

// NewToneSource returns a PCMSource at rate Hz that plays segs once, in
// order. The phase runs on across reads and segments (no clicks between
// reads) and each sounding segment fades in and out over 5 ms. ReadPCM does
// not allocate. Segments with a non-positive duration are skipped.
func NewToneSource(rate int, segs ...ToneSegment) PCMSource {
	if rate <= 0 {
		rate = 16000
	}
	s := &toneSource{fade: make([]float64, rate*toneFadeMillis/1000)}
	for i := range s.fade {
		x := (float64(i) + 0.5) / float64(len(s.fade))
		s.fade[i] = 0.5 - 0.5*math.Cos(math.Pi*x)
	}
	for _, g := range segs {
		n := int(g.Dur * time.Duration(rate) / time.Second)
		if n <= 0 {
			continue
		}
		ts := toneSeg{n: n, amp: 32767 * math.Pow(10, float64(g.DBFS)/20)}
		ts.amp = min(ts.amp, 32767)
		if g.Freq1 > 0 {
			ts.w1 = 2 * math.Pi * g.Freq1 / float64(rate)
		}
		if g.Freq2 > 0 {
			ts.w2 = 2 * math.Pi * g.Freq2 / float64(rate)
		}
		if ts.w1 > 0 && ts.w2 > 0 {
			// Two tones at the same level must not clip when they add up.
			ts.amp = min(ts.amp, 32767/2)
		}
		s.segs = append(s.segs, ts)
	}
	return s
}

// ReadPCM implements PCMSource.
func (s *toneSource) ReadPCM(buf []int16) int {
	out := 0
	for out < len(buf) && s.seg < len(s.segs) {
		g := &s.segs[s.seg]
		k := min(len(buf)-out, g.n-s.pos)
		dst := buf[out : out+k]
		if g.w1 == 0 && g.w2 == 0 {
			clear(dst)
		} else {
			for i := range dst {
				v := 0.0
				if g.w1 > 0 {
					v += math.Sin(s.ph1)
					s.ph1 += g.w1
				}
				if g.w2 > 0 {
					v += math.Sin(s.ph2)
					s.ph2 += g.w2
				}
				dst[i] = int16(v * g.amp * s.envelope(g, s.pos+i))
			}
			s.ph1 = math.Mod(s.ph1, 2*math.Pi)
			s.ph2 = math.Mod(s.ph2, 2*math.Pi)
		}
		out += k
		s.pos += k
		if s.pos == g.n {
			s.seg++
			s.pos = 0
		}
	}
	return out
}

// envelope is the fade gain at sample pos of g.
func (s *toneSource) envelope(g *toneSeg, pos int) float64 {
	f := len(s.fade)
	if 2*f > g.n {
		f = g.n / 2
	}
	switch {
	case pos < f:
		return s.fade[pos*len(s.fade)/max(f, 1)]
	case pos >= g.n-f:
		return s.fade[(g.n-1-pos)*len(s.fade)/max(f, 1)]
	}
	return 1
}

// NewJoinTone returns the tone a conference plays when someone joins: two
// short rising notes at -18 dBFS.
func NewJoinTone(rate int) PCMSource {
	return NewToneSource(rate,
		ToneSegment{Freq1: 660, Dur: 100 * time.Millisecond, DBFS: -18},
		ToneSegment{Freq1: 880, Dur: 150 * time.Millisecond, DBFS: -18})
}

// NewLeaveTone returns the tone a conference plays when someone leaves: two
// short falling notes at -18 dBFS.
func NewLeaveTone(rate int) PCMSource {
	return NewToneSource(rate,
		ToneSegment{Freq1: 880, Dur: 100 * time.Millisecond, DBFS: -18},
		ToneSegment{Freq1: 660, Dur: 150 * time.Millisecond, DBFS: -18})
}

// pcmBuffer plays a fixed slice of PCM once.
type pcmBuffer struct {
	pcm []int16
	pos int
}

// NewPCMBufferSource returns a PCMSource that plays pcm (at the mixer's
// rate) once, e.g. a recorded IVR prompt. pcm is not copied and must not be
// changed while it plays.
func NewPCMBufferSource(pcm []int16) PCMSource { return &pcmBuffer{pcm: pcm} }

// ReadPCM implements PCMSource.
func (b *pcmBuffer) ReadPCM(buf []int16) int {
	n := copy(buf, b.pcm[b.pos:])
	b.pos += n
	return n
}
