package media

import (
	"math"
	"strings"
	"time"
)

// A simplified ITU-T G.107 E-model: R = Ro - Is - Id - Ie,eff + A with the
// default Ro - Is = 93.2 and A = 0, the delay impairment Id from the
// one-way delay (the Cole-Rosenbluth fit of G.107's Idd for the default
// echo parameters), and Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl/BurstR + Bpl)
// with random loss (BurstR = 1). R maps to MOS by G.107 Annex B.

// emodelCodec holds a codec's equipment impairment Ie and packet-loss
// robustness Bpl (ITU-T G.113 Appendix I), and its algorithmic delay.
type emodelCodec struct {
	ie, bpl float64
	algo    time.Duration // frame + lookahead, on top of packetisation
}

// emodelCodecs: G.711 with packet loss concealment is Ie 0, Bpl 25.1
// (G.113 Appendix I). G.722 at 64 kbit/s is given the narrowband-scale
// values of G.711 (it is at least as good). G.113 lists no Opus entry; the
// values used here (Ie 11, Bpl 20, as published estimates for Opus
// narrowband/wideband around 16-24 kbit/s) are an assumption.
var emodelCodecs = map[string]emodelCodec{
	"pcmu": {ie: 0, bpl: 25.1, algo: 0},
	"pcma": {ie: 0, bpl: 25.1, algo: 0},
	"g722": {ie: 0, bpl: 25.1, algo: 1500 * time.Microsecond},
	"opus": {ie: 11, bpl: 20, algo: 6500 * time.Microsecond},
}

func emodelFor(codec string) emodelCodec {
	if c, ok := emodelCodecs[strings.ToLower(codec)]; ok {
		return c
	}
	return emodelCodecs["pcmu"]
}

// EModelDelay estimates the mouth-to-ear delay the E-model uses for a
// stream: half the round trip (the network), a receiver jitter buffer of
// three times the measured jitter but at least one frame, one frame of
// packetisation and the codec's algorithmic delay. rtt 0 (unknown) adds
// no network delay.
func EModelDelay(codec string, rtt, jitter time.Duration) time.Duration {
	frame := FrameMillis * time.Millisecond
	return rtt/2 + max(3*jitter, frame) + frame + emodelFor(codec).algo
}

// EstimateMOS returns the E-model MOS (1.0-4.5) of a stream with the given
// codec (an encoding name such as "PCMU" or "opus"), one-way delay and
// random packet loss fraction (0..1).
func EstimateMOS(codec string, delay time.Duration, loss float64) float64 {
	return MOSFromR(RFactor(codec, delay, loss))
}

// RFactor returns the E-model transmission rating R (0-93.2).
func RFactor(codec string, delay time.Duration, loss float64) float64 {
	c := emodelFor(codec)
	d := float64(delay) / float64(time.Millisecond)
	id := 0.024 * d
	if d > 177.3 {
		id += 0.11 * (d - 177.3)
	}
	ppl := 100 * math.Max(0, math.Min(1, loss))
	ieEff := c.ie + (95-c.ie)*ppl/(ppl+c.bpl)
	return math.Max(0, 93.2-id-ieEff)
}

// MOSFromR maps an R factor to the MOS scale (ITU-T G.107 Annex B).
func MOSFromR(r float64) float64 {
	switch {
	case r <= 0:
		return 1
	case r >= 100:
		return 4.5
	}
	return 1 + 0.035*r + r*(r-60)*(100-r)*7e-6
}
