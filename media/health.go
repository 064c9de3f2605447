// Per-call media health: reception statistics (RFC 3550 A.1, A.3, A.8),
// the far side's view from RTCP receiver reports, an E-model MOS estimate
// and dead-media detection.
//
// The receive goroutine updates ReceptionStats once per packet: a few
// integer operations and atomic stores, no allocation, lock or log. Readers
// (RTCP, call records, metrics) take snapshots from the atomics.

package media

import (
	"sync"
	"sync/atomic"
	"time"
)

// monoBase anchors monoNanos; time.Since reads the monotonic clock.
var monoBase = time.Now()

// monoNanos returns monotonic nanoseconds since process start, without
// allocating.
func monoNanos() int64 { return int64(time.Since(monoBase)) }

const (
	// seqMaxDropout and seqMaxMisorder bound sequence jumps (RFC 3550 A.1).
	seqMaxDropout  = 3000
	seqMaxMisorder = 100
)

// ReceptionStats follows one received RTP stream the way RFC 3550 asks a
// receiver to: extended highest sequence number, packets received,
// expected and lost (A.3), and interarrival jitter (A.8). Update is called
// by one goroutine; Snapshot may be called from any.
type ReceptionStats struct {
	clock int64 // RTP clock rate, Hz

	// Owned by the updating goroutine.
	started bool
	ssrc    uint32
	baseSeq uint32
	maxSeq  uint16
	cycles  uint32
	recv    uint64
	transit uint32
	jitter  uint32 // RFC 3550 A.8 integer form: jitter scaled by 16

	// Published for readers.
	pubSSRC    atomic.Uint32
	pubBase    atomic.Uint32
	pubExtMax  atomic.Uint32
	pubRecv    atomic.Uint64
	pubJitter  atomic.Uint32 // in clock units
	pubArrival atomic.Int64  // monoNanos of the last packet, 0 = none
}

// NewReceptionStats returns statistics for a stream with the given RTP
// clock rate.
func NewReceptionStats(clockRate int) *ReceptionStats {
	s := &ReceptionStats{}
	s.Init(clockRate)
	return s
}

// Init resets the statistics for a stream with the given RTP clock rate.
// It must not run concurrently with Update.
func (s *ReceptionStats) Init(clockRate int) {
	s.clock = int64(clockRate)
	s.started = false
}

// Update accounts one received packet: its SSRC, sequence number, RTP
// timestamp and arrival time in nanoseconds on any monotonic clock. A new
// SSRC or a large sequence jump starts the statistics over.
func (s *ReceptionStats) Update(ssrc uint32, seq uint16, ts uint32, arrivalNanos int64) {
	arrival := uint32((arrivalNanos / 1000) * s.clock / 1_000_000) // in clock units, wraps like ts
	if !s.started || ssrc != s.ssrc {
		s.restart(ssrc, seq, ts, arrival)
	} else {
		udelta := seq - s.maxSeq
		switch {
		case udelta < seqMaxDropout:
			if seq < s.maxSeq {
				s.cycles += 1 << 16
			}
			s.maxSeq = seq
		case udelta <= 1<<16-seqMaxMisorder:
			// A jump far ahead: the sender restarted its sequence.
			s.restart(ssrc, seq, ts, arrival)
		default:
			// Duplicate or reordered within the misorder window.
		}
		transit := arrival - ts
		d := int32(transit - s.transit)
		s.transit = transit
		if d < 0 {
			d = -d
		}
		s.jitter += uint32(d) - ((s.jitter + 8) >> 4)
	}
	s.recv++
	s.pubExtMax.Store(s.cycles + uint32(s.maxSeq))
	s.pubRecv.Store(s.recv)
	s.pubJitter.Store(s.jitter >> 4)
	s.pubArrival.Store(arrivalNanos)
}

func (s *ReceptionStats) restart(ssrc uint32, seq uint16, ts, arrival uint32) {
	s.started = true
	s.ssrc = ssrc
	s.baseSeq = uint32(seq)
	s.maxSeq = seq
	s.cycles = 0
	s.recv = 0
	s.transit = arrival - ts
	s.jitter = 0
	s.pubSSRC.Store(ssrc)
	s.pubBase.Store(uint32(seq))
}

// Reception is a snapshot of ReceptionStats.
type Reception struct {
	SSRC          uint32        // the followed source
	ExtHighestSeq uint32        // extended highest sequence number received
	Received      uint64        // packets received (duplicates included, as RFC 3550 counts)
	Expected      uint64        // packets expected from the sequence numbers
	Lost          int64         // Expected - Received; negative with duplicates
	JitterUnits   uint32        // interarrival jitter in clock units
	Jitter        time.Duration // the same in time
	LastArrival   int64         // arrival of the last packet (Update's clock), 0 if none
}

// LossFraction is Lost/Expected clamped to 0..1.
func (r Reception) LossFraction() float64 {
	if r.Expected == 0 || r.Lost <= 0 {
		return 0
	}
	return min(1, float64(r.Lost)/float64(r.Expected))
}

// Snapshot returns the current statistics; safe from any goroutine.
func (s *ReceptionStats) Snapshot() Reception {
	r := Reception{
		SSRC:          s.pubSSRC.Load(),
		ExtHighestSeq: s.pubExtMax.Load(),
		Received:      s.pubRecv.Load(),
		JitterUnits:   s.pubJitter.Load(),
		LastArrival:   s.pubArrival.Load(),
	}
	if r.LastArrival != 0 {
		r.Expected = uint64(r.ExtHighestSeq-s.pubBase.Load()) + 1
		r.Lost = int64(r.Expected) - int64(r.Received)
	}
	if s.clock > 0 {
		r.Jitter = time.Duration(int64(r.JitterUnits) * int64(time.Second) / s.clock)
	}
	return r
}

// Health is a snapshot of one endpoint's media quality. "In" is what the
// gateway receives from the peer; "Remote" is what the peer reports about
// our stream in RTCP receiver reports (zero without RTCP).
type Health struct {
	PacketsIn    uint64        // packets received from the peer
	LostIn       int64         // packets from the peer that never arrived
	LossIn       float64       // LostIn as a fraction of the expected packets
	JitterIn     time.Duration // interarrival jitter of the peer's stream
	HaveRemote   bool          // an RTCP report about our stream arrived
	RemoteLost   int64         // cumulative packets of ours the peer lost
	RemoteLoss   float64       // fraction lost in the peer's last report
	RemoteJitter time.Duration // jitter the peer measured on our stream
	RTT          time.Duration // round-trip time from RTCP (LSR/DLSR); 0 if unknown
	Silence      time.Duration // time since the last packet from the peer (since watching began if none)
	MOS          float64       // E-model estimate for the audio received from the peer
}

// HealthReporter is implemented by endpoints that measure media health.
type HealthReporter interface {
	Health() Health
}

// DeadMediaNotifier is implemented by endpoints that detect a peer that
// stopped sending. fn is called once, from a timer goroutine, when no
// packet arrived for the endpoint's dead-media timeout; it must not block.
// Calling OnDeadMedia again replaces fn and restarts the watch; a nil fn
// stops it. Endpoints with no timeout configured never call fn.
type DeadMediaNotifier interface {
	OnDeadMedia(fn func(silence time.Duration))
}

// remoteReport is what the RTCP session learns from the peer's reports.
type remoteReport struct {
	have     atomic.Bool
	lost     atomic.Int64
	fraction atomic.Uint32 // fraction lost, 8-bit fixed point
	jitter   atomic.Uint32 // clock units
	rtt      atomic.Int64  // nanoseconds, 0 unknown
}

// endpointHealth is the health state an RTPEndpoint carries.
type endpointHealth struct {
	rx     ReceptionStats
	remote remoteReport

	mu      sync.Mutex
	timeout time.Duration
	fn      func(time.Duration)
	timer   *time.Timer
	since   int64 // monoNanos when watching began
	stopped bool
	paused  bool // the peer said it sends nothing (hold): silence is expected
}

func (h *endpointHealth) init(clockRate int, deadTimeout time.Duration) {
	h.rx.Init(clockRate)
	h.timeout = deadTimeout
}

// OnDeadMedia implements DeadMediaNotifier. The watch runs on a timer, not
// a goroutine: each expiry compares the last arrival with the timeout and
// re-arms for the remainder.
func (e *RTPEndpoint) OnDeadMedia(fn func(silence time.Duration)) {
	h := &e.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	h.fn = fn
	if fn == nil || h.timeout <= 0 || h.stopped || e.reader == nil {
		return
	}
	h.since = monoNanos()
	h.timer = time.AfterFunc(h.timeout, func() { e.checkDeadMedia() })
}

// checkDeadMedia runs on the timer: it fires fn once when the peer has
// been silent for the timeout, or re-arms for the time that is left.
func (e *RTPEndpoint) checkDeadMedia() {
	h := &e.health
	h.mu.Lock()
	if h.stopped || h.fn == nil || h.timer == nil {
		h.mu.Unlock()
		return
	}
	silence := e.silence()
	if h.paused || silence < h.timeout {
		if h.paused {
			silence = 0
		}
		h.timer.Reset(h.timeout - silence)
		h.mu.Unlock()
		return
	}
	fn := h.fn
	h.fn, h.timer = nil, nil
	h.mu.Unlock()
	fn(silence)
}

// silence is how long no packet arrived, counted from when watching began
// if that is later. The caller holds health.mu or tolerates a race on since.
func (e *RTPEndpoint) silence() time.Duration {
	last := max(e.health.rx.pubArrival.Load(), e.health.since)
	if last == 0 {
		return 0
	}
	return time.Duration(monoNanos() - last)
}

// PauseDeadMedia stops counting silence while the peer, by its own session
// description, sends nothing (a call on hold: SIP a=inactive/recvonly, a
// Matrix m.call.negotiate to inactive); false resumes and restarts the count.
func (e *RTPEndpoint) PauseDeadMedia(paused bool) {
	h := &e.health
	h.mu.Lock()
	defer h.mu.Unlock()
	h.paused = paused
	h.since = monoNanos()
}

// stopHealth stops the dead-media watch; called by Close.
func (e *RTPEndpoint) stopHealth() {
	h := &e.health
	h.mu.Lock()
	h.stopped = true
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	h.fn = nil
	h.mu.Unlock()
}

// Reception returns the RFC 3550 statistics of the stream received from
// the peer.
func (e *RTPEndpoint) Reception() Reception { return e.health.rx.Snapshot() }

// Health implements HealthReporter. It is cheap and safe at any time, also
// after Close.
func (e *RTPEndpoint) Health() Health {
	rx := e.health.rx.Snapshot()
	r := &e.health.remote
	h := Health{
		PacketsIn: rx.Received,
		LostIn:    max(rx.Lost, 0),
		LossIn:    rx.LossFraction(),
		JitterIn:  rx.Jitter,
		RTT:       time.Duration(r.rtt.Load()),
	}
	if r.have.Load() {
		h.HaveRemote = true
		h.RemoteLost = r.lost.Load()
		h.RemoteLoss = float64(r.fraction.Load()) / 256
		h.RemoteJitter = time.Duration(int64(r.jitter.Load()) * int64(time.Second) / int64(e.codec.ClockRate))
	}
	e.health.mu.Lock()
	h.Silence = e.silence()
	e.health.mu.Unlock()
	if rx.Received > 0 {
		h.MOS = EstimateMOS(e.codec.Name, EModelDelay(e.codec.Name, h.RTT, h.JitterIn), h.LossIn)
	}
	return h
}

var (
	_ HealthReporter    = (*RTPEndpoint)(nil)
	_ DeadMediaNotifier = (*RTPEndpoint)(nil)
)
