// Package g711 implements ITU-T G.711 u-law (PCMU) and A-law (PCMA) with
// lookup tables and no allocation.
//
// Hot path: Encode and Decode are plain table loops over caller-owned
// buffers (about 1 ns per sample). The encode tables are indexed by the top
// 14 (u-law) or 13 (A-law) bits of the 16-bit sample, exactly the precision
// the reference algorithm (ITU-T G.191 / Sun g711.c) looks at, so the tables
// are bit-exact with it. Tables are computed once at package init.
package g711

import (
	"errors"
	"fmt"
)

// Law selects the G.711 companding law.
type Law uint8

const (
	// ULaw is G.711 u-law, RTP payload type 0 (PCMU).
	ULaw Law = iota
	// ALaw is G.711 A-law, RTP payload type 8 (PCMA).
	ALaw
)

// String returns the SDP encoding name of the law.
func (l Law) String() string {
	if l == ALaw {
		return "PCMA"
	}
	return "PCMU"
}

// Rate is the only sample rate G.711 works at, in Hz.
const Rate = 8000

// ErrRate is returned when an encoder or decoder is requested at a rate other than 8000 Hz.
var ErrRate = errors.New("g711: sample rate must be 8000")

var (
	ulawEnc [1 << 14]byte
	alawEnc [1 << 13]byte
	ulawDec [256]int16
	alawDec [256]int16
)

func init() {
	for i := range ulawEnc {
		ulawEnc[i] = linearToULaw(int16(uint16(i) << 2))
	}
	for i := range alawEnc {
		alawEnc[i] = linearToALaw(int16(uint16(i) << 3))
	}
	for i := range 256 {
		ulawDec[i] = uLawToLinear(byte(i))
		alawDec[i] = aLawToLinear(byte(i))
	}
}

// EncodeULaw writes one u-law byte per sample of pcm into dst and returns the
// number written, min(len(dst), len(pcm)).
func EncodeULaw(dst []byte, pcm []int16) int {
	n := min(len(dst), len(pcm))
	dst, pcm = dst[:n], pcm[:n]
	for i, s := range pcm {
		dst[i] = ulawEnc[uint16(s)>>2]
	}
	return n
}

// EncodeALaw writes one A-law byte per sample of pcm into dst and returns the
// number written, min(len(dst), len(pcm)).
func EncodeALaw(dst []byte, pcm []int16) int {
	n := min(len(dst), len(pcm))
	dst, pcm = dst[:n], pcm[:n]
	for i, s := range pcm {
		dst[i] = alawEnc[uint16(s)>>3]
	}
	return n
}

// DecodeULaw writes one sample per u-law byte of src into pcm and returns the
// number written, min(len(pcm), len(src)).
func DecodeULaw(pcm []int16, src []byte) int {
	n := min(len(pcm), len(src))
	pcm, src = pcm[:n], src[:n]
	for i, b := range src {
		pcm[i] = ulawDec[b]
	}
	return n
}

// DecodeALaw writes one sample per A-law byte of src into pcm and returns the
// number written, min(len(pcm), len(src)).
func DecodeALaw(pcm []int16, src []byte) int {
	n := min(len(pcm), len(src))
	pcm, src = pcm[:n], src[:n]
	for i, b := range src {
		pcm[i] = alawDec[b]
	}
	return n
}

// Encoder encodes 8 kHz PCM with one law. It is stateless and safe for
// concurrent use.
type Encoder struct{ law Law }

// NewEncoder returns an encoder for law at rate, which must be 8000.
func NewEncoder(law Law, rate int) (*Encoder, error) {
	if rate != Rate {
		return nil, fmt.Errorf("%w: got %d", ErrRate, rate)
	}
	return &Encoder{law: law}, nil
}

// Encode writes len(pcm) bytes into dst; dst must be at least that long.
func (e *Encoder) Encode(pcm []int16, dst []byte) (int, error) {
	if len(dst) < len(pcm) {
		return 0, errShortDst
	}
	if e.law == ALaw {
		return EncodeALaw(dst, pcm), nil
	}
	return EncodeULaw(dst, pcm), nil
}

// String returns "PCMU(encode)" or "PCMA(encode)".
func (e *Encoder) String() string { return e.law.String() + "(encode)" }

var (
	errShortDst = errors.New("g711: destination buffer too short")
	errShortPCM = errors.New("g711: pcm buffer too short for payload")
)
