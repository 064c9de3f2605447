// Package plc holds packet loss concealment for codecs that have none of
// their own (G.711, G.722).
package plc

// maxHist is the longest history kept: 20 ms at 48 kHz.
const maxHist = 960

// Fade conceals lost audio by repeating the last 20 ms received with a
// linear fade to silence over 60 ms. It allocates nothing. The zero value is
// not usable: make one with NewFade.
type Fade struct {
	hist      [maxHist]int16
	histLen   int // 20 ms at the rate
	fade      int // 60 ms at the rate
	nhist     int // valid samples in hist
	pos       int // read position in hist while concealing
	concealed int // samples concealed since the last real frame
}

// NewFade returns a concealer for PCM at rate Hz (at most 48000).
func NewFade(rate int) Fade {
	return Fade{histLen: min(rate/50, maxHist), fade: rate * 60 / 1000}
}

// Remember records audio that was received, ending any concealment.
func (f *Fade) Remember(pcm []int16) {
	f.concealed, f.pos = 0, 0
	if len(pcm) >= f.histLen {
		f.nhist = copy(f.hist[:f.histLen], pcm[len(pcm)-f.histLen:])
		return
	}
	// Shift the old tail left and append the short frame.
	keep := min(f.nhist, f.histLen-len(pcm))
	copy(f.hist[:keep], f.hist[f.nhist-keep:f.nhist])
	f.nhist = keep + copy(f.hist[keep:f.histLen], pcm)
}

// Conceal fills all of pcm with a faded repetition of the last audio
// remembered, or silence once the fade has run out or if nothing was
// received, and returns len(pcm).
func (f *Fade) Conceal(pcm []int16) int {
	for i := range pcm {
		if f.nhist == 0 || f.concealed >= f.fade {
			pcm[i] = 0
			continue
		}
		gain := int32(f.fade - f.concealed)
		pcm[i] = int16(int32(f.hist[f.pos]) * gain / int32(f.fade))
		f.concealed++
		f.pos++
		if f.pos >= f.nhist {
			f.pos = 0
		}
	}
	return len(pcm)
}
