package signalling

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/matrix-gateway/gateway/media"
)

// callMedia is what a call keeps to watch its legs' media once bridged: the
// endpoints (so the record can read their health after the legs let go of
// them) and which leg's media went dead, if one did.
type callMedia struct {
	legs [2]Leg
	eps  [2]media.Endpoint
	dead atomic.Pointer[string] // kind of the leg whose media stopped
}

// watchMedia remembers the bridged endpoints and asks each that can detect
// a silent peer (media.DeadMediaNotifier) to end the call when it does. The
// callback only posts an event; the call's loop ends the call.
func (c *Call) watchMedia(a, b media.Endpoint) {
	c.health.legs = [2]Leg{c.in, c.out}
	c.health.eps = [2]media.Endpoint{a, b}
	for i, ep := range c.health.eps {
		n, ok := ep.(media.DeadMediaNotifier)
		if !ok {
			continue
		}
		kind := c.health.legs[i].Kind()
		n.OnDeadMedia(func(silence time.Duration) {
			c.health.dead.CompareAndSwap(nil, &kind)
			c.Post(Event{Type: EventHangup, Cause: CauseMediaFailed,
				Detail: fmt.Sprintf("no RTP from the %s for %s", partyOf(kind), silence.Round(time.Second))})
		})
	}
}

// stopMediaWatch cancels the dead-media watches; called when the call ends.
func (c *Call) stopMediaWatch() {
	for _, ep := range c.health.eps {
		if n, ok := ep.(media.DeadMediaNotifier); ok {
			n.OnDeadMedia(nil)
		}
	}
}

// partyOf names the party behind a leg kind for hangup details.
func partyOf(kind string) string {
	if kind == "matrix" {
		return "Matrix user"
	}
	return "phone"
}

// describeMedia adds the media health of the bridged endpoints to r: the
// Matrix leg's to the Matrix fields, any other leg's to the phone fields.
func (c *Call) describeMedia(r *CallRecord) {
	if d := c.health.dead.Load(); d != nil {
		r.DeadMedia = *d
	}
	for i, ep := range c.health.eps {
		hr, ok := ep.(media.HealthReporter)
		if !ok || c.health.legs[i] == nil {
			continue
		}
		h := hr.Health()
		jitter, rtt := millis(h.JitterIn), millis(h.RTT)
		if c.health.legs[i].Kind() == "matrix" {
			r.MatrixJitterMS, r.MatrixRTTMS, r.MatrixMOS = jitter, rtt, h.MOS
			continue
		}
		r.PhoneJitterMS, r.PhoneRTTMS, r.PhoneMOS = jitter, rtt, h.MOS
		if h.HaveRemote && h.RemoteLost > 0 {
			r.PhoneLostByPeer = uint64(h.RemoteLost)
		}
	}
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
