// Package media carries audio between call legs: PCM frames, the writer
// chain, RTP sessions, the WebRTC peer, reordering and loss concealment.
//
// The hot path is a push model: a leg's receive goroutine decodes each packet
// straight to the sample rate the far leg's codec works at and calls the far
// leg's PCMWriter synchronously. Nothing on that path allocates, locks a
// contended mutex or logs; problems are counted instead.
package media

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// FrameMillis is the frame duration used inside the gateway, in milliseconds.
const FrameMillis = 20

// SamplesPerFrame returns the number of mono samples in one frame at rate Hz.
func SamplesPerFrame(rate int) int { return rate * FrameMillis / 1000 }

// PCMWriter consumes 16-bit mono PCM at the rate agreed when it was made.
// pcm may hold any number of samples (a G.711 peer may send 10, 20 or 30 ms
// packets); the writer must not keep pcm after returning. WritePCM is called
// from one goroutine at a time.
type PCMWriter interface {
	WritePCM(pcm []int16) error
}

// Endpoint is one leg's audio: what it receives from its peer (decoded and
// pushed to a sink) and what it sends to its peer (a writer that encodes).
type Endpoint interface {
	// Rates lists the PCM sample rates this endpoint decodes to and encodes
	// from without resampling, preferred first (G.711: 8000; Opus: 48000,
	// 24000, 16000, 12000, 8000).
	Rates() []int
	// Writer returns the writer that encodes PCM at rate and sends it to the
	// peer. It is valid until the endpoint is closed.
	Writer(rate int) (PCMWriter, error)
	// SetSink makes the endpoint decode received audio at rate and push it
	// to w. A nil w drops received audio. It may be called while audio flows.
	SetSink(rate int, w PCMWriter) error
	// String describes the endpoint's codec chain, e.g. "PCMU/8000".
	String() string
}

// ErrNoCommonRate is returned by Bridge when two endpoints share no rate.
var ErrNoCommonRate = errors.New("media: endpoints share no sample rate")

// CommonRate picks the rate two endpoints should exchange: the first of a's
// rates that b also supports, preferring the fixed rate of a narrowband codec
// so that Opus is decoded straight to 8 kHz for G.711 (no resampler).
func CommonRate(a, b Endpoint) (int, error) {
	ar, br := a.Rates(), b.Rates()
	// Prefer the side with fewer choices: its first rate is its native one.
	if len(br) < len(ar) {
		ar, br = br, ar
	}
	for _, r := range ar {
		for _, s := range br {
			if r == s {
				return r, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: %v vs %v", ErrNoCommonRate, a.Rates(), b.Rates())
}

// Bridge connects two endpoints in both directions at their common rate.
//
// Two endpoints with the same PayloadFormat (Opus on both legs) exchange
// encoded frames instead: nothing is decoded or re-encoded, and rate is the
// codec's clock rate.
func Bridge(a, b Endpoint) (rate int, err error) {
	rate, err = CommonRate(a, b)
	if err != nil {
		return 0, err
	}
	if bridgePayloads(a, b) {
		return rate, nil
	}
	wa, err := a.Writer(rate)
	if err != nil {
		return 0, fmt.Errorf("media: %s writer: %w", a, err)
	}
	wb, err := b.Writer(rate)
	if err != nil {
		return 0, fmt.Errorf("media: %s writer: %w", b, err)
	}
	if err := a.SetSink(rate, wb); err != nil {
		return 0, err
	}
	if err := b.SetSink(rate, wa); err != nil {
		_ = a.SetSink(rate, nil)
		return 0, err
	}
	return rate, nil
}

// Unbridge stops both endpoints from pushing audio to each other.
func Unbridge(a, b Endpoint) {
	for _, e := range []Endpoint{a, b} {
		if e != nil {
			_ = e.SetSink(0, nil)
			unbridgePayloads(e)
		}
	}
}

// SinkSlot holds a PCMWriter that a receive goroutine reads on every frame
// while another goroutine may swap it. Loading it is one atomic load.
type SinkSlot struct {
	p atomic.Pointer[sinkBox]
}

type sinkBox struct{ w PCMWriter }

// Store replaces the writer; nil clears it.
func (s *SinkSlot) Store(w PCMWriter) {
	if w == nil {
		s.p.Store(nil)
		return
	}
	s.p.Store(&sinkBox{w})
}

// Load returns the current writer or nil.
func (s *SinkSlot) Load() PCMWriter {
	if b := s.p.Load(); b != nil {
		return b.w
	}
	return nil
}
