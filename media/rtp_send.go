package media

import (
	"fmt"
	"sync"
	"time"

	"github.com/matrix-gateway/gateway/codecs"
)

// rtpSender owns the outgoing RTP stream state shared by an endpoint's
// writers. Its mutex is only contended if two writers are fed at once,
// which the Writer contract rules out.
type rtpSender struct {
	e        *RTPEndpoint
	w        PacketWriter
	ssrc     uint32
	mu       sync.Mutex
	seq      uint16
	ts       uint32
	marker   bool
	lastSend time.Time
	dtmf     dtmfSender // telephone-event packets replacing audio frames
	passing  bool       // frames come from a peer (passthrough); ts is the last sent frame's
	pumping  bool       // a DTMF pump runs (no audio was flowing when a digit came)
	pumpSent bool       // the pump sent the last frame (so lastSend is the pump's)
	pkt      [MaxPacketSize]byte
}

func (s *rtpSender) init(e *RTPEndpoint, w PacketWriter, ssrc uint32) {
	s.e, s.w, s.ssrc = e, w, ssrc
	s.marker = true
	// Random initial sequence number and timestamp (RFC 3550 section 5.1).
	s.seq = uint16(ssrc >> 7)
	s.ts = ssrc * 2654435761
}

// rtpWriter is the PCMWriter of an RTPEndpoint for one PCM rate: it
// collects PCM into 20 ms frames and sends each as one packet.
type rtpWriter struct {
	e      *RTPEndpoint
	rate   int
	enc    codecs.Encoder
	frame  []int16
	n      int // samples buffered in frame
	tsStep uint32
}

// WritePCM buffers pcm and sends every complete 20 ms frame.
func (w *rtpWriter) WritePCM(pcm []int16) error {
	if w.e.closed.Load() {
		return ErrClosed
	}
	for len(pcm) > 0 {
		k := copy(w.frame[w.n:], pcm)
		w.n += k
		pcm = pcm[k:]
		if w.n == len(w.frame) {
			w.n = 0
			if err := w.e.send.sendFrame(w); err != nil {
				return err
			}
		}
	}
	return nil
}

// String describes the writer's chain, e.g. "PCMU(encode) -> RTP".
func (w *rtpWriter) String() string { return fmt.Sprintf("%s -> RTP", w.enc) }

// sendFrame encodes w's frame and writes it as one RTP packet.
func (s *rtpSender) sendFrame(w *rtpWriter) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if !s.lastSend.IsZero() {
		// After a pause in the audio (unbridged, on hold) keep the
		// timestamp in step with real time and mark a new talkspurt.
		if gap := now.Sub(s.lastSend); gap > 3*FrameMillis*time.Millisecond {
			frames := uint32(gap/(FrameMillis*time.Millisecond)) - 1
			s.ts += frames * w.tsStep
			s.marker = true
		}
	}
	s.pumpSent = false // audio flows: a running pump stops at its next tick
	if s.dtmf.wants() {
		s.lastSend = now
		return s.sendEventFrame(w.tsStep)
	}
	n, err := w.enc.Encode(w.frame, s.pkt[rtpHeaderLen:])
	if err != nil {
		s.e.cnt.encodeErr.Add(1)
		return err // not wrapped: wrapping would allocate per packet
	}
	putRTPHeader(s.pkt[:], s.marker, s.e.pt, s.seq, s.ts, s.ssrc)
	s.seq++
	s.ts += w.tsStep
	s.marker = false
	s.lastSend = now
	if err := s.w.WritePacket(s.pkt[:rtpHeaderLen+n]); err != nil {
		s.e.cnt.writeErr.Add(1)
		return err // not wrapped: wrapping would allocate per packet
	}
	s.e.cnt.packetsOut.Add(1)
	s.e.cnt.bytesOut.Add(uint64(n))
	return nil
}
