package media

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultRTCPInterval is the mean interval between our RTCP reports; RFC
// 3550 section 6.2 recommends 5 s for a two-party session.
const DefaultRTCPInterval = 5 * time.Second

// RTCPConfig configures an RTCPSession.
type RTCPConfig struct {
	// Session is the UDP session whose RTCP port (RTP port + 1) is used
	// (required). Without a separate RTCP socket (a session made without a
	// PortAllocator) reports are multiplexed on the RTP socket.
	Session *UDPSession
	// Endpoint is the RTP endpoint the reports describe (required).
	Endpoint *RTPEndpoint
	// Interval is the mean report interval, randomised by 0.5-1.5 (default 5 s).
	Interval time.Duration
	// CNAME is the SDES canonical name (default "gateway@" + local address).
	CNAME string
}

// RTCPStats counts an RTCPSession's traffic.
type RTCPStats struct {
	Sent, Received, Malformed, Foreign uint64
}

// RTCPSession sends RTCP sender/receiver reports for one RTP endpoint on
// the UDP session's RTCP port and reads the peer's reports: the far side's
// loss and jitter on our stream and the round-trip time (LSR/DLSR) go into
// the endpoint's Health. It runs one goroutine; received reports are
// parsed without allocation.
type RTCPSession struct {
	udp      *UDPSession
	ep       *RTPEndpoint
	interval time.Duration
	cname    string

	remote atomic.Pointer[netip.AddrPort] // latched RTCP source
	lsr    atomic.Uint32                  // middle NTP bits of the last SR received
	lsrAt  atomic.Int64                   // monoNanos when it arrived

	sent, received, malformed, foreign atomic.Uint64

	// Owned by the goroutine.
	rep reportState
	out [512]byte

	muxMu   sync.Mutex // serialises mux-mode handling with the goroutine's parse buffer
	muxInfo rtcpInfo

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// StartRTCP validates cfg and starts the session's goroutine.
func StartRTCP(cfg RTCPConfig) (*RTCPSession, error) {
	if cfg.Session == nil || cfg.Endpoint == nil {
		return nil, errors.New("media: RTCPConfig.Session and Endpoint are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultRTCPInterval
	}
	if cfg.CNAME == "" {
		cfg.CNAME = "gateway@" + cfg.Session.LocalAddr().Addr().String()
	}
	s := &RTCPSession{
		udp: cfg.Session, ep: cfg.Endpoint, interval: cfg.Interval, cname: cfg.CNAME,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	cfg.Session.rtcpMux.Store(s)
	go s.run()
	return s, nil
}

// Stats returns the session's counters.
func (s *RTCPSession) Stats() RTCPStats {
	return RTCPStats{Sent: s.sent.Load(), Received: s.received.Load(), Malformed: s.malformed.Load(), Foreign: s.foreign.Load()}
}

// Close stops the goroutine and waits for it; it does not close the UDP
// session. It is idempotent.
func (s *RTCPSession) Close() error {
	s.once.Do(func() {
		s.udp.rtcpMux.CompareAndSwap(s, nil)
		close(s.stop)
		if c := s.udp.rtcp; c != nil {
			_ = c.SetReadDeadline(time.Now())
		}
		<-s.done
	})
	return nil
}

func (s *RTCPSession) nextInterval() time.Duration {
	return time.Duration(float64(s.interval) * (0.5 + rand.Float64()))
}

func (s *RTCPSession) run() {
	defer close(s.done)
	next := time.Now().Add(s.nextInterval() / 2) // the first report comes early
	conn := s.udp.rtcp
	var buf [MaxPacketSize]byte
	var info rtcpInfo
	var timer *time.Timer
	if conn == nil {
		timer = time.NewTimer(time.Until(next))
		defer timer.Stop()
	}
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		if conn != nil {
			_ = conn.SetReadDeadline(next)
			n, from, err := conn.ReadFromUDPAddrPort(buf[:])
			if err == nil {
				s.handle(buf[:n], unmap(from), &info)
				continue
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return // socket closed
			}
		} else {
			select {
			case <-s.stop:
				return
			case <-timer.C:
			}
		}
		if now := time.Now(); !now.Before(next) {
			s.sendReport(now)
			next = now.Add(s.nextInterval())
			if timer != nil {
				timer.Reset(time.Until(next))
			}
		}
	}
}

// handleMux takes an RTCP packet that arrived on the RTP socket (rtcp-mux);
// it runs on the endpoint's receive goroutine.
func (s *RTCPSession) handleMux(pkt []byte, from netip.AddrPort) {
	s.muxMu.Lock()
	s.handle(pkt, from, &s.muxInfo)
	s.muxMu.Unlock()
}

// handle parses one received compound packet and records what it says.
func (s *RTCPSession) handle(pkt []byte, from netip.AddrPort, info *rtcpInfo) {
	if p := s.remote.Load(); p != nil && *p != from {
		// Accept a new source only from the RTP peer's address.
		if rp, _ := s.udp.Remote(); rp.Addr() != from.Addr() {
			s.foreign.Add(1)
			return
		}
	}
	if !parseRTCP(pkt, s.ep.SSRC(), info) {
		s.malformed.Add(1)
		return
	}
	s.received.Add(1)
	if p := s.remote.Load(); p == nil || *p != from {
		src := from
		s.remote.Store(&src) // allocates once per new source
	}
	now := time.Now()
	if info.hasSR {
		s.lsr.Store(ntpMiddle(info.ntp))
		s.lsrAt.Store(monoNanos())
	}
	if info.hasBlock {
		r := &s.ep.health.remote
		r.lost.Store(int64(info.block.lost))
		r.fraction.Store(uint32(info.block.fraction))
		r.jitter.Store(info.block.jitter)
		r.have.Store(true)
		if rtt, ok := rttFromReport(ntpMiddle(ntpTime(now)), &info.block); ok {
			r.rtt.Store(int64(rtt))
		}
	}
}

// sendReport sends an SR (if we sent media since the last report) or an RR
// with a block about the source we receive, and an SDES CNAME.
func (s *RTCPSession) sendReport(now time.Time) {
	n := s.rep.build(s.out[:], s.ep, s.ep.SSRC(), s.cname, s.lsr.Load(), s.lsrAt.Load(), now)
	if n == 0 {
		return
	}
	if err := s.write(s.out[:n]); err == nil {
		s.sent.Add(1)
	}
}

// reportState is what consecutive reports about one endpoint share.
type reportState struct {
	prevExpected, prevReceived uint64
	prevPacketsOut             uint64
}

// build writes our report about ep into buf and returns its length (0:
// buf too small): an SR if ep sent media since the last report, else an
// RR, with a block about the source ep receives (lsr and lsrAt, in
// monoNanos, from the last SR received; lsrAt 0: none) and an SDES CNAME.
// ssrc is the SSRC our stream goes out with.
func (rs *reportState) build(buf []byte, ep *RTPEndpoint, ssrc uint32, cname string, lsr uint32, lsrAt int64, now time.Time) int {
	st := ep.Stats()
	r := rtcpReport{ssrc: ssrc, cname: cname}
	if st.PacketsOut > 0 && st.PacketsOut != rs.prevPacketsOut {
		rs.prevPacketsOut = st.PacketsOut
		r.sr = true
		r.ntp = ntpTime(now)
		r.rtpTS = ep.rtpTimeAt(now)
		r.packets = uint32(st.PacketsOut)
		r.octets = uint32(st.BytesOut)
	}
	if rx := ep.health.rx.Snapshot(); rx.Received > 0 {
		expInt := rx.Expected - rs.prevExpected
		recvInt := rx.Received - rs.prevReceived
		rs.prevExpected, rs.prevReceived = rx.Expected, rx.Received
		var fraction uint8
		if lostInt := int64(expInt) - int64(recvInt); expInt > 0 && lostInt > 0 {
			fraction = uint8(min(255, lostInt<<8/int64(expInt)))
		}
		b := rtcpBlock{ssrc: rx.SSRC, fraction: fraction, lost: int32(max(min(rx.Lost, 1<<23-1), -1<<23)),
			extMax: rx.ExtHighestSeq, jitter: rx.JitterUnits}
		if lsrAt != 0 {
			b.lsr = lsr
			b.dlsr = uint32(uint64(monoNanos()-lsrAt) << 16 / uint64(time.Second))
		}
		r.hasBlock, r.block = true, b
	}
	return buildRTCP(buf, &r)
}

// write sends to the latched RTCP source, or to the RTP peer's port + 1
// (its RTP port under rtcp-mux, when we have no RTCP socket).
func (s *RTCPSession) write(pkt []byte) error {
	var dst netip.AddrPort
	if p := s.remote.Load(); p != nil {
		dst = *p
	} else {
		rtp, _ := s.udp.Remote()
		if !rtp.IsValid() {
			return ErrNoRemote
		}
		dst = rtp
		if s.udp.rtcp != nil {
			dst = netip.AddrPortFrom(rtp.Addr(), rtp.Port()+1)
		}
	}
	conn := s.udp.rtcp
	if conn == nil {
		conn = s.udp.conn
	}
	_, err := conn.WriteToUDPAddrPort(pkt, dst)
	return err
}

// rtpTimeAt returns the RTP timestamp of our stream that corresponds to t,
// extrapolated from the last packet sent (for SR, RFC 3550 section 6.4.1).
func (e *RTPEndpoint) rtpTimeAt(t time.Time) uint32 {
	s := &e.send
	s.mu.Lock()
	next, last := s.ts, s.lastSend
	s.mu.Unlock()
	step := uint32(e.codec.ClockRate * FrameMillis / 1000)
	if last.IsZero() {
		return next
	}
	elapsed := t.Sub(last)
	return next - step + uint32(elapsed.Nanoseconds()*int64(e.codec.ClockRate)/int64(time.Second))
}
