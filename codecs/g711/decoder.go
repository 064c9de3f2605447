package g711

import (
	"fmt"

	"github.com/matrix-gateway/gateway/codecs/plc"
)

// Decoder decodes 8 kHz G.711 and conceals lost frames by repeating the last
// 20 ms received with a linear fade to silence over 60 ms. It is not safe
// for concurrent use.
type Decoder struct {
	law Law
	plc plc.Fade // concealment: the last 20 ms, faded out over 60 ms
}

// NewDecoder returns a decoder for law at rate, which must be 8000.
func NewDecoder(law Law, rate int) (*Decoder, error) {
	if rate != Rate {
		return nil, fmt.Errorf("%w: got %d", ErrRate, rate)
	}
	return &Decoder{law: law, plc: plc.NewFade(Rate)}, nil
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

func (d *Decoder) remember(pcm []int16) { d.plc.Remember(pcm) }

// Conceal fills all of pcm with a faded repetition of the last audio
// received, or silence once the fade has run out or if nothing was received.
func (d *Decoder) Conceal(pcm []int16) (int, error) { return d.plc.Conceal(pcm), nil }

// String returns "PCMU(decode)" or "PCMA(decode)".
func (d *Decoder) String() string { return d.law.String() + "(decode)" }
