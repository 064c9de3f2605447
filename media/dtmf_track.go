// WebRTC side of DTMF: the codecs registered with pion, a local track that
// carries Opus and telephone-event packets on one SSRC, and the mapping of
// the peer's payload types to the gateway's fixed ones.

package media

import (
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Payload types of telephone-event on the WebRTC side. Between a Peer and
// its RTPEndpoint every telephone-event packet carries
// WebRTCEventPayloadType with durations in DTMFEventClock (8 kHz) units,
// whatever the browser negotiated; the track and ReadPacket convert.
const (
	WebRTCEventPayloadType   uint8 = 101 // telephone-event/8000, offered by the gateway
	WebRTCEvent48PayloadType uint8 = 110 // telephone-event/48000, offered by the gateway
)

const mimeTelephoneEvent = "audio/telephone-event"

// RegisterAudioCodecs registers what the gateway's WebRTC peers speak:
// Opus (PT 111) and telephone-event at 48000 Hz (PT 110, as browsers offer
// it next to Opus) and 8000 Hz (PT 101).
func RegisterAudioCodecs(me *webrtc.MediaEngine) error {
	codecs := []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: OpusPayloadType},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mimeTelephoneEvent, ClockRate: 48000,
			SDPFmtpLine: "0-16"}, PayloadType: webrtc.PayloadType(WebRTCEvent48PayloadType)},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mimeTelephoneEvent, ClockRate: 8000,
			SDPFmtpLine: "0-16"}, PayloadType: webrtc.PayloadType(WebRTCEventPayloadType)},
	}
	for _, c := range codecs {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			return err
		}
	}
	return nil
}

// AudioTrack is a pion TrackLocal sending one Opus stream and the
// telephone-event packets that share its SSRC and sequence numbers.
// Write takes packets numbered with OpusPayloadType and
// WebRTCEventPayloadType and rewrites SSRC and payload types to the
// negotiated ones (pion's TrackLocalStaticRTP would force every packet to
// the Opus payload type).
type AudioTrack struct {
	id, streamID string
	b            atomic.Pointer[trackBinding]
	mu           sync.Mutex // serialises Write, which reuses hdr and ev
	hdr          rtp.Header
	ev           [DTMFPayloadLen]byte
	fast         atomic.Pointer[fastDest] // the fast send path (webrtc_fast_peer.go); nil: through pion
	fs           fastSend                 // guarded by mu
	fastSent     atomic.Uint64            // packets sent on the fast path
}

type trackBinding struct {
	id         string
	ssrc       uint32
	opusPT     uint8
	eventPT    uint8 // 0: the peer took no telephone-event
	eventClock int
	ws         webrtc.TrackLocalWriter
}

var _ webrtc.TrackLocal = (*AudioTrack)(nil)

// NewAudioTrack makes an unbound audio track.
func NewAudioTrack(id, streamID string) *AudioTrack {
	return &AudioTrack{id: id, streamID: streamID}
}

// Bind implements webrtc.TrackLocal: it picks the negotiated Opus format and
// the telephone-event format, preferring the one at Opus's 48 kHz clock.
func (t *AudioTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	b := &trackBinding{id: ctx.ID(), ssrc: uint32(ctx.SSRC()), ws: ctx.WriteStream()}
	var opus *webrtc.RTPCodecParameters
	for i, c := range ctx.CodecParameters() {
		switch {
		case strings.EqualFold(c.MimeType, webrtc.MimeTypeOpus) && opus == nil:
			opus = &ctx.CodecParameters()[i]
		case strings.EqualFold(c.MimeType, mimeTelephoneEvent):
			if b.eventPT == 0 || (c.ClockRate == 48000 && b.eventClock != 48000) {
				b.eventPT, b.eventClock = uint8(c.PayloadType), int(c.ClockRate)
			}
		}
	}
	if opus == nil {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	b.opusPT = uint8(opus.PayloadType)
	t.b.Store(b)
	return *opus, nil
}

// Unbind implements webrtc.TrackLocal.
func (t *AudioTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	if b := t.b.Load(); b != nil && b.id == ctx.ID() {
		t.b.Store(nil)
		return nil
	}
	return webrtc.ErrUnbindFailed
}

// ID implements webrtc.TrackLocal.
func (t *AudioTrack) ID() string { return t.id }

// RID implements webrtc.TrackLocal.
func (t *AudioTrack) RID() string { return "" }

// StreamID implements webrtc.TrackLocal.
func (t *AudioTrack) StreamID() string { return t.streamID }

// Kind implements webrtc.TrackLocal.
func (t *AudioTrack) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeAudio }

// boundSSRC is the SSRC the track sends with, 0 before it is bound.
func (t *AudioTrack) boundSSRC() uint32 {
	if b := t.b.Load(); b != nil {
		return b.ssrc
	}
	return 0
}

// CanSendDTMF reports whether the bound peer negotiated telephone-event.
func (t *AudioTrack) CanSendDTMF() bool {
	b := t.b.Load()
	return b != nil && b.eventPT != 0
}

// Write sends one RTP packet. Before the track is bound, and for events the
// peer did not negotiate, the packet is dropped without error.
func (t *AudioTrack) Write(pkt []byte) (int, error) {
	b := t.b.Load()
	if b == nil {
		return len(pkt), nil
	}
	var h rtpHeader
	if !parseRTP(pkt, &h) {
		return 0, errors.New("media: not an RTP packet")
	}
	payload := pkt[h.payloadAt:h.payloadTo]
	t.mu.Lock()
	defer t.mu.Unlock()
	t.hdr = rtp.Header{Version: 2, Marker: h.marker, PayloadType: b.opusPT, SequenceNumber: h.seq, Timestamp: h.ts, SSRC: b.ssrc}
	if h.pt == WebRTCEventPayloadType {
		if b.eventPT == 0 || len(payload) < DTMFPayloadLen {
			return len(pkt), nil
		}
		t.hdr.PayloadType = b.eventPT
		if b.eventClock != DTMFEventClock && b.eventClock > 0 {
			copy(t.ev[:], payload)
			d := uint64(binary.BigEndian.Uint16(t.ev[2:])) * uint64(b.eventClock) / DTMFEventClock
			binary.BigEndian.PutUint16(t.ev[2:], uint16(min(d, 0xFFFF)))
			payload = t.ev[:]
		}
	}
	t.fs.countSeq(h.seq)
	if d := t.fast.Load(); d != nil {
		err := t.fs.write(d, &t.hdr, payload)
		if err == nil {
			t.fastSent.Add(1)
			return len(pkt), nil
		}
		if !errors.Is(err, errNoSocketYet) {
			return 0, err
		}
	}
	if _, err := b.ws.WriteRTP(&t.hdr, payload); err != nil {
		return 0, err
	}
	return len(pkt), nil
}

// ptKind classifies a remote payload type for ReadPacket.
type ptKind uint8

const (
	ptUnknown ptKind = iota
	ptOpus
	ptEvent8k
	ptEvent48k
	ptOther
)

// normaliseRemote rewrites a packet read from the remote track in place:
// Opus to OpusPayloadType, telephone-event to WebRTCEventPayloadType with
// durations in DTMFEventClock units. kinds caches the classification of
// each payload type; codec returns the negotiated codec of a payload type.
func normaliseRemote(pkt []byte, kinds *[128]ptKind, codec func(pt uint8) webrtc.RTPCodecParameters) {
	if len(pkt) < rtpHeaderLen {
		return
	}
	pt := pkt[1] & 0x7F
	k := kinds[pt]
	if k == ptUnknown {
		c := codec(pt)
		switch {
		case strings.EqualFold(c.MimeType, webrtc.MimeTypeOpus):
			k = ptOpus
		case strings.EqualFold(c.MimeType, mimeTelephoneEvent) && c.ClockRate == 48000:
			k = ptEvent48k
		case strings.EqualFold(c.MimeType, mimeTelephoneEvent):
			k = ptEvent8k
		default:
			k = ptOther
		}
		kinds[pt] = k
	}
	switch k {
	case ptOpus:
		pkt[1] = pkt[1]&0x80 | OpusPayloadType
	case ptEvent8k:
		pkt[1] = pkt[1]&0x80 | WebRTCEventPayloadType
	case ptEvent48k:
		pkt[1] = pkt[1]&0x80 | WebRTCEventPayloadType
		var h rtpHeader
		if parseRTP(pkt, &h) && h.payloadTo-h.payloadAt >= DTMFPayloadLen {
			d := pkt[h.payloadAt+2:]
			binary.BigEndian.PutUint16(d, binary.BigEndian.Uint16(d)/6)
		}
	}
}
