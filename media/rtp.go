// RTP endpoint: the hot path.
//
// Receive (one goroutine per endpoint, rtp_recv.go): ReadPacket into a
// reused 1500-byte buffer -> parseRTP (no allocation, no pion) -> payload
// type and SSRC filter -> sequencing: in-order packets are delivered at
// once; a packet ahead of a gap is copied into one of ReorderWindow hold
// slots; when the window overflows the gap is declared lost and concealed
// (PLC, or Opus FEC from the held packet for the last missing frame, at most
// 100 ms) -> Decoder.Decode straight to the sink's rate -> sink.WritePCM,
// synchronously, which for a bridge is the far endpoint's writer. No timer
// runs: a held packet waits for the next arrival, so only audio after a
// loss or reordering is delayed, by one packet interval per held packet.
//
// Send (the caller's goroutine, rtp_send.go): WritePCM copies into a 20 ms
// frame buffer; each full frame is encoded into a reused packet buffer after
// the 12-byte header and written with one PacketWriter call.
//
// Everything is counted in atomics (RTPStats); nothing logs.

package media

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/matrix-gateway/gateway/codecs"
)

// PacketReader delivers received RTP packets, one per call. ReadPacket
// blocks until a packet arrives; an error ends the endpoint's receive
// goroutine. A UDPSession implements it, and so can an adapter over a pion
// TrackRemote.
type PacketReader interface {
	ReadPacket(buf []byte) (n int, err error)
}

// PacketWriter sends one RTP packet. It must not keep pkt after returning.
type PacketWriter interface {
	WritePacket(pkt []byte) error
}

// MaxPacketSize is the largest RTP packet the endpoint reads or writes.
const MaxPacketSize = 1500

// Defaults for RTPConfig.
const (
	DefaultReorderWindow = 1
	// ssrcSwitchAfter is how many packets in a row from one new SSRC make
	// the endpoint lock onto it (the sender restarted or was replaced).
	ssrcSwitchAfter = 5
)

// ErrClosed is returned by an endpoint's methods after Close.
var ErrClosed = errors.New("media: endpoint closed")

// RTPConfig configures an RTPEndpoint.
type RTPConfig struct {
	// Codec is the negotiated codec (required).
	Codec codecs.Codec
	// PayloadType is the negotiated RTP payload type; 0 means
	// Codec.PayloadType (0 is PCMU's static type, never a dynamic one).
	PayloadType uint8
	// EventPayloadType is the negotiated telephone-event type (RFC 4733),
	// 0 if none. Received events are decoded (DTMFHandler) and SendDTMF
	// sends them; event durations count DTMFEventClock units.
	EventPayloadType uint8
	// DTMFHandler, if set, receives each digit the peer sends as
	// telephone-event, once and in order (see also SetDTMFHandler).
	DTMFHandler DTMFHandler
	// SSRC is our sending SSRC; 0 picks a random one.
	SSRC uint32
	// ReorderWindow is how many out-of-order packets are held while waiting
	// for a missing one, 1 or 2 (default 1). Each held packet delays audio
	// after a loss by one packet interval; nothing is delayed otherwise.
	ReorderWindow int
	// Reader supplies received packets; nil makes a send-only endpoint. If
	// it implements io.Closer, Close closes it and waits for the receive
	// goroutine; otherwise the owner must make ReadPacket return.
	Reader PacketReader
	// Writer sends our packets (required).
	Writer PacketWriter
	// DeadMediaTimeout is how long the peer may send nothing before the
	// function given to OnDeadMedia is called; 0 disables the watch.
	DeadMediaTimeout time.Duration
}

// RTPStats is a snapshot of an RTPEndpoint's counters.
type RTPStats struct {
	PacketsIn, BytesIn     uint64 // accepted media packets and their payload bytes
	PacketsOut, BytesOut   uint64 // sent packets and their payload bytes
	Lost                   uint64 // sequence numbers never received
	Concealed              uint64 // frames synthesised by concealment
	FECRecovered           uint64 // frames decoded through the FEC path (libopus falls back to PLC if the next packet has no FEC)
	Reordered              uint64 // packets that arrived after a later one and were put back in order
	Duplicates             uint64 // packets received twice, dropped
	Late                   uint64 // packets arriving after their gap was concealed, dropped
	WrongSSRC, SSRCChanges uint64 // packets from a foreign SSRC; switches to a new SSRC
	WrongPT, Events        uint64 // packets of an unexpected payload type; telephone-event packets
	EventsOut, DigitsIn    uint64 // telephone-event packets sent; digits decoded from received events
	Malformed              uint64 // packets that are not RTP v2
	DecodeErrors           uint64
	EncodeErrors           uint64
	WriteErrors            uint64
	SinkErrors             uint64 // errors returned by the sink
	PassedThrough          uint64 // frames sent as received from a bridged peer of the same codec, not re-encoded
}

type rtpCounters struct {
	packetsIn, bytesIn, packetsOut, bytesOut, lost, concealed, fec, reordered, dups, late,
	wrongSSRC, ssrcChanges, wrongPT, events, eventsOut, digitsIn, malformed, decodeErr, encodeErr, writeErr, sinkErr, passedThrough atomic.Uint64
}

// RTPEndpoint is an Endpoint that sends and receives one codec over RTP.
//
// Receiving: one goroutine reads packets into a reused buffer, parses the
// header without allocating, keeps only the negotiated payload type and the
// SSRC it locked onto, puts packets back in order within a window of one or
// two packets, conceals lost frames (Opus PLC or FEC; G.711 fade), decodes
// straight to the sink's rate and calls the sink. Sending: the PCMWriter
// from Writer re-frames PCM into 20 ms frames, encodes and writes packets
// with our SSRC, sequence number and timestamp. Neither path allocates.
type RTPEndpoint struct {
	codec    codecs.Codec
	pt       uint8
	eventPT  uint8
	window   int
	reader   PacketReader
	cnt      rtpCounters
	sink     atomic.Pointer[rtpSink]
	psink    atomic.Pointer[payloadSink] // passthrough: received frames go here undecoded
	health   endpointHealth              // reception statistics, RTCP reports, dead-media watch (health.go)
	onDTMF   atomic.Pointer[DTMFHandler]
	closed   atomic.Bool
	done     chan struct{}
	readErr  error // set by the receive goroutine before done is closed
	send     rtpSender
	wmu      sync.Mutex
	writers  map[int]*rtpWriter
	closeErr error
	once     sync.Once
}

type rtpSink struct {
	rate int
	w    PCMWriter
}

var _ Endpoint = (*RTPEndpoint)(nil)

// NewRTPEndpoint validates cfg and starts the receive goroutine if cfg has
// a Reader.
func NewRTPEndpoint(cfg RTPConfig) (*RTPEndpoint, error) {
	if cfg.Codec.Name == "" || cfg.Codec.NewDecoder == nil || cfg.Codec.NewEncoder == nil {
		return nil, errors.New("media: RTPConfig.Codec is required")
	}
	if cfg.Writer == nil {
		return nil, errors.New("media: RTPConfig.Writer is required")
	}
	if cfg.PayloadType == 0 {
		cfg.PayloadType = cfg.Codec.PayloadType
	}
	if cfg.PayloadType > 127 || cfg.EventPayloadType > 127 {
		return nil, fmt.Errorf("media: payload type out of range: %d/%d", cfg.PayloadType, cfg.EventPayloadType)
	}
	if cfg.ReorderWindow == 0 {
		cfg.ReorderWindow = DefaultReorderWindow
	}
	if cfg.ReorderWindow < 1 || cfg.ReorderWindow > maxHold {
		return nil, fmt.Errorf("media: reorder window %d not in 1..%d", cfg.ReorderWindow, maxHold)
	}
	if cfg.SSRC == 0 {
		var b [4]byte
		for cfg.SSRC == 0 {
			if _, err := rand.Read(b[:]); err != nil {
				return nil, fmt.Errorf("media: random SSRC: %w", err)
			}
			cfg.SSRC = binary.BigEndian.Uint32(b[:])
		}
	}
	e := &RTPEndpoint{
		codec:   cfg.Codec,
		pt:      cfg.PayloadType,
		eventPT: cfg.EventPayloadType,
		window:  cfg.ReorderWindow,
		reader:  cfg.Reader,
		done:    make(chan struct{}),
		writers: make(map[int]*rtpWriter),
	}
	e.send.init(e, cfg.Writer, cfg.SSRC)
	e.health.init(cfg.Codec.ClockRate, cfg.DeadMediaTimeout)
	// A transport that reads the peer's RTCP itself (the WebRTC peer) feeds
	// the endpoint's view of the far end: loss, jitter and round trip.
	if rs, ok := cfg.Reader.(interface{ reportTo(*remoteReport) }); ok {
		rs.reportTo(&e.health.remote)
	}
	// A transport that sends RTCP reports itself (the WebRTC peer) reports
	// about this endpoint.
	if ra, ok := cfg.Reader.(interface{ attachEndpoint(*RTPEndpoint) }); ok {
		defer ra.attachEndpoint(e)
	}
	if cfg.DTMFHandler != nil {
		e.SetDTMFHandler(cfg.DTMFHandler)
	}
	if cfg.Reader == nil {
		close(e.done)
		return e, nil
	}
	r := newRTPReceiver(e)
	go r.run()
	return e, nil
}

// Rates returns the PCM rates the codec works at natively, preferred first.
func (e *RTPEndpoint) Rates() []int { return e.codec.Rates }

// String returns the codec, e.g. "PCMU/8000" or "opus/48000/2".
func (e *RTPEndpoint) String() string { return e.codec.String() }

// Codec returns the endpoint's codec.
func (e *RTPEndpoint) Codec() codecs.Codec { return e.codec }

// SSRC returns the SSRC of the packets we send.
func (e *RTPEndpoint) SSRC() uint32 { return e.send.ssrc }

// SetSink makes the receive goroutine decode at rate and push PCM to w; a
// nil w drops received audio. Safe to call while audio flows: the next
// packet sees the new sink (one atomic load per packet).
func (e *RTPEndpoint) SetSink(rate int, w PCMWriter) error {
	if w == nil {
		e.sink.Store(nil)
		return nil
	}
	if e.closed.Load() {
		return ErrClosed
	}
	if !e.codec.SupportsRate(rate) {
		return fmt.Errorf("media: %s cannot decode to %d Hz", e.codec, rate)
	}
	e.sink.Store(&rtpSink{rate: rate, w: w})
	return nil
}

// Writer returns the PCMWriter that encodes PCM at rate and sends it. The
// same writer is returned for the same rate. All writers of an endpoint
// share one RTP stream, so feed only one of them at a time.
func (e *RTPEndpoint) Writer(rate int) (PCMWriter, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	if !e.codec.SupportsRate(rate) {
		return nil, fmt.Errorf("media: %s cannot encode from %d Hz", e.codec, rate)
	}
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if w := e.writers[rate]; w != nil {
		return w, nil
	}
	enc, err := e.codec.NewEncoder(rate)
	if err != nil {
		return nil, fmt.Errorf("media: %s encoder: %w", e.codec, err)
	}
	w := &rtpWriter{
		e:      e,
		rate:   rate,
		enc:    enc,
		frame:  make([]int16, SamplesPerFrame(rate)),
		tsStep: uint32(e.codec.ClockRate * FrameMillis / 1000),
	}
	e.writers[rate] = w
	return w, nil
}

// SetDTMFHandler sets (nil: clears) the function that receives the digits
// the peer sends as telephone-event. Safe while audio flows.
func (e *RTPEndpoint) SetDTMFHandler(h DTMFHandler) {
	if h == nil {
		e.onDTMF.Store(nil)
		return
	}
	e.onDTMF.Store(&h)
}

// Stats returns a snapshot of the counters.
func (e *RTPEndpoint) Stats() RTPStats {
	c := &e.cnt
	return RTPStats{
		PacketsIn: c.packetsIn.Load(), BytesIn: c.bytesIn.Load(),
		PacketsOut: c.packetsOut.Load(), BytesOut: c.bytesOut.Load(),
		Lost: c.lost.Load(), Concealed: c.concealed.Load(), FECRecovered: c.fec.Load(),
		Reordered: c.reordered.Load(), Duplicates: c.dups.Load(), Late: c.late.Load(),
		WrongSSRC: c.wrongSSRC.Load(), SSRCChanges: c.ssrcChanges.Load(),
		WrongPT: c.wrongPT.Load(), Events: c.events.Load(), Malformed: c.malformed.Load(),
		EventsOut: c.eventsOut.Load(), DigitsIn: c.digitsIn.Load(),
		DecodeErrors: c.decodeErr.Load(), EncodeErrors: c.encodeErr.Load(),
		WriteErrors: c.writeErr.Load(), SinkErrors: c.sinkErr.Load(), PassedThrough: c.passedThrough.Load(),
	}
}

// Done is closed when the receive goroutine has ended.
func (e *RTPEndpoint) Done() <-chan struct{} { return e.done }

// Err returns the error that ended the receive goroutine, nil if it is
// still running or was ended by Close.
func (e *RTPEndpoint) Err() error {
	select {
	case <-e.done:
		if e.closed.Load() {
			return nil
		}
		return e.readErr
	default:
		return nil
	}
}

// Close stops pushing to the sink, makes writers return ErrClosed, closes
// the Reader if it is an io.Closer and then waits for the receive
// goroutine. It is idempotent; the Writer transport is not closed.
func (e *RTPEndpoint) Close() error {
	e.once.Do(func() {
		e.closed.Store(true)
		e.sink.Store(nil)
		e.stopHealth()
		if c, ok := e.reader.(io.Closer); ok {
			e.closeErr = c.Close()
			<-e.done
		}
	})
	return e.closeErr
}
