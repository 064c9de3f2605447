package g722

import (
	"fmt"

	"github.com/matrix-gateway/gateway/codecs/plc"
)

// Decoder decodes G.722 at 64 kbit/s to 16 kHz PCM and conceals lost frames
// by repeating the last 20 ms decoded with a linear fade to silence over
// 60 ms. It is not safe for concurrent use.
type Decoder struct {
	low, high band
	x         [24]int32 // receive QMF delay line
	plc       plc.Fade  // concealment: the last 20 ms, faded out over 60 ms
}

// NewDecoder returns a decoder producing PCM at rate, which must be 16000.
func NewDecoder(rate int) (*Decoder, error) {
	if rate != Rate {
		return nil, fmt.Errorf("%w: got %d", ErrRate, rate)
	}
	d := &Decoder{}
	d.Reset()
	return d, nil
}

// Reset returns the decoder to its initial state.
func (d *Decoder) Reset() {
	*d = Decoder{plc: plc.NewFade(Rate)}
	d.low.reset(32)
	d.high.reset(8)
}

// Decode decodes payload (one byte per two samples) into pcm, which must
// hold 2*len(payload) samples, and returns the number of samples written.
func (d *Decoder) Decode(payload []byte, pcm []int16) (int, error) {
	n := 2 * len(payload)
	if len(pcm) < n {
		return 0, ErrShortBuf
	}
	for j, code := range payload {
		d.decodeByte(code, pcm[2*j:2*j+2])
	}
	d.remember(pcm[:n])
	return n, nil
}

// decodeByte decodes one code byte into two output samples.
func (d *Decoder) decodeByte(code byte, out []int16) {
	c := int32(code)
	lo := &d.low
	// Low band: INVQBL (6-bit, for the output), RECONS, LIMIT.
	ilow := c & 0x3f
	rlow := lo.s + (lo.det*qm6[ilow])>>15
	if rlow > 16383 {
		rlow = 16383
	} else if rlow < -16384 {
		rlow = -16384
	}
	// INVQAL (4-bit, for the predictor), LOGSCL, SCALEL, block 4.
	ril := ilow >> 2
	dlow := (lo.det * qm4[ril]) >> 15
	lo.scale(wl[rl42[ril]], 18432, 8)
	lo.update(dlow)

	// High band: INVQAH, RECONS, LIMIT, LOGSCH, SCALEH, block 4.
	hi := &d.high
	ihigh := (c >> 6) & 3
	dhigh := (hi.det * qm2[ihigh]) >> 15
	rhigh := dhigh + hi.s
	if rhigh > 16383 {
		rhigh = 16383
	} else if rhigh < -16384 {
		rhigh = -16384
	}
	hi.scale(wh[rh2[ihigh]], 22528, 10)
	hi.update(dhigh)

	// Receive QMF.
	copy(d.x[:22], d.x[2:])
	d.x[22] = rlow + rhigh
	d.x[23] = rlow - rhigh
	var xout1, xout2 int32
	for i := 0; i < 12; i++ {
		xout2 += d.x[2*i] * qmf[i]
		xout1 += d.x[2*i+1] * qmf[11-i]
	}
	out[0] = int16(sat16(xout1 >> 11))
	out[1] = int16(sat16(xout2 >> 11))
}

func (d *Decoder) remember(pcm []int16) { d.plc.Remember(pcm) }

// Conceal fills all of pcm with a faded repetition of the last audio
// decoded, or silence once the fade has run out or if nothing was decoded.
// The ADPCM state is left as it was: the next real frame continues from it.
func (d *Decoder) Conceal(pcm []int16) (int, error) { return d.plc.Conceal(pcm), nil }

// String returns "G722(decode)".
func (d *Decoder) String() string { return "G722(decode)" }
