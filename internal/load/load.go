// Package load is the gateway's media load generator. It runs N bridged
// calls in one process through the real media path, in pure-media mode:
// no SIP, no Matrix signalling, no WebRTC (ICE/DTLS/SRTP). Each call is the
// gateway's two RTPEndpoints bridged as the call core bridges them: a PCMU
// endpoint on a UDPSession with its RTCP session (the trunk side) and an
// Opus endpoint over a plain UDP socket (standing in for the WebRTC peer's
// SRTP transport). Two peers per call, also over real UDP sockets on
// loopback, play the phone (PCMU) and the Matrix client (Opus encoded at
// 48 kHz as a browser would); each sends a click train and measures what
// arrives: loss, RFC 3550 jitter and the added one-way delay of each click.
package load

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sort"
	"time"

	"github.com/matrix-gateway/gateway/codecs"
	"github.com/matrix-gateway/gateway/codecs/opus"
	"github.com/matrix-gateway/gateway/media"
)

// Config configures one load run.
type Config struct {
	// Calls is the number of concurrent bridged calls (required, >= 1).
	Calls int
	// Duration is the measured time after the warm-up (default 10 s).
	Duration time.Duration
	// Warmup runs before measuring starts (default 2 s).
	Warmup time.Duration
	// OpusComplexity and OpusBitrate configure the gateway's Opus encoder
	// as media.opus_complexity/opus_bitrate do (defaults 5 and 24000); FEC
	// is on, as in the gateway.
	OpusComplexity, OpusBitrate int
	// ClickEvery is the click train period (default 500 ms).
	ClickEvery time.Duration
	// Probes is how many calls decode what they receive to find the clicks
	// and measure delay (default 8); the others count packets only, which
	// keeps the peers' own codec work out of the way.
	Probes int
	// PortMin/PortMax is the gateway's RTP port range for the trunk side
	// (default 30000-39999).
	PortMin, PortMax int
	// Baseline runs the peers alone, sending to each other without the
	// gateway, to measure what the peers themselves cost.
	Baseline bool
	// RTPEngine, if set, is the ng control address (host:port) of an
	// rtpengine daemon that bridges the calls instead of the gateway's
	// endpoints (Opus <-> PCMU transcoding in its userspace), for a side by
	// side run; RTPEnginePID is its process, whose CPU is then measured.
	RTPEngine    string
	RTPEnginePID int
}

func (c *Config) defaults() error {
	if c.Calls < 1 {
		return errors.New("load: Calls must be at least 1")
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup < 0 {
		return errors.New("load: negative warm-up")
	}
	if c.Warmup == 0 {
		c.Warmup = 2 * time.Second
	}
	if c.OpusComplexity == 0 {
		c.OpusComplexity = 5
	}
	if c.OpusBitrate == 0 {
		c.OpusBitrate = 24000
	}
	if c.ClickEvery == 0 {
		c.ClickEvery = 500 * time.Millisecond
	}
	if c.ClickEvery < 200*time.Millisecond || c.ClickEvery%(media.FrameMillis*time.Millisecond) != 0 {
		return errors.New("load: ClickEvery must be a multiple of 20 ms, at least 200 ms")
	}
	if c.Probes == 0 {
		c.Probes = 8
	}
	if c.PortMin == 0 {
		c.PortMin, c.PortMax = 30000, 39999
	}
	return nil
}

// Direction is what arrived in one direction over all calls.
type Direction struct {
	Sent, Received uint64        // packets sent by the peers, received by the far peers
	Lost           int64         // Sent - Received after the drain
	JitterMean     time.Duration // RFC 3550 jitter at the receiving peer, mean over calls
	JitterMax      time.Duration // and the worst call
	Clicks         int           // clicks found by the probe calls
	DelayP50       time.Duration // added one-way delay per click, median
	DelayP99       time.Duration // and 99th percentile
	DelayMax       time.Duration
}

// Result is one run's measurements.
type Result struct {
	Calls    int
	Baseline bool
	Measured time.Duration // wall time of the measurement window
	CPU      time.Duration // process CPU (user+system) in the window
	// CPUPerCall is the share of one core each call used (CPU / Measured /
	// Calls), peers included.
	CPUPerCall float64
	ToPhone    Direction // Matrix peer -> gateway -> phone peer
	ToMatrix   Direction // phone peer -> gateway -> Matrix peer
	// Gateway endpoint counters, summed over calls.
	GatewayLost, GatewayConcealed, GatewayDecodeErrors uint64
	// Resources the gateway side of the calls took, per call (peers not
	// included): Go heap in use, resident memory, goroutines, sockets.
	HeapPerCall, RSSPerCall           float64 // bytes
	GoroutinesPerCall, SocketsPerCall float64
	Procs                             int // GOMAXPROCS
	// RelayCPU is rtpengine's CPU in the window (RTPEngine runs), and
	// RelayCPUPerCall its share of one core per call.
	RelayCPU        time.Duration
	RelayCPUPerCall float64
}

// ZeroLoss reports whether every packet arrived in both directions.
func (r *Result) ZeroLoss() bool {
	return r.ToPhone.Lost == 0 && r.ToMatrix.Lost == 0 && r.GatewayLost == 0 &&
		r.ToPhone.Sent > 0 && r.ToMatrix.Sent > 0
}

// call is one bridged call: the gateway's two endpoints and the two peers.
type call struct {
	phone, web *peer
	// Gateway side (nil in baseline runs).
	trunkUDP *media.UDPSession
	trunkEP  *media.RTPEndpoint
	rtcp     *media.RTCPSession
	webUDP   *media.UDPSession
	webEP    *media.RTPEndpoint
}

func (c *call) closeGateway() {
	if c.rtcp != nil {
		_ = c.rtcp.Close()
	}
	for _, e := range []*media.RTPEndpoint{c.trunkEP, c.webEP} {
		if e != nil {
			_ = e.Close()
		}
	}
	for _, u := range []*media.UDPSession{c.trunkUDP, c.webUDP} {
		if u != nil {
			_ = u.Close()
		}
	}
}

var loopback = netip.MustParseAddr("127.0.0.1")

// Run drives cfg.Calls calls for the warm-up and cfg.Duration and returns
// the measurements. It blocks; ctx cancels it early (with an error).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	trains, err := newTrains(cfg.ClickEvery)
	if err != nil {
		return nil, err
	}
	calls := make([]*call, cfg.Calls)
	defer func() {
		for _, c := range calls {
			if c == nil {
				continue
			}
			c.closeGateway()
			c.phone.close()
			c.web.close()
		}
	}()
	// Peers first, so their resources can be told apart from the gateway's.
	for i := range calls {
		probe := i < cfg.Probes && !cfg.Baseline
		ph, err := newPeer(kindPhone, trains, probe)
		if err != nil {
			return nil, err
		}
		w, err := newPeer(kindWeb, trains, probe)
		if err != nil {
			ph.close()
			return nil, err
		}
		ph.far, w.far = w, ph
		calls[i] = &call{phone: ph, web: w}
	}
	before := takeResources()
	if cfg.Baseline {
		for _, c := range calls {
			c.phone.dst, c.web.dst = c.web.addr(), c.phone.addr()
		}
	} else if cfg.RTPEngine != "" {
		ng, err := dialNG(cfg.RTPEngine)
		if err != nil {
			return nil, err
		}
		defer ng.close()
		for _, c := range calls {
			id, err := rtpengineCall(ng, c)
			if err != nil {
				return nil, err
			}
			defer func() { _, _ = ng.request(map[string]any{"command": "delete", "call-id": id}) }()
		}
	} else if err := buildGateway(calls, &cfg); err != nil {
		return nil, err
	}
	after := takeResources()

	for _, c := range calls {
		c.phone.start()
		c.web.start()
	}
	p := newPacer(calls)
	go p.run()
	defer p.stop()

	select {
	case <-time.After(cfg.Warmup):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	cpu0, t0 := processCPU(), time.Now()
	relay0, _ := procCPU(cfg.RTPEnginePID)
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	cpu1, t1 := processCPU(), time.Now()
	relay1, _ := procCPU(cfg.RTPEnginePID)
	p.stop()
	time.Sleep(300 * time.Millisecond) // drain: everything in flight arrives

	n := float64(cfg.Calls)
	res := &Result{
		Calls: cfg.Calls, Baseline: cfg.Baseline, Measured: t1.Sub(t0), CPU: cpu1 - cpu0,
		Procs:             runtime.GOMAXPROCS(0),
		HeapPerCall:       float64(after.heap-before.heap) / n,
		RSSPerCall:        float64(after.rss-before.rss) / n,
		GoroutinesPerCall: float64(after.goroutines-before.goroutines) / n,
		SocketsPerCall:    float64(after.sockets-before.sockets) / n,
	}
	res.CPUPerCall = res.CPU.Seconds() / res.Measured.Seconds() / n
	if cfg.RTPEnginePID > 0 {
		res.RelayCPU = relay1 - relay0
		res.RelayCPUPerCall = res.RelayCPU.Seconds() / res.Measured.Seconds() / n
	}
	res.ToMatrix = direction(calls, func(c *call) (*peer, *peer) { return c.phone, c.web })
	res.ToPhone = direction(calls, func(c *call) (*peer, *peer) { return c.web, c.phone })
	for _, c := range calls {
		for _, e := range []*media.RTPEndpoint{c.trunkEP, c.webEP} {
			if e != nil {
				st := e.Stats()
				res.GatewayLost += st.Lost
				res.GatewayConcealed += st.Concealed + st.FECRecovered
				res.GatewayDecodeErrors += st.DecodeErrors
			}
		}
	}
	return res, nil
}

// buildGateway makes the gateway side of every call and bridges it.
func buildGateway(calls []*call, cfg *Config) error {
	ports, err := media.NewPortAllocator(cfg.PortMin, cfg.PortMax)
	if err != nil {
		return err
	}
	opusCodec := codecs.OpusWith(opus.Options{Complexity: cfg.OpusComplexity, Bitrate: cfg.OpusBitrate, FEC: true})
	for _, c := range calls {
		c.trunkUDP, err = media.NewUDPSession(media.UDPConfig{ListenIP: loopback, Ports: ports, Remote: c.phone.addr(), ReadBuffer: 256 << 10})
		if err != nil {
			return fmt.Errorf("load: trunk side: %w", err)
		}
		c.webUDP, err = media.NewUDPSession(media.UDPConfig{ListenIP: loopback, Remote: c.web.addr(), ReadBuffer: 256 << 10})
		if err != nil {
			return fmt.Errorf("load: web side: %w", err)
		}
		c.trunkEP, err = media.NewRTPEndpoint(media.RTPConfig{Codec: codecs.PCMU, Reader: c.trunkUDP, Writer: c.trunkUDP,
			DeadMediaTimeout: 30 * time.Second})
		if err != nil {
			return err
		}
		c.webEP, err = media.NewRTPEndpoint(media.RTPConfig{Codec: opusCodec, PayloadType: media.OpusPayloadType,
			Reader: c.webUDP, Writer: c.webUDP, DeadMediaTimeout: 30 * time.Second})
		if err != nil {
			return err
		}
		c.rtcp, err = media.StartRTCP(media.RTCPConfig{Session: c.trunkUDP, Endpoint: c.trunkEP})
		if err != nil {
			return err
		}
		if _, err := media.Bridge(c.webEP, c.trunkEP); err != nil {
			return err
		}
		c.phone.dst, c.web.dst = c.trunkUDP.LocalAddr(), c.webUDP.LocalAddr()
	}
	return nil
}

// direction sums one direction over the calls; pair returns (sender, receiver).
func direction(calls []*call, pair func(*call) (*peer, *peer)) Direction {
	var d Direction
	var delays []time.Duration
	var jsum time.Duration
	for _, c := range calls {
		from, to := pair(c)
		d.Sent += from.sent.Load()
		d.Received += to.received.Load()
		j := to.rx.Snapshot().Jitter
		jsum += j
		d.JitterMax = max(d.JitterMax, j)
		delays = append(delays, to.delays()...)
	}
	d.Lost = int64(d.Sent) - int64(d.Received)
	d.JitterMean = jsum / time.Duration(len(calls))
	d.Clicks = len(delays)
	if len(delays) > 0 {
		sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
		d.DelayP50 = delays[len(delays)/2]
		d.DelayP99 = delays[min(len(delays)-1, len(delays)*99/100)]
		d.DelayMax = delays[len(delays)-1]
	}
	return d
}
