package media

import (
	"math/rand/v2"
	"time"

	"github.com/pion/rtcp"
)

// WebRTCRTCPInterval is the mean interval of a WebRTC peer's RTCP reports
// (browsers report about once a second; pion's report interceptors, which
// the gateway's own reports replace, did too).
const WebRTCRTCPInterval = time.Second

// The gateway's WebRTC peers send their own RTCP reports instead of pion's
// report interceptors: those count the packets that pass through pion,
// and the fast paths (webrtc_fast.go) bypass it. The reports describe the
// RTP endpoint wrapped around the peer, whichever path its packets took:
// an SR with our packet and octet counts and the NTP/RTP timestamp pair,
// and a block about the stream we receive (loss, jitter, extended highest
// sequence number, LSR/DLSR from the peer's last SR so that the browser
// can measure the round trip too). One goroutine per peer, asleep between
// reports.

// attachEndpoint starts the peer's RTCP reports about e (NewRTPEndpoint
// calls it).
func (p *Peer) attachEndpoint(e *RTPEndpoint) {
	p.rtcpOnce.Do(func() { go p.runRTCP(e) })
}

func (p *Peer) runRTCP(e *RTPEndpoint) {
	var rs reportState
	var buf [512]byte
	t := time.NewTimer(WebRTCRTCPInterval / 2) // the first report comes early
	defer t.Stop()
	for {
		select {
		case <-p.closed:
			return
		case <-t.C:
		}
		t.Reset(time.Duration(float64(WebRTCRTCPInterval) * (0.5 + rand.Float64())))
		ssrc := p.local.boundSSRC()
		if ssrc == 0 {
			continue // not negotiated yet
		}
		n := rs.build(buf[:], e, ssrc, WebRTCStreamID, p.lsr.Load(), p.lsrAt.Load(), time.Now())
		if n == 0 {
			continue
		}
		pkts, err := rtcp.Unmarshal(buf[:n]) // once a second: pion's RTCP writer wants packets
		if err != nil {
			continue
		}
		_ = p.pc.WriteRTCP(pkts) // a lost report is replaced by the next
	}
}
