// Package codecs describes the audio codecs the gateway speaks and makes
// their encoders and decoders.
//
// A Codec is a descriptor: SDP name, RTP clock rate, default payload type,
// SDP channel count and the PCM rates it encodes from and decodes to without
// resampling. Implementations live in codecs/g711, codecs/g722 and
// codecs/opus.
//
// Hot path: Encoder.Encode and Decoder.Decode/Conceal write into
// caller-owned buffers and do not allocate; the RTP endpoint in package
// media calls them once per 20 ms frame. Pick the PCM rate with
// media.CommonRate so that Opus runs at 8 kHz against G.711 (no resampler).
package codecs

import (
	"errors"
	"fmt"
	"strings"

	"github.com/matrix-gateway/gateway/codecs/g711"
	"github.com/matrix-gateway/gateway/codecs/g722"
	"github.com/matrix-gateway/gateway/codecs/opus"
)

// Encoder turns one frame of mono PCM into one codec payload.
type Encoder interface {
	// Encode encodes pcm into dst and returns the payload length.
	Encode(pcm []int16, dst []byte) (int, error)
	String() string
}

// Decoder turns codec payloads back into mono PCM.
type Decoder interface {
	// Decode decodes payload into pcm and returns the number of samples.
	Decode(payload []byte, pcm []int16) (int, error)
	// Conceal fills pcm with a stand-in for a lost frame and returns len(pcm).
	Conceal(pcm []int16) (int, error)
	String() string
}

// FECDecoder is a Decoder that can recover a lost frame from the in-band
// forward error correction data of the packet that follows it.
type FECDecoder interface {
	Decoder
	// DecodeFEC fills pcm (the lost duration) from next's FEC data.
	DecodeFEC(next []byte, pcm []int16) (int, error)
}

// Codec describes one audio codec.
type Codec struct {
	// Name is the SDP encoding name ("PCMU", "PCMA", "opus").
	Name string
	// ClockRate is the RTP timestamp clock in Hz (8000; 48000 for Opus).
	ClockRate int
	// PayloadType is the static RTP payload type, or the conventional
	// dynamic one (111 for Opus) when Dynamic is set.
	PayloadType uint8
	// Dynamic reports that the payload type must be negotiated in SDP.
	Dynamic bool
	// Channels is the channel count written in SDP rtpmap (2 for Opus per
	// RFC 7587, though the gateway encodes mono).
	Channels int
	// Fmtp is the default SDP fmtp parameters, empty if none.
	Fmtp string
	// Rates lists the PCM rates the codec works at natively, preferred first.
	Rates []int
	// MaxPayload is the largest payload one 20 ms frame encodes to.
	MaxPayload int
	// NewEncoder makes an encoder taking PCM at rate Hz.
	NewEncoder func(rate int) (Encoder, error)
	// NewDecoder makes a decoder producing PCM at rate Hz.
	NewDecoder func(rate int) (Decoder, error)
}

// String returns the SDP rtpmap form, e.g. "PCMU/8000" or "opus/48000/2".
func (c Codec) String() string {
	if c.Channels > 1 {
		return fmt.Sprintf("%s/%d/%d", c.Name, c.ClockRate, c.Channels)
	}
	return fmt.Sprintf("%s/%d", c.Name, c.ClockRate)
}

// SupportsRate reports whether the codec works at PCM rate without resampling.
func (c Codec) SupportsRate(rate int) bool {
	for _, r := range c.Rates {
		if r == rate {
			return true
		}
	}
	return false
}

// ErrUnknown is returned by Lookup for a codec the gateway does not have.
var ErrUnknown = errors.New("codecs: unknown codec")

// PCMU is G.711 u-law.
var PCMU = g711Codec(g711.ULaw, 0)

// PCMA is G.711 A-law.
var PCMA = g711Codec(g711.ALaw, 8)

// G722 is ITU-T G.722 at 64 kbit/s: 16 kHz PCM, but an RTP clock of 8000 Hz
// and static payload type 9 (RFC 3551 section 4.5.2).
var G722 = Codec{
	Name:        "G722",
	ClockRate:   g722.ClockRate,
	PayloadType: g722.PayloadType,
	Channels:    1,
	Rates:       []int{g722.Rate},
	MaxPayload:  g722.FrameBytes,
	NewEncoder: func(rate int) (Encoder, error) {
		e, err := g722.NewEncoder(rate)
		if err != nil {
			return nil, err
		}
		return e, nil
	},
	NewDecoder: func(rate int) (Decoder, error) {
		d, err := g722.NewDecoder(rate)
		if err != nil {
			return nil, err
		}
		return d, nil
	},
}

// Opus is Opus with the default encoder settings (VoIP, complexity 5,
// 24 kbit/s, no FEC).
var Opus = OpusWith(opus.Options{})

func g711Codec(law g711.Law, pt uint8) Codec {
	return Codec{
		Name:        law.String(),
		ClockRate:   g711.Rate,
		PayloadType: pt,
		Channels:    1,
		Rates:       []int{g711.Rate},
		MaxPayload:  g711.Rate * 20 / 1000,
		NewEncoder: func(rate int) (Encoder, error) {
			e, err := g711.NewEncoder(law, rate)
			if err != nil {
				return nil, err
			}
			return e, nil
		},
		NewDecoder: func(rate int) (Decoder, error) {
			d, err := g711.NewDecoder(law, rate)
			if err != nil {
				return nil, err
			}
			return d, nil
		},
	}
}

// OpusWith returns the Opus descriptor whose encoders use opts.
func OpusWith(opts opus.Options) Codec {
	fmtp := "minptime=10;useinbandfec=1"
	return Codec{
		Name:        "opus",
		ClockRate:   opus.ClockRate,
		PayloadType: 111,
		Dynamic:     true,
		Channels:    2,
		Fmtp:        fmtp,
		Rates:       opus.Rates,
		MaxPayload:  opus.MaxPacket,
		NewEncoder: func(rate int) (Encoder, error) {
			e, err := opus.NewEncoder(rate, opts)
			if err != nil {
				return nil, err
			}
			return e, nil
		},
		NewDecoder: func(rate int) (Decoder, error) {
			d, err := opus.NewDecoder(rate)
			if err != nil {
				return nil, err
			}
			return d, nil
		},
	}
}

// All returns the built-in codecs in the gateway's order of preference.
func All() []Codec { return []Codec{Opus, G722, PCMU, PCMA} }

// Lookup finds a codec by SDP encoding name, ignoring case.
func Lookup(name string) (Codec, error) {
	for _, c := range All() {
		if strings.EqualFold(c.Name, name) {
			return c, nil
		}
	}
	return Codec{}, fmt.Errorf("%w: %q", ErrUnknown, name)
}
