package g711

import "fmt"

// concealFade is how many samples (60 ms at 8 kHz) a run of concealed audio
// takes to fade from the last received frame to silence.
const concealFade = 480

// histLen is how much received audio the decoder keeps for concealment (20 ms).
const histLen = 160

// Decoder decodes 8 kHz G.711 and conceals lost frames by repeating the last
// 20 ms received with a linear fade to silence over 60 ms. It is not safe
// for concurrent use.
type Decoder struct {
	law       Law
	hist      [histLen]int16
	nhist     int // valid samples in hist
	pos       int // read position in hist while concealing
	concealed int // samples concealed since the last real frame
}

// NewDecoder returns a decoder for law at rate, which must be 8000.
func NewDecoder(law Law, rate int) (*Decoder, error) {
	if rate != Rate {
		return nil, fmt.Errorf("%w: got %d", ErrRate, rate)
	}
	return &Decoder{law: law}, nil
}

// Decode writes one sample per payload byte into pcm; pcm must be at least
// len(payload) long.
func (d *Decoder) Decode(payload []byte, pcm []int16) (int, error) {
	if len(pcm) < len(payload) {
		return 0, errShortPCM
	}
	var n int
	if d.law == ALaw {
		n = DecodeALaw(pcm, payload)
	} else {
		n = DecodeULaw(pcm, payload)
	}
	d.remember(pcm[:n])
	return n, nil
}

func (d *Decoder) remember(pcm []int16) {
	d.concealed, d.pos = 0, 0
	if len(pcm) >= histLen {
		d.nhist = copy(d.hist[:], pcm[len(pcm)-histLen:])
		return
	}
	// Shift the old tail left and append the short frame.
	keep := min(d.nhist, histLen-len(pcm))
	copy(d.hist[:keep], d.hist[d.nhist-keep:d.nhist])
	d.nhist = keep + copy(d.hist[keep:], pcm)
}

// Conceal fills all of pcm with a faded repetition of the last audio
// received, or silence once the fade has run out or if nothing was received.
func (d *Decoder) Conceal(pcm []int16) (int, error) {
	for i := range pcm {
		if d.nhist == 0 || d.concealed >= concealFade {
			pcm[i] = 0
			continue
		}
		gain := int32(concealFade - d.concealed)
		pcm[i] = int16(int32(d.hist[d.pos]) * gain / concealFade)
		d.concealed++
		d.pos++
		if d.pos >= d.nhist {
			d.pos = 0
		}
	}
	return len(pcm), nil
}

// String returns "PCMU(decode)" or "PCMA(decode)".
func (d *Decoder) String() string { return d.law.String() + "(decode)" }
