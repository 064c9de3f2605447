package media

import (
	"math"
	"sync"
)

// Goertzel returns the power of pcm at freq Hz (sample rate rate) as a
// fraction of the block's total power: about 1 for a pure sine at freq,
// about 0.5 for each of two equal tones, near 0 when freq is absent, and 0
// for silence. Any freq below rate/2 works (it need not fall on a DFT bin);
// the frequency resolution is about rate/len(pcm), so use blocks of 50 ms or
// more and keep other tones at least 4*rate/len(pcm) away.
func Goertzel(pcm []int16, rate int, freq float64) float64 {
	n := len(pcm)
	if n == 0 || rate <= 0 {
		return 0
	}
	w := 2 * math.Pi * freq / float64(rate)
	c := 2 * math.Cos(w)
	var s1, s2, energy float64
	for _, v := range pcm {
		x := float64(v)
		s1, s2 = x+c*s1-s2, s1
		energy += x * x
	}
	if energy == 0 {
		return 0
	}
	power := s1*s1 + s2*s2 - c*s1*s2
	// A sine of amplitude A gives power (A*n/2)^2 and energy A^2*n/2.
	r := 2 * power / (float64(n) * energy)
	return min(r, 1)
}

// RMS returns the root mean square level of pcm (full scale 32767).
func RMS(pcm []int16) float64 {
	if len(pcm) == 0 {
		return 0
	}
	var e float64
	for _, v := range pcm {
		e += float64(v) * float64(v)
	}
	return math.Sqrt(e / float64(len(pcm)))
}

// Default ToneDetector thresholds.
const (
	// DefaultToneFraction is the share of a block's power that must lie at
	// the tone's frequency. G.711 keeps about 0.999 of a clean tone and
	// Opus at 24 kbit/s about 0.95; two equal tones give 0.5 each; speech
	// or noise stays far below 0.1 at any one frequency.
	DefaultToneFraction = 0.3
	// DefaultToneMinRMS is the minimum block level (about -50 dBFS), so
	// that near-silence does not count as a tone.
	DefaultToneMinRMS = 100
	// DefaultToneBlockMillis is the analysis block length.
	DefaultToneBlockMillis = 100
)

// ToneDetector is a PCMWriter that cuts the audio written to it into blocks
// and counts the blocks in which a tone is present. Use it as an endpoint's
// sink in tests: write audio, then check Hits against Blocks. It is safe to
// read the counts while another goroutine writes.
type ToneDetector struct {
	// Freq is the tone frequency in Hz.
	Freq float64
	// Rate is the PCM sample rate in Hz.
	Rate int
	// Fraction is the threshold on Goertzel (default DefaultToneFraction).
	Fraction float64
	// MinRMS is the minimum block level (default DefaultToneMinRMS).
	MinRMS float64
	// BlockMillis is the block length (default DefaultToneBlockMillis).
	BlockMillis int

	mu     sync.Mutex
	buf    []int16
	blocks int
	hits   int
	last   float64
}

// NewToneDetector returns a detector for freq at rate with default thresholds.
func NewToneDetector(freq float64, rate int) *ToneDetector {
	return &ToneDetector{Freq: freq, Rate: rate}
}

// Present reports whether pcm holds the tone by the detector's thresholds.
func (d *ToneDetector) Present(pcm []int16) bool {
	frac := d.Fraction
	if frac == 0 {
		frac = DefaultToneFraction
	}
	minRMS := d.MinRMS
	if minRMS == 0 {
		minRMS = DefaultToneMinRMS
	}
	return RMS(pcm) >= minRMS && Goertzel(pcm, d.Rate, d.Freq) >= frac
}

// WritePCM appends pcm and analyses every complete block.
func (d *ToneDetector) WritePCM(pcm []int16) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ms := d.BlockMillis
	if ms == 0 {
		ms = DefaultToneBlockMillis
	}
	size := d.Rate * ms / 1000
	if size <= 0 {
		return nil
	}
	if d.buf == nil {
		d.buf = make([]int16, 0, size)
	}
	for len(pcm) > 0 {
		k := copy(d.buf[len(d.buf):size], pcm)
		d.buf = d.buf[:len(d.buf)+k]
		pcm = pcm[k:]
		if len(d.buf) == size {
			d.blocks++
			d.last = Goertzel(d.buf, d.Rate, d.Freq)
			if d.Present(d.buf) {
				d.hits++
			}
			d.buf = d.buf[:0]
		}
	}
	return nil
}

// Blocks returns how many complete blocks were analysed.
func (d *ToneDetector) Blocks() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.blocks
}

// Hits returns how many blocks held the tone.
func (d *ToneDetector) Hits() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hits
}

// Last returns the Goertzel fraction of the most recent block.
func (d *ToneDetector) Last() float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// ToneGenerator produces a continuous sine wave, frame after frame, with no
// phase jump between calls.
type ToneGenerator struct {
	// Freq is the tone frequency in Hz.
	Freq float64
	// Rate is the sample rate in Hz.
	Rate int
	// Amplitude is the peak level (default 8000, about -12 dBFS).
	Amplitude float64
	n         int64
}

// NewToneGenerator returns a generator of freq at rate with amplitude 8000.
func NewToneGenerator(freq float64, rate int) *ToneGenerator {
	return &ToneGenerator{Freq: freq, Rate: rate, Amplitude: 8000}
}

// Fill writes the next len(pcm) samples of the tone into pcm.
func (g *ToneGenerator) Fill(pcm []int16) {
	a := g.Amplitude
	if a == 0 {
		a = 8000
	}
	w := 2 * math.Pi * g.Freq / float64(g.Rate)
	for i := range pcm {
		pcm[i] = int16(a * math.Sin(w*float64(g.n)))
		g.n++
	}
}

// Tone returns ms milliseconds of a sine of freq at rate with amplitude amp.
func Tone(freq float64, rate, ms int, amp float64) []int16 {
	pcm := make([]int16, rate*ms/1000)
	g := &ToneGenerator{Freq: freq, Rate: rate, Amplitude: amp}
	g.Fill(pcm)
	return pcm
}
