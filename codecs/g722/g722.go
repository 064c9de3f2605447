// Package g722 implements ITU-T G.722 (7 kHz audio coding within 64 kbit/s,
// sub-band ADPCM) in its 64 kbit/s mode, in pure Go.
//
// The codec takes 16 kHz mono PCM: a quadrature mirror filter splits it into
// a low band (coded with 6 bits per sample) and a high band (2 bits), giving
// one byte per pair of input samples, 160 bytes per 20 ms frame.
//
// RTP quirk (RFC 3551 section 4.5.2): although G.722 samples at 16 kHz, its
// RTP clock rate is 8000 Hz, both in SDP ("G722/8000") and in RTP
// timestamps, and its static payload type is 9.
//
// Hot path: Encoder.Encode and Decoder.Decode work on caller-owned buffers
// and do not allocate. Samples are 16-bit linear; the codec works on 15 bits
// internally, like the ITU-T reference with its 14-bit samples shifted up.
package g722

import (
	"errors"
	"fmt"
)

// Rate is the PCM sample rate G.722 works at, in Hz.
const Rate = 16000

// ClockRate is the RTP timestamp clock of G.722 (RFC 3551), in Hz.
const ClockRate = 8000

// PayloadType is G.722's static RTP payload type (RFC 3551).
const PayloadType = 9

// FrameBytes is the payload size of one 20 ms frame at 64 kbit/s.
const FrameBytes = 160

// Errors returned by the encoder and decoder.
var (
	ErrRate     = errors.New("g722: sample rate must be 16000")
	ErrOddFrame = errors.New("g722: PCM sample count must be even")
	ErrShortBuf = errors.New("g722: destination buffer too short")
)

// Tables from ITU-T G.722 (1988), section 3 and the reference code.
var (
	// q6 holds the low-band quantiser decision levels (QUANTL), scaled.
	q6 = [32]int32{
		0, 35, 72, 110, 150, 190, 233, 276,
		323, 370, 422, 473, 530, 587, 650, 714,
		786, 858, 940, 1023, 1121, 1219, 1339, 1458,
		1612, 1765, 1980, 2195, 2557, 2919, 0, 0,
	}
	// iln and ilp map a decision interval to the 6-bit code for a negative
	// and a positive difference.
	iln = [32]int32{
		0, 63, 62, 31, 30, 29, 28, 27,
		26, 25, 24, 23, 22, 21, 20, 19,
		18, 17, 16, 15, 14, 13, 12, 11,
		10, 9, 8, 7, 6, 5, 4, 0,
	}
	ilp = [32]int32{
		0, 61, 60, 59, 58, 57, 56, 55,
		54, 53, 52, 51, 50, 49, 48, 47,
		46, 45, 44, 43, 42, 41, 40, 39,
		38, 37, 36, 35, 34, 33, 32, 0,
	}
	// wl is the low-band log scale factor multiplier (LOGSCL).
	wl = [8]int32{-60, -30, 58, 172, 334, 538, 1198, 3042}
	// rl42 maps the 4-bit low-band code to its magnitude index.
	rl42 = [16]int32{0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0}
	// ilb is the inverse log table used by SCALEL and SCALEH.
	ilb = [32]int32{
		2048, 2093, 2139, 2186, 2233, 2282, 2332,
		2383, 2435, 2489, 2543, 2599, 2656, 2714,
		2774, 2834, 2896, 2960, 3025, 3091, 3158,
		3228, 3298, 3371, 3444, 3520, 3597, 3676,
		3756, 3838, 3922, 4008,
	}
	// qm4 is the 4-bit low-band inverse quantiser (INVQAL), used for
	// prediction in both encoder and decoder.
	qm4 = [16]int32{
		0, -20456, -12896, -8968,
		-6288, -4240, -2584, -1200,
		20456, 12896, 8968, 6288,
		4240, 2584, 1200, 0,
	}
	// qm6 is the 6-bit low-band inverse quantiser (INVQBL), used for the
	// decoder's output at 64 kbit/s.
	qm6 = [64]int32{
		-136, -136, -136, -136,
		-24808, -21904, -19008, -16704,
		-14984, -13512, -12280, -11192,
		-10232, -9360, -8576, -7856,
		-7192, -6576, -6000, -5456,
		-4944, -4464, -4008, -3576,
		-3168, -2776, -2400, -2032,
		-1688, -1360, -1040, -728,
		24808, 21904, 19008, 16704,
		14984, 13512, 12280, 11192,
		10232, 9360, 8576, 7856,
		7192, 6576, 6000, 5456,
		4944, 4464, 4008, 3576,
		3168, 2776, 2400, 2032,
		1688, 1360, 1040, 728,
		432, 136, -432, -136,
	}
	// qm2 is the 2-bit high-band inverse quantiser (INVQAH).
	qm2 = [4]int32{-7408, -1616, 7408, 1616}
	// wh is the high-band log scale factor multiplier (LOGSCH).
	wh = [3]int32{0, -214, 798}
	// rh2 maps the 2-bit high-band code to its magnitude index.
	rh2 = [4]int32{2, 1, 2, 1}
	// ihn and ihp map the high-band magnitude to the code for a negative
	// and a positive difference.
	ihn = [3]int32{0, 1, 0}
	ihp = [3]int32{0, 3, 2}
	// qmf is one half of the 24-tap quadrature mirror filter.
	qmf = [12]int32{3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11}
)

func sat16(v int32) int32 {
	if v > 32767 {
		return 32767
	}
	if v < -32768 {
		return -32768
	}
	return v
}

// band is the adaptive predictor and scale factor state of one sub-band.
type band struct {
	s, sp, sz int32    // predictor output: total, pole part, zero part
	r         [3]int32 // reconstructed signal, delayed
	a, ap     [3]int32 // pole predictor coefficients (index 1, 2)
	b, bp     [7]int32 // zero predictor coefficients (index 1..6)
	d         [7]int32 // quantised difference signal, delayed
	p         [3]int32 // partially reconstructed signal, delayed
	nb        int32    // log scale factor
	det       int32    // scale factor
}

func (b *band) reset(det int32) {
	*b = band{det: det}
}

// scale updates the log scale factor by step, clamps it to maxNB and
// recomputes det (blocks LOGSCL/SCALEL and LOGSCH/SCALEH); shift is 8 for
// the low band and 10 for the high band.
func (b *band) scale(step, maxNB, shift int32) {
	nb := (b.nb*127)>>7 + step
	if nb < 0 {
		nb = 0
	} else if nb > maxNB {
		nb = maxNB
	}
	b.nb = nb
	i := (nb >> 6) & 31
	sh := shift - (nb >> 11)
	var w int32
	if sh < 0 {
		w = ilb[i] << -sh
	} else {
		w = ilb[i] >> sh
	}
	b.det = w << 2
}

// update runs block 4 (RECONS, PARREC, UPPOL2, UPPOL1, UPZERO, DELAYA,
// FILTEP, FILTEZ, PREDIC) with the quantised difference d.
func (b *band) update(d int32) {
	b.d[0] = d
	b.r[0] = sat16(b.s + d)
	b.p[0] = sat16(b.sz + d)

	// UPPOL2
	var sg [7]int32
	for i := 0; i < 3; i++ {
		sg[i] = b.p[i] >> 15
	}
	wd1 := sat16(b.a[1] << 2)
	wd2 := wd1
	if sg[0] == sg[1] {
		wd2 = -wd1
	}
	if wd2 > 32767 {
		wd2 = 32767
	}
	wd3 := wd2 >> 7
	if sg[0] == sg[2] {
		wd3 += 128
	} else {
		wd3 -= 128
	}
	wd3 += (b.a[2] * 32512) >> 15
	if wd3 > 12288 {
		wd3 = 12288
	} else if wd3 < -12288 {
		wd3 = -12288
	}
	b.ap[2] = wd3

	// UPPOL1
	wd1 = -192
	if sg[0] == sg[1] {
		wd1 = 192
	}
	wd2 = (b.a[1] * 32640) >> 15
	b.ap[1] = sat16(wd1 + wd2)
	wd3 = sat16(15360 - b.ap[2])
	if b.ap[1] > wd3 {
		b.ap[1] = wd3
	} else if b.ap[1] < -wd3 {
		b.ap[1] = -wd3
	}

	// UPZERO
	wd1 = 0
	if d != 0 {
		wd1 = 128
	}
	sg[0] = d >> 15
	for i := 1; i < 7; i++ {
		sg[i] = b.d[i] >> 15
		wd2 = -wd1
		if sg[i] == sg[0] {
			wd2 = wd1
		}
		wd3 = (b.b[i] * 32640) >> 15
		b.bp[i] = sat16(wd2 + wd3)
	}

	// DELAYA
	for i := 6; i > 0; i-- {
		b.d[i] = b.d[i-1]
		b.b[i] = b.bp[i]
	}
	for i := 2; i > 0; i-- {
		b.r[i] = b.r[i-1]
		b.p[i] = b.p[i-1]
		b.a[i] = b.ap[i]
	}

	// FILTEP
	wd1 = sat16(b.r[1] + b.r[1])
	wd1 = (b.a[1] * wd1) >> 15
	wd2 = sat16(b.r[2] + b.r[2])
	wd2 = (b.a[2] * wd2) >> 15
	b.sp = sat16(wd1 + wd2)

	// FILTEZ
	var sz int32
	for i := 6; i > 0; i-- {
		w := sat16(b.d[i] + b.d[i])
		sz += (b.b[i] * w) >> 15
	}
	b.sz = sat16(sz)

	// PREDIC
	b.s = sat16(b.sp + b.sz)
}

// Encoder encodes 16 kHz PCM to G.722 at 64 kbit/s. It is not safe for
// concurrent use.
type Encoder struct {
	low, high band
	x         [24]int32 // transmit QMF delay line
}

// NewEncoder returns an encoder taking PCM at rate, which must be 16000.
func NewEncoder(rate int) (*Encoder, error) {
	if rate != Rate {
		return nil, fmt.Errorf("%w: got %d", ErrRate, rate)
	}
	e := &Encoder{}
	e.Reset()
	return e, nil
}

// Reset returns the encoder to its initial state.
func (e *Encoder) Reset() {
	e.low.reset(32)
	e.high.reset(8)
	e.x = [24]int32{}
}

// Encode encodes pcm (an even number of samples) into dst, one byte per two
// samples, and returns the number of bytes written.
func (e *Encoder) Encode(pcm []int16, dst []byte) (int, error) {
	if len(pcm)%2 != 0 {
		return 0, ErrOddFrame
	}
	n := len(pcm) / 2
	if len(dst) < n {
		return 0, ErrShortBuf
	}
	for j := 0; j < n; j++ {
		dst[j] = e.encodePair(int32(pcm[2*j]), int32(pcm[2*j+1]))
	}
	return n, nil
}

// encodePair runs the transmit QMF on two samples and codes the resulting
// low- and high-band samples into one byte.
func (e *Encoder) encodePair(s0, s1 int32) byte {
	copy(e.x[:22], e.x[2:])
	e.x[22], e.x[23] = s0, s1
	var sumOdd, sumEven int32
	for i := 0; i < 12; i++ {
		sumOdd += e.x[2*i] * qmf[i]
		sumEven += e.x[2*i+1] * qmf[11-i]
	}
	xlow := (sumEven + sumOdd) >> 14
	xhigh := (sumEven - sumOdd) >> 14

	// Low band: SUBTRA, QUANTL.
	lo := &e.low
	el := sat16(xlow - lo.s)
	wd := el
	if el < 0 {
		wd = -(el + 1)
	}
	i := 1
	for ; i < 30; i++ {
		if wd < (q6[i]*lo.det)>>12 {
			break
		}
	}
	ilow := ilp[i]
	if el < 0 {
		ilow = iln[i]
	}
	// INVQAL, LOGSCL, SCALEL, block 4.
	ril := ilow >> 2
	dlow := (lo.det * qm4[ril]) >> 15
	lo.scale(wl[rl42[ril]], 18432, 8)
	lo.update(dlow)

	// High band: SUBTRA, QUANTH.
	hi := &e.high
	eh := sat16(xhigh - hi.s)
	wd = eh
	if eh < 0 {
		wd = -(eh + 1)
	}
	mih := 1
	if wd >= (564*hi.det)>>12 {
		mih = 2
	}
	ihigh := ihp[mih]
	if eh < 0 {
		ihigh = ihn[mih]
	}
	// INVQAH, LOGSCH, SCALEH, block 4.
	dhigh := (hi.det * qm2[ihigh]) >> 15
	hi.scale(wh[rh2[ihigh]], 22528, 10)
	hi.update(dhigh)

	return byte(ihigh<<6 | ilow)
}

// String returns "G722(encode)".
func (e *Encoder) String() string { return "G722(encode)" }
