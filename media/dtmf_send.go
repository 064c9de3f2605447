package media

import (
	"context"
	"errors"
	"time"
)

// DTMF sending limits.
const (
	// MinDTMFDuration and MaxDTMFDuration bound the duration of a sent digit.
	MinDTMFDuration = 60 * time.Millisecond
	MaxDTMFDuration = 5 * time.Second
	// DefaultDTMFDuration is used when a digit comes without a duration.
	DefaultDTMFDuration = 120 * time.Millisecond
	// dtmfQueueLen bounds the digits waiting to be sent on one endpoint.
	dtmfQueueLen = 32
	// dtmfGapFrames is the audio sent between two events (40 ms).
	dtmfGapFrames = 2
	// dtmfEndRepeats is how often the end packet is sent (RFC 4733 2.5.1.4).
	dtmfEndRepeats = 3
	// dtmfVolume is the level of sent events, -10 dBm0.
	dtmfVolume = 10
)

// DTMF send errors.
var (
	ErrNoDTMF        = errors.New("media: no telephone-event negotiated")
	ErrDTMFDigit     = errors.New("media: not a DTMF digit")
	ErrDTMFQueueFull = errors.New("media: DTMF queue full")
)

// dtmfTone is one digit waiting or being sent.
type dtmfTone struct {
	event uint8
	units uint32 // duration in DTMFEventClock units
}

// dtmfSender replaces audio frames by telephone-event packets while a digit
// is sent (RFC 4733 section 2.5.1). It lives inside rtpSender and is guarded
// by its mutex; it never allocates.
type dtmfSender struct {
	queue   [dtmfQueueLen]dtmfTone
	head, n int
	cur     dtmfTone
	active  bool
	startTS uint32 // RTP timestamp of the current event
	elapsed uint32 // event clock units sent so far
	gap     int    // audio frames still to send before the next event
}

// enqueue adds a digit; the caller holds the sender's mutex.
func (d *dtmfSender) enqueue(t dtmfTone) error {
	if d.n == len(d.queue) {
		return ErrDTMFQueueFull
	}
	d.queue[(d.head+d.n)%len(d.queue)] = t
	d.n++
	return nil
}

// wants reports whether the next frame must carry an event instead of audio.
func (d *dtmfSender) wants() bool {
	if d.active {
		return true
	}
	if d.gap > 0 {
		d.gap--
		return false
	}
	return d.n > 0
}

// SendDTMF queues digit to be sent as RFC 4733 telephone-event packets for
// duration dur (bounded to 60 ms..5 s; 0 means 120 ms). The packets replace
// audio frames as the endpoint's writer sends them, so digits go out while
// audio is written to the endpoint, one after another in order with 40 ms of
// audio between them. It returns at once; ErrNoDTMF if no telephone-event
// payload type was negotiated.
func (e *RTPEndpoint) SendDTMF(_ context.Context, digit rune, dur time.Duration) error {
	if e.closed.Load() {
		return ErrClosed
	}
	if e.eventPT == 0 {
		return ErrNoDTMF
	}
	ev, ok := DTMFEvent(digit)
	if !ok {
		return ErrDTMFDigit
	}
	if dur <= 0 {
		dur = DefaultDTMFDuration
	}
	dur = min(max(dur, MinDTMFDuration), MaxDTMFDuration)
	s := &e.send
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.dtmf.enqueue(dtmfTone{event: ev, units: uint32(dur * DTMFEventClock / time.Second)}); err != nil {
		return err
	}
	// Digits normally ride on the audio the far leg writes. When no audio
	// flows (the other side is silent: VAD, a peer that sends no RTP, on hold)
	// a pump sends the events on its own 20 ms clock until the queue drains.
	if !s.pumping && s.w != nil && time.Since(s.lastSend) > pumpIdle {
		s.pumping = true
		go s.pumpDTMF(uint32(e.codec.ClockRate * FrameMillis / 1000))
	}
	return nil
}

// pumpIdle is how long without an audio frame before the DTMF pump takes over.
const pumpIdle = 3 * FrameMillis * time.Millisecond

// pumpDTMF sends queued events every 20 ms while no audio frames are being
// written, and stops when the queue is empty or audio resumes (sendFrame then
// carries the events). Bounded: the queue holds at most dtmfQueueLen digits
// of at most MaxDTMFDuration each.
func (s *rtpSender) pumpDTMF(tsStep uint32) {
	tick := time.NewTicker(FrameMillis * time.Millisecond)
	defer tick.Stop()
	for {
		<-tick.C
		s.mu.Lock()
		if s.e.closed.Load() || (!s.dtmf.active && s.dtmf.n == 0) || time.Since(s.lastSend) < 2*FrameMillis*time.Millisecond && !s.pumpSent {
			s.pumping, s.pumpSent = false, false
			s.mu.Unlock()
			return
		}
		if s.dtmf.wants() {
			_ = s.sendEventFrame(tsStep)
		} else {
			s.ts += tsStep // a gap frame: the stream's clock keeps running
		}
		s.lastSend, s.pumpSent = time.Now(), true
		s.mu.Unlock()
	}
}

// CanSendDTMF reports whether the endpoint negotiated telephone-event.
func (e *RTPEndpoint) CanSendDTMF() bool { return e.eventPT != 0 }

// sendEventFrame sends the event packets that replace one audio frame of w:
// an update, or the end packet three times. The caller holds s.mu.
func (s *rtpSender) sendEventFrame(tsStep uint32) error {
	d := &s.dtmf
	marker := false
	if !d.active {
		d.cur = d.queue[d.head]
		d.head = (d.head + 1) % len(d.queue)
		d.n--
		d.active, d.startTS, d.elapsed = true, s.ts, 0
		marker = true
	}
	frameUnits := uint32(DTMFEventClock * FrameMillis / 1000)
	d.elapsed += frameUnits
	end := d.elapsed >= d.cur.units
	dur := min(d.elapsed, d.cur.units, 0xFFFF)
	p := DTMFPayload{Event: d.cur.event, End: end, Volume: dtmfVolume, Duration: uint16(dur)}
	repeats := 1
	if end {
		repeats = dtmfEndRepeats
	}
	var err error
	for i := 0; i < repeats; i++ {
		putRTPHeader(s.pkt[:], marker, s.e.eventPT, s.seq, d.startTS, s.ssrc)
		p.Put(s.pkt[rtpHeaderLen:])
		s.seq++
		marker = false
		if werr := s.w.WritePacket(s.pkt[:rtpHeaderLen+DTMFPayloadLen]); werr != nil {
			s.e.cnt.writeErr.Add(1)
			err = werr
			continue
		}
		s.e.cnt.eventsOut.Add(1)
	}
	// The stream's timestamp keeps running under the event.
	s.ts += tsStep
	if end {
		d.active = false
		d.gap = dtmfGapFrames
		s.marker = true // audio after an event starts a talkspurt
	}
	return err
}
