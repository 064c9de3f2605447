package media

import (
	"time"

	"github.com/matrix-gateway/gateway/codecs"
)

const (
	// maxHold is the largest reorder window.
	maxHold = 2
	// maxLate is how far behind the expected sequence number a packet may
	// be and still count as late or duplicate; further back means the
	// sender restarted its sequence, and the endpoint resynchronises.
	maxLate = 32
	// maxConcealMillis caps the audio synthesised for one gap.
	maxConcealMillis = 100
	// maxPCM is the decode buffer: 120 ms (the longest Opus packet) at 48 kHz.
	maxPCM = 5760
)

// heldPacket is a copy of an out-of-order packet waiting for its turn.
type heldPacket struct {
	h   rtpHeader
	n   int
	buf [MaxPacketSize]byte
}

// rtpReceiver is the receive side of an RTPEndpoint. Only its goroutine
// touches it, so it needs no locks.
type rtpReceiver struct {
	e   *RTPEndpoint
	cnt *rtpCounters
	buf [MaxPacketSize]byte
	h   rtpHeader

	started  bool
	ssrc     uint32
	next     uint16 // next sequence number expected
	history  uint64 // bit i: sequence number next-1-i was delivered
	lastTS   uint32 // timestamp of the last delivered packet
	lastSeq  uint16 // its sequence number
	lastDur  uint32 // its duration in clock units
	haveLast bool

	other      uint32 // a foreign SSRC seen in a row
	otherCount int

	held  [maxHold + 1]heldPacket // one spare slot while inserting
	nheld int

	dtmf    DTMFDetector
	dec     codecs.Decoder
	fec     codecs.FECDecoder // dec as an FECDecoder, nil if it is not one
	decRate int
	pcm     [maxPCM]int16
}

func newRTPReceiver(e *RTPEndpoint) *rtpReceiver {
	return &rtpReceiver{e: e, cnt: &e.cnt, lastDur: uint32(e.codec.ClockRate * FrameMillis / 1000)}
}

func (r *rtpReceiver) run() {
	defer close(r.e.done)
	for {
		n, err := r.e.reader.ReadPacket(r.buf[:])
		if err != nil {
			r.e.readErr = err
			return
		}
		if r.e.closed.Load() {
			return
		}
		r.handle(r.buf[:n])
	}
}

// handle processes one received packet. pkt is only valid during the call.
// Packets of every payload type from the locked SSRC go through sequencing,
// because telephone-event and comfort-noise packets share the stream's
// sequence numbers (RFC 4733 section 2.1); only media packets are decoded.
func (r *rtpReceiver) handle(pkt []byte) {
	h := &r.h
	if !parseRTP(pkt, h) {
		r.cnt.malformed.Add(1)
		return
	}
	if !r.started {
		r.lock(h)
	} else if h.ssrc != r.ssrc {
		r.cnt.wrongSSRC.Add(1)
		if h.ssrc != r.other {
			r.other, r.otherCount = h.ssrc, 0
		}
		r.otherCount++
		if r.otherCount < ssrcSwitchAfter {
			return
		}
		r.cnt.ssrcChanges.Add(1)
		r.lock(h)
	}
	r.otherCount = 0
	r.e.health.rx.Update(h.ssrc, h.seq, h.ts, monoNanos())

	d := int16(h.seq - r.next)
	switch {
	case d == 0:
		if r.nheld > 0 {
			r.cnt.reordered.Add(1)
		}
		r.deliver(pkt, h)
		r.drainHeld()
	case d < 0:
		if d < -maxLate {
			// The sender restarted its sequence: start over from here.
			r.nheld = 0
			r.next = h.seq
			r.history = 0
			r.deliver(pkt, h)
			return
		}
		age := int(-d) - 1
		if age < 64 && r.history&(1<<age) != 0 {
			r.cnt.dups.Add(1)
		} else {
			r.cnt.late.Add(1)
		}
	default:
		r.hold(pkt, h)
	}
}

// lock starts following h's SSRC from h's sequence number.
func (r *rtpReceiver) lock(h *rtpHeader) {
	r.started = true
	r.ssrc = h.ssrc
	r.next = h.seq
	r.history = 0
	r.nheld = 0
	r.haveLast = false
	r.other, r.otherCount = 0, 0
}

// hold keeps a packet that arrived ahead of a missing one. When more
// packets are held than the window allows, the missing ones are given up
// for lost: concealed, and the held packets delivered.
func (r *rtpReceiver) hold(pkt []byte, h *rtpHeader) {
	// Keep held packets sorted by sequence number; drop duplicates.
	i := 0
	for ; i < r.nheld; i++ {
		hd := int16(h.seq - r.held[i].h.seq)
		if hd == 0 {
			r.cnt.dups.Add(1)
			return
		}
		if hd < 0 {
			break
		}
	}
	copy(r.held[i+1:r.nheld+1], r.held[i:r.nheld])
	hp := &r.held[i]
	hp.n = copy(hp.buf[:], pkt)
	hp.h = *h
	r.nheld++
	for r.nheld > r.e.window {
		// The window is full: the gap before the first held packet is lost.
		r.skipGap()
		r.drainHeld()
	}
}

// drainHeld delivers held packets that are now next in sequence.
func (r *rtpReceiver) drainHeld() {
	for r.nheld > 0 && r.held[0].h.seq == r.next {
		hp := &r.held[0]
		r.deliver(hp.buf[:hp.n], &hp.h)
		// Rotate the used slot to the end so its buffer is reused.
		tmp := r.held[0]
		copy(r.held[:r.nheld-1], r.held[1:r.nheld])
		r.held[r.nheld-1] = tmp
		r.nheld--
	}
}

// skipGap declares the sequence numbers before the first held packet lost,
// conceals the audio they carried and advances to the held packet.
func (r *rtpReceiver) skipGap() {
	first := &r.held[0]
	gap := int(first.h.seq - r.next)
	r.cnt.lost.Add(uint64(gap))
	// Missing duration from timestamps when they look sane, otherwise
	// from the sequence gap and the last packet's duration.
	missing := uint32(gap) * r.lastDur
	if r.haveLast {
		if m := first.h.ts - (r.lastTS + r.lastDur); m > 0 && m <= 2*missing {
			missing = m
		}
	}
	if r.haveLast {
		var next []byte // FEC source: only a media packet carries any
		if first.h.pt == r.e.pt {
			next = first.buf[first.h.payloadAt:first.h.payloadTo]
		}
		r.conceal(missing, next)
	}
	if gap >= 64 {
		r.history = 0
	} else {
		r.history <<= gap
	}
	r.next = first.h.seq
}

// conceal synthesises missing clock units of audio and pushes it to the
// sink, using FEC from next (the first media payload after the gap, nil if
// none) for the last frame when the decoder supports it.
func (r *rtpReceiver) conceal(missing uint32, next []byte) {
	if r.e.psink.Load() != nil {
		return // passthrough: the far end sees the gap and conceals it itself
	}
	s := r.e.sink.Load()
	if s == nil || !r.ensureDecoder(s.rate) {
		return
	}
	clock := uint64(r.e.codec.ClockRate)
	samples := int(uint64(missing) * uint64(s.rate) / clock)
	samples = min(samples, s.rate*maxConcealMillis/1000)
	frame := SamplesPerFrame(s.rate)
	quantum := s.rate / 400 // 2.5 ms, the Opus granularity
	samples -= samples % quantum
	for samples > 0 {
		n := min(samples, frame)
		samples -= n
		pcm := r.pcm[:n]
		var err error
		if samples == 0 && r.fec != nil && next != nil {
			_, err = r.fec.DecodeFEC(next, pcm)
			if err == nil {
				r.cnt.fec.Add(1)
			}
		} else {
			_, err = r.dec.Conceal(pcm)
			if err == nil {
				r.cnt.concealed.Add(1)
			}
		}
		if err != nil {
			r.cnt.decodeErr.Add(1)
			return
		}
		if err := s.w.WritePCM(pcm); err != nil {
			r.cnt.sinkErr.Add(1)
		}
	}
}

// deliver decodes an in-sequence packet and pushes it to the sink.
func (r *rtpReceiver) deliver(pkt []byte, h *rtpHeader) {
	r.history = r.history<<1 | 1
	r.next = h.seq + 1
	if h.pt != r.e.pt {
		if r.e.eventPT != 0 && h.pt == r.e.eventPT {
			r.cnt.events.Add(1)
			digit, dur, ok := r.dtmf.Feed(h.ts, pkt[h.payloadAt:h.payloadTo], DTMFEventClock)
			if ok {
				r.digit(digit, dur)
			}
		} else {
			r.cnt.wrongPT.Add(1)
		}
		return
	}
	if digit, dur, ok := r.dtmf.Media(); ok {
		r.digit(digit, dur)
	}
	payload := pkt[h.payloadAt:h.payloadTo]
	r.cnt.packetsIn.Add(1)
	r.cnt.bytesIn.Add(uint64(len(payload)))
	if ps := r.e.psink.Load(); ps != nil {
		// Passthrough: hand the frame on undecoded with the stream's advance.
		tsDelta, seqDelta := uint32(r.e.codec.ClockRate*FrameMillis/1000), uint16(1)
		if r.haveLast {
			tsDelta, seqDelta = h.ts-r.lastTS, h.seq-r.lastSeq
		}
		r.lastTS, r.lastSeq, r.haveLast = h.ts, h.seq, true
		if err := ps.w.WritePayload(payload, tsDelta, seqDelta); err != nil {
			r.cnt.sinkErr.Add(1)
		}
		return
	}
	if r.haveLast && h.seq == r.lastSeq+1 {
		// Learn the packet duration from consecutive packets.
		if d := h.ts - r.lastTS; d > 0 && d <= uint32(r.e.codec.ClockRate)/8 {
			r.lastDur = d
		}
	}
	r.lastTS, r.lastSeq, r.haveLast = h.ts, h.seq, true

	s := r.e.sink.Load()
	if s == nil || !r.ensureDecoder(s.rate) {
		return
	}
	n, err := r.dec.Decode(payload, r.pcm[:])
	if err != nil {
		r.cnt.decodeErr.Add(1)
		return
	}
	if n == 0 {
		return
	}
	if err := s.w.WritePCM(r.pcm[:n]); err != nil {
		r.cnt.sinkErr.Add(1)
	}
}

// ensureDecoder makes sure r.dec decodes to rate. Making a decoder
// allocates, but only when the sink's rate changes.
func (r *rtpReceiver) ensureDecoder(rate int) bool {
	if r.dec != nil && r.decRate == rate {
		return true
	}
	d, err := r.e.codec.NewDecoder(rate)
	if err != nil {
		r.cnt.decodeErr.Add(1)
		return false
	}
	r.dec, r.decRate = d, rate
	r.fec, _ = d.(codecs.FECDecoder)
	return true
}

// digit hands a decoded digit to the endpoint's DTMF handler.
func (r *rtpReceiver) digit(d rune, dur time.Duration) {
	r.cnt.digitsIn.Add(1)
	if h := r.e.onDTMF.Load(); h != nil {
		(*h)(d, dur)
	}
}
