// Package opus wraps libopus (through gopkg.in/hraban/opus.v2, cgo) for
// mono VoIP audio.
//
// Hot path: an Encoder or Decoder is made for one PCM rate (8000, 12000,
// 16000, 24000 or 48000 Hz). libopus encodes from and decodes to each of
// these rates natively, so a G.711 bridge runs Opus at 8 kHz: received Opus
// is decoded straight to 8 kHz and 8 kHz PCM is encoded as narrowband Opus,
// with no resampler anywhere. Encode, Decode, Conceal and DecodeFEC work on
// caller-owned buffers and do not allocate. The RTP clock of Opus is always
// 48000 Hz whatever the PCM rate (RFC 7587 section 4.1): a 20 ms packet
// advances the timestamp by 960.
package opus

import (
	"errors"
	"fmt"

	hopus "gopkg.in/hraban/opus.v2"
)

// ClockRate is the RTP clock rate of Opus in Hz (RFC 7587).
const ClockRate = 48000

// Rates lists the PCM sample rates libopus supports natively, highest first.
var Rates = []int{48000, 24000, 16000, 12000, 8000}

// MaxPacket is the largest Opus packet the encoder produces (RFC 6716 section 3.4).
const MaxPacket = 1275

// Default encoder settings.
const (
	DefaultComplexity = 5
	DefaultBitrate    = 24000
)

// ErrRate is returned for a PCM rate libopus does not support.
var ErrRate = errors.New("opus: unsupported sample rate")

// Options tunes an Encoder. Zero values select the defaults.
type Options struct {
	// Complexity is the encoder complexity 0-10 (default 5).
	Complexity int
	// Bitrate is the target bitrate in bit/s (default 24000).
	Bitrate int
	// FEC enables in-band forward error correction (LBRR).
	FEC bool
	// PacketLossPercent is the expected loss, 0-100; FEC only adds
	// redundancy when it is above zero (default 10 when FEC is set).
	PacketLossPercent int
	// DTX enables discontinuous transmission during silence.
	DTX bool
}

func checkRate(rate int) error {
	for _, r := range Rates {
		if r == rate {
			return nil
		}
	}
	return fmt.Errorf("%w: %d", ErrRate, rate)
}

// Encoder encodes mono PCM at one rate into Opus packets. It is not safe
// for concurrent use.
type Encoder struct {
	enc  *hopus.Encoder
	rate int
	opts Options
}

// NewEncoder makes a mono VoIP encoder for PCM at rate Hz.
func NewEncoder(rate int, opts Options) (*Encoder, error) {
	if err := checkRate(rate); err != nil {
		return nil, err
	}
	if opts.Complexity == 0 {
		opts.Complexity = DefaultComplexity
	}
	if opts.Complexity < 0 || opts.Complexity > 10 {
		return nil, fmt.Errorf("opus: complexity %d out of range 0-10", opts.Complexity)
	}
	if opts.Bitrate == 0 {
		opts.Bitrate = DefaultBitrate
	}
	if opts.Bitrate < 500 || opts.Bitrate > 512000 {
		return nil, fmt.Errorf("opus: bitrate %d out of range 500-512000", opts.Bitrate)
	}
	if opts.FEC && opts.PacketLossPercent == 0 {
		opts.PacketLossPercent = 10
	}
	if opts.PacketLossPercent < 0 || opts.PacketLossPercent > 100 {
		return nil, fmt.Errorf("opus: packet loss %d%% out of range", opts.PacketLossPercent)
	}
	e, err := hopus.NewEncoder(rate, 1, hopus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("opus: new encoder: %w", err)
	}
	steps := []struct {
		name string
		err  error
	}{
		{"complexity", e.SetComplexity(opts.Complexity)},
		{"bitrate", e.SetBitrate(opts.Bitrate)},
		{"fec", e.SetInBandFEC(opts.FEC)},
		{"packet loss", e.SetPacketLossPerc(opts.PacketLossPercent)},
		{"dtx", e.SetDTX(opts.DTX)},
	}
	for _, s := range steps {
		if s.err != nil {
			return nil, fmt.Errorf("opus: set %s: %w", s.name, s.err)
		}
	}
	return &Encoder{enc: e, rate: rate, opts: opts}, nil
}

// Encode encodes one frame of pcm (2.5, 5, 10, 20, 40 or 60 ms at the
// encoder's rate) into dst and returns the packet length.
func (e *Encoder) Encode(pcm []int16, dst []byte) (int, error) {
	n, err := e.enc.Encode(pcm, dst)
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Rate returns the PCM rate the encoder takes.
func (e *Encoder) Rate() int { return e.rate }

// Options returns the settings in force, defaults filled in.
func (e *Encoder) Options() Options { return e.opts }

// String describes the encoder, e.g. "opus(encode 8k c5)".
func (e *Encoder) String() string {
	return fmt.Sprintf("opus(encode %dk c%d)", e.rate/1000, e.opts.Complexity)
}

// Decoder decodes Opus packets to mono PCM at one rate. It is not safe for
// concurrent use.
type Decoder struct {
	dec  *hopus.Decoder
	rate int
}

// NewDecoder makes a mono decoder producing PCM at rate Hz.
func NewDecoder(rate int) (*Decoder, error) {
	if err := checkRate(rate); err != nil {
		return nil, err
	}
	d, err := hopus.NewDecoder(rate, 1)
	if err != nil {
		return nil, fmt.Errorf("opus: new decoder: %w", err)
	}
	return &Decoder{dec: d, rate: rate}, nil
}

// Decode decodes payload into pcm and returns the number of samples. pcm
// must hold the packet's whole duration (120 ms at most).
func (d *Decoder) Decode(payload []byte, pcm []int16) (int, error) {
	if len(payload) == 0 || len(pcm) == 0 {
		return 0, errEmpty
	}
	// libopus takes the capacity as the frame size; never let it write
	// past len(pcm).
	return d.dec.Decode(payload, pcm[:len(pcm):len(pcm)])
}

// Conceal synthesises len(pcm) samples of lost audio with Opus packet loss
// concealment. len(pcm) must be a multiple of 2.5 ms at the decoder's rate.
func (d *Decoder) Conceal(pcm []int16) (int, error) {
	if len(pcm) == 0 {
		return 0, errEmpty
	}
	if err := d.dec.DecodePLC(pcm[:len(pcm):len(pcm)]); err != nil {
		return 0, err
	}
	return len(pcm), nil
}

// DecodeFEC recovers the frame lost just before payload from payload's
// in-band FEC data, falling back to concealment when payload carries none.
// len(pcm) must be the lost duration. Afterwards decode payload itself as
// usual.
func (d *Decoder) DecodeFEC(payload []byte, pcm []int16) (int, error) {
	if len(payload) == 0 || len(pcm) == 0 {
		return 0, errEmpty
	}
	if err := d.dec.DecodeFEC(payload, pcm[:len(pcm):len(pcm)]); err != nil {
		return 0, err
	}
	return len(pcm), nil
}

// Rate returns the PCM rate the decoder produces.
func (d *Decoder) Rate() int { return d.rate }

// String describes the decoder, e.g. "opus(decode 8k)".
func (d *Decoder) String() string { return fmt.Sprintf("opus(decode %dk)", d.rate/1000) }

var errEmpty = errors.New("opus: empty payload or pcm buffer")
