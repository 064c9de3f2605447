// DTMF: RFC 4733 telephone-event payloads, the receive-side detector that
// turns a stream of event packets into digits, and the digit alphabet.

package media

import (
	"encoding/binary"
	"time"
)

// DTMFEventClock is the RTP clock of telephone-event durations inside the
// gateway (telephone-event/8000); a WebRTC peer that negotiated
// telephone-event/48000 is converted at the track.
const DTMFEventClock = 8000

// DTMFPayloadLen is the length of one RFC 4733 event payload.
const DTMFPayloadLen = 4

// DTMFPayload is one RFC 4733 section 2.3 event payload: event code, end
// bit, volume (dBm0, negated) and duration in clock units since the event
// began.
type DTMFPayload struct {
	Event    uint8
	End      bool
	Volume   uint8
	Duration uint16
}

// ParseDTMFPayload parses the first four bytes of b; it reports false when
// b is too short. Extra bytes (redundant events of RFC 2198) are ignored.
func ParseDTMFPayload(b []byte) (DTMFPayload, bool) {
	if len(b) < DTMFPayloadLen {
		return DTMFPayload{}, false
	}
	return DTMFPayload{
		Event:    b[0],
		End:      b[1]&0x80 != 0,
		Volume:   b[1] & 0x3F,
		Duration: binary.BigEndian.Uint16(b[2:]),
	}, true
}

// Put writes the payload into the first four bytes of b.
func (p DTMFPayload) Put(b []byte) {
	_ = b[3]
	b[0] = p.Event
	b[1] = p.Volume & 0x3F
	if p.End {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], p.Duration)
}

// DTMFDigit returns the digit of an RFC 4733 section 3.2 event code:
// '0'-'9', '*', '#', 'A'-'D'; ok is false for other events (flash, tones).
func DTMFDigit(event uint8) (digit rune, ok bool) {
	switch {
	case event <= 9:
		return rune('0' + event), true
	case event == 10:
		return '*', true
	case event == 11:
		return '#', true
	case event >= 12 && event <= 15:
		return rune('A' + event - 12), true
	}
	return 0, false
}

// DTMFEvent returns the RFC 4733 event code of a digit (case-insensitive
// for A-D); ok is false for anything else.
func DTMFEvent(digit rune) (event uint8, ok bool) {
	switch {
	case digit >= '0' && digit <= '9':
		return uint8(digit - '0'), true
	case digit == '*':
		return 10, true
	case digit == '#':
		return 11, true
	case digit >= 'A' && digit <= 'D':
		return uint8(12 + digit - 'A'), true
	case digit >= 'a' && digit <= 'd':
		return uint8(12 + digit - 'a'), true
	}
	return 0, false
}

// DTMFHandler receives each digit once, in order, with its duration. It is
// called from an endpoint's receive goroutine and must not block.
type DTMFHandler func(digit rune, d time.Duration)

// DTMFDetector turns telephone-event packets into digits. An event is
// identified by its RTP timestamp (RFC 4733 section 2.5.1.2): it is reported
// once, when its first end packet arrives (the two retransmissions and any
// retransmitted older event are ignored), or, if every end packet was lost,
// when the next event or media packet shows it is over. It does not allocate
// and is used by one goroutine.
type DTMFDetector struct {
	active   bool   // an event is in progress and not yet reported
	started  bool   // ts/event hold a previous event
	ts       uint32 // timestamp of the current or last event
	event    uint8
	duration uint16 // longest duration seen for it, in clock units
	media    int    // media packets since its last event packet
	clock    int
}

// Feed processes one event packet of timestamp ts whose durations count
// clock units. It returns a digit when an event is complete.
func (d *DTMFDetector) Feed(ts uint32, payload []byte, clock int) (digit rune, dur time.Duration, ok bool) {
	p, valid := ParseDTMFPayload(payload)
	if !valid {
		return 0, 0, false
	}
	if clock <= 0 {
		clock = DTMFEventClock
	}
	if d.started && ts == d.ts {
		d.media = 0
		if !d.active {
			return 0, 0, false // a retransmitted end packet of a reported event
		}
		if p.Duration > d.duration {
			d.duration = p.Duration
		}
		if p.End {
			return d.finish()
		}
		return 0, 0, false
	}
	if d.started && int32(ts-d.ts) < 0 {
		return 0, 0, false // an older event retransmitted late
	}
	// A new event: one still open without an end packet ends here (an
	// overlapping or end-lost event), and is reported first.
	if d.active {
		digit, dur, ok = d.finish()
		d.start(ts, p, clock)
		if ok {
			// The new event's end, if already here, comes with its next
			// retransmission; report the older digit now.
			return digit, dur, true
		}
	} else {
		d.start(ts, p, clock)
	}
	if p.End {
		return d.finish()
	}
	return 0, 0, false
}

// Media tells the detector a media packet arrived. An event that is still
// open after dtmfMediaAfter media packets with no event packet between them
// is over (all its end packets were lost).
func (d *DTMFDetector) Media() (digit rune, dur time.Duration, ok bool) {
	if !d.active {
		return 0, 0, false
	}
	d.media++
	if d.media < dtmfMediaAfter {
		return 0, 0, false
	}
	return d.finish()
}

// dtmfMediaAfter is how many media packets (200 ms of 20 ms packets) close
// an event whose end packets never came.
const dtmfMediaAfter = 10

func (d *DTMFDetector) start(ts uint32, p DTMFPayload, clock int) {
	d.started, d.active = true, true
	d.ts, d.event, d.duration, d.clock, d.media = ts, p.Event, p.Duration, clock, 0
}

func (d *DTMFDetector) finish() (rune, time.Duration, bool) {
	d.active = false
	digit, ok := DTMFDigit(d.event)
	if !ok {
		return 0, 0, false
	}
	return digit, time.Duration(d.duration) * time.Second / time.Duration(d.clock), true
}
