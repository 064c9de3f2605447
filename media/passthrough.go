package media

import "strconv"

// PayloadWriter takes encoded frames from a bridged peer of the same codec.
// tsDelta and seqDelta are how far the peer's stream advanced since its
// previous frame (lost packets show as seqDelta > 1), so the writer can keep
// the gaps in the stream it sends. It must not keep payload.
type PayloadWriter interface {
	WritePayload(payload []byte, tsDelta uint32, seqDelta uint16) error
}

// PayloadEndpoint is an optional Endpoint capability: two endpoints with the
// same PayloadFormat exchange encoded frames directly (Opus on both legs is
// not transcoded). Bridge uses it when both sides have it.
type PayloadEndpoint interface {
	// PayloadFormat names the encoding, e.g. "opus/48000"; "" for none.
	PayloadFormat() string
	// PayloadWriter sends encoded frames of that format.
	PayloadWriter() PayloadWriter
	// SetPayloadSink makes received frames go to w, undecoded; nil stops it.
	SetPayloadSink(w PayloadWriter)
}

// PassThrough reports whether Bridge connects a and b frame to frame.
func PassThrough(a, b Endpoint) bool {
	pa, okA := a.(PayloadEndpoint)
	pb, okB := b.(PayloadEndpoint)
	return okA && okB && pa.PayloadFormat() != "" && pa.PayloadFormat() == pb.PayloadFormat()
}

// bridgePayloads connects a and b frame to frame when both can; ok false
// means they must be bridged through PCM.
func bridgePayloads(a, b Endpoint) bool {
	if !PassThrough(a, b) {
		return false
	}
	pa, pb := a.(PayloadEndpoint), b.(PayloadEndpoint)
	_ = a.SetSink(0, nil)
	_ = b.SetSink(0, nil)
	pa.SetPayloadSink(pb.PayloadWriter())
	pb.SetPayloadSink(pa.PayloadWriter())
	return true
}

func unbridgePayloads(e Endpoint) {
	if p, ok := e.(PayloadEndpoint); ok {
		p.SetPayloadSink(nil)
	}
}

// PayloadFormat implements PayloadEndpoint: Opus frames pass through
// unchanged between two Opus legs; other codecs are always bridged as PCM.
func (e *RTPEndpoint) PayloadFormat() string {
	if e.codec.Name != "opus" {
		return ""
	}
	return e.codec.Name + "/" + strconv.Itoa(e.codec.ClockRate)
}

// PayloadWriter implements PayloadEndpoint.
func (e *RTPEndpoint) PayloadWriter() PayloadWriter { return (*rtpPayloadWriter)(e) }

// SetPayloadSink implements PayloadEndpoint.
func (e *RTPEndpoint) SetPayloadSink(w PayloadWriter) {
	if w == nil {
		e.psink.Store(nil)
		return
	}
	e.psink.Store(&payloadSink{w: w})
}

type payloadSink struct{ w PayloadWriter }

// rtpPayloadWriter sends a peer's frames on the endpoint's own stream.
type rtpPayloadWriter RTPEndpoint

// WritePayload implements PayloadWriter.
func (w *rtpPayloadWriter) WritePayload(payload []byte, tsDelta uint32, seqDelta uint16) error {
	e := (*RTPEndpoint)(w)
	if e.closed.Load() {
		return ErrClosed
	}
	return e.send.sendPayload(payload, tsDelta, seqDelta)
}

// sendPayload writes an already encoded frame, mirroring the peer stream's
// timestamp and sequence advance; a queued DTMF digit replaces the frame as
// it does audio frames.
func (s *rtpSender) sendPayload(payload []byte, tsDelta uint32, seqDelta uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(payload) > MaxPacketSize-rtpHeaderLen {
		s.e.cnt.malformed.Add(1)
		return nil
	}
	if s.passing {
		s.ts += tsDelta
		if seqDelta > 1 {
			s.seq += seqDelta - 1 // keep the peer's losses visible
		}
	} else {
		s.passing, s.marker = true, true
	}
	if s.dtmf.wants() {
		err := s.sendEventFrame(tsDelta)
		s.ts -= tsDelta // sendEventFrame advanced it again; s.ts stays the last sent frame's
		return err
	}
	n := copy(s.pkt[rtpHeaderLen:], payload)
	putRTPHeader(s.pkt[:], s.marker, s.e.pt, s.seq, s.ts, s.ssrc)
	s.seq++
	s.marker = false
	if err := s.w.WritePacket(s.pkt[:rtpHeaderLen+n]); err != nil {
		s.e.cnt.writeErr.Add(1)
		return err
	}
	s.e.cnt.packetsOut.Add(1)
	s.e.cnt.bytesOut.Add(uint64(n))
	s.e.cnt.passedThrough.Add(1)
	return nil
}
