// Package load is the gateway's media load generator. It runs N bridged
// calls in one process through the real media path, without SIP or Matrix
// signalling. Each call is the gateway's two RTPEndpoints bridged as the
// call core bridges them: a PCMU endpoint on a UDPSession with its RTCP
// session (the trunk side) and an Opus endpoint whose transport is either a
// plain UDP socket standing in for the WebRTC peer (TransportUDP, the
// pure-media mode) or the gateway's real WebRTC peer, a media.Peer answering
// a pion client's offer in-process with ICE over loopback, DTLS and SRTP
// (TransportWebRTC). Two peers per call play the phone (PCMU over UDP) and
// the Matrix client (Opus encoded at 48 kHz as a browser would, over UDP
// or a pion peer connection); each sends a click train and measures what
// arrives: loss, RFC 3550 jitter and the added one-way delay of each click.
package load

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sort"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/webrtc/v4"

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
	// Transport is the Matrix side's transport: TransportUDP (default) or
	// TransportWebRTC.
	Transport string
	// WebRTCUDPPort, in webrtc mode, makes all the gateway's WebRTC peers
	// share this one UDP port through an ICE UDP mux
	// (media.WebRTCConfig.UDPPort); 0 gives each peer its own sockets.
	WebRTCUDPPort int
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
	switch c.Transport {
	case "":
		c.Transport = TransportUDP
	case TransportUDP, TransportWebRTC:
	default:
		return fmt.Errorf("load: unknown transport %q (udp or webrtc)", c.Transport)
	}
	if c.Transport == TransportWebRTC && c.RTPEngine != "" {
		return errors.New("load: rtpengine runs only with the udp transport")
	}
	if c.WebRTCUDPPort < 0 || c.WebRTCUDPPort > 65535 {
		return errors.New("load: bad WebRTC UDP port")
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
	Calls     int
	Baseline  bool
	Transport string
	// Twins is set for a baseline in webrtc mode: each peer then talks to
	// an identical twin (phone to phone over UDP, pion client to pion client
	// with DTLS/SRTP), both paced alike, so CPUPerCall is half of what the
	// process used: one side of each pair, the share of the peers a gateway
	// run has. ToPhone then counts the phone pairs and ToMatrix the pion
	// pairs, both ways.
	Twins bool
	// ICEConnected counts the calls whose ICE was connected at both ends at
	// the end of the measured window (webrtc mode).
	ICEConnected int
	Measured     time.Duration // wall time of the measurement window
	CPU          time.Duration // process CPU (user+system) in the window
	// CPUPerCall is the share of one core each call used (CPU / Measured /
	// Calls), peers included (halved when Twins).
	CPUPerCall float64
	ToPhone    Direction // Matrix peer -> gateway -> phone peer
	ToMatrix   Direction // phone peer -> gateway -> Matrix peer
	// Gateway endpoint counters, summed over calls.
	GatewayLost, GatewayConcealed, GatewayDecodeErrors uint64
	// Resources the gateway side of the calls took, per call (peers not
	// included): Go heap in use, resident memory, goroutines (those the
	// gateway side started, counted by label once media flows), sockets. In
	// webrtc mode heap and RSS count what the gateway side took before
	// connecting plus half of what connecting took (DTLS and SRTP state
	// grow on both ends alike).
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
	gwPeer   *media.Peer  // webrtc mode
	gwICE    atomic.Int32 // the gateway peer's webrtc.ICEConnectionState
	// Twins of the peers in a webrtc baseline (nil otherwise).
	phoneTwin, webTwin *peer
}

// peers returns the call's load peers.
func (c *call) peers() []*peer {
	ps := []*peer{c.phone, c.web}
	if c.phoneTwin != nil {
		ps = append(ps, c.phoneTwin, c.webTwin)
	}
	return ps
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
	if c.gwPeer != nil {
		_ = c.gwPeer.Close()
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
	webrtcMode := cfg.Transport == TransportWebRTC
	twins := webrtcMode && cfg.Baseline
	calls := make([]*call, cfg.Calls)
	var rtc *media.WebRTC
	defer func() {
		for _, c := range calls {
			if c == nil {
				continue
			}
			c.closeGateway()
			for _, p := range c.peers() {
				p.close()
			}
		}
		_ = rtc.Close() // after its peers
	}()
	// Peers first, so their resources can be told apart from the gateway's.
	if err := clientDo(func() error { return makePeers(calls, trains, &cfg, twins) }); err != nil {
		return nil, err
	}
	var offers []string
	if webrtcMode && !twins {
		if offers, err = offerAll(ctx, calls); err != nil {
			return nil, err
		}
	}
	if twins {
		if err := connectTwins(ctx, calls, connectTimeout(cfg.Calls)); err != nil {
			return nil, err
		}
	}
	before := takeResources()
	mid := before
	switch {
	case cfg.Baseline && !twins:
		for _, c := range calls {
			c.phone.dst, c.web.dst = c.web.addr(), c.phone.addr()
		}
	case twins:
		for _, c := range calls {
			c.phone.dst, c.phoneTwin.dst = c.phoneTwin.addr(), c.phone.addr()
		}
	case cfg.RTPEngine != "":
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
	case webrtcMode:
		var answers []string
		err := gatewayDo(func() error {
			var err error
			// The shared port may still be held briefly by a socket of
			// another process (it is in the ephemeral range): retry a while.
			for try := 0; ; try++ {
				rtc, err = media.NewWebRTC(media.WebRTCConfig{IncludeLoopback: true, UDPPort: cfg.WebRTCUDPPort})
				if err == nil || !errors.Is(err, syscall.EADDRINUSE) || try == 20 {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			if err != nil {
				return fmt.Errorf("load: %w", err)
			}
			if answers, err = answerAll(ctx, rtc, calls, offers); err != nil {
				return err
			}
			return buildGateway(calls, &cfg)
		})
		if err != nil {
			return nil, err
		}
		mid = takeResources()
		if err := connectGateway(ctx, calls, answers, connectTimeout(cfg.Calls)); err != nil {
			return nil, err
		}
	default:
		if err := gatewayDo(func() error { return buildGateway(calls, &cfg) }); err != nil {
			return nil, err
		}
	}
	after := takeResources()
	if !webrtcMode || cfg.Baseline {
		mid = after
	}

	for _, c := range calls {
		for _, p := range c.peers() {
			p.start()
		}
	}
	p := newPacer(calls)
	go p.run()
	defer p.stop()

	select {
	case <-time.After(cfg.Warmup):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// With media flowing: the goroutines the gateway side started, its
	// transport's included (they inherit the label).
	gwGoroutines := labelledGoroutines(gatewayLabel)
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
		Calls: cfg.Calls, Baseline: cfg.Baseline, Transport: cfg.Transport, Twins: twins,
		Measured: t1.Sub(t0), CPU: cpu1 - cpu0,
		Procs:             runtime.GOMAXPROCS(0),
		HeapPerCall:       (float64(mid.heap-before.heap) + float64(after.heap-mid.heap)/2) / n,
		RSSPerCall:        (float64(mid.rss-before.rss) + float64(after.rss-mid.rss)/2) / n,
		GoroutinesPerCall: float64(gwGoroutines) / n,
		SocketsPerCall:    float64(after.sockets-before.sockets) / n,
	}
	res.CPUPerCall = res.CPU.Seconds() / res.Measured.Seconds() / n
	if twins {
		res.CPUPerCall /= 2
	}
	if cfg.RTPEnginePID > 0 {
		res.RelayCPU = relay1 - relay0
		res.RelayCPUPerCall = res.RelayCPU.Seconds() / res.Measured.Seconds() / n
	}
	if twins {
		res.ToPhone = direction(calls, func(c *call) [][2]*peer { return [][2]*peer{{c.phone, c.phoneTwin}, {c.phoneTwin, c.phone}} })
		res.ToMatrix = direction(calls, func(c *call) [][2]*peer { return [][2]*peer{{c.web, c.webTwin}, {c.webTwin, c.web}} })
	} else {
		res.ToMatrix = direction(calls, func(c *call) [][2]*peer { return [][2]*peer{{c.phone, c.web}} })
		res.ToPhone = direction(calls, func(c *call) [][2]*peer { return [][2]*peer{{c.web, c.phone}} })
	}
	for _, c := range calls {
		for _, e := range []*media.RTPEndpoint{c.trunkEP, c.webEP} {
			if e != nil {
				st := e.Stats()
				res.GatewayLost += st.Lost
				res.GatewayConcealed += st.Concealed + st.FECRecovered
				res.GatewayDecodeErrors += st.DecodeErrors
			}
		}
		if webrtcMode {
			far := c.webTwin
			gw := webrtc.ICEConnectionState(c.gwICE.Load())
			if far != nil {
				gw = webrtc.ICEConnectionState(far.rtc.ice.Load())
			}
			if iceUp(gw) && iceUp(webrtc.ICEConnectionState(c.web.rtc.ice.Load())) {
				res.ICEConnected++
			}
		}
	}
	return res, nil
}

// makePeers makes every call's load peers (and their twins for a webrtc
// baseline).
func makePeers(calls []*call, trains *trains, cfg *Config, twins bool) error {
	var api *webrtc.API
	if cfg.Transport == TransportWebRTC {
		api = clientAPI()
	}
	web := func(probe bool) (*peer, error) {
		if api != nil {
			return newRTCPeer(api, trains, probe)
		}
		return newPeer(kindWeb, trains, probe)
	}
	for i := range calls {
		probe := i < cfg.Probes && !cfg.Baseline
		ph, err := newPeer(kindPhone, trains, probe)
		if err != nil {
			return err
		}
		w, err := web(probe)
		if err != nil {
			ph.close()
			return err
		}
		c := &call{phone: ph, web: w}
		calls[i] = c
		ph.far, w.far = w, ph
		if twins {
			if c.phoneTwin, err = newPeer(kindPhone, trains, false); err != nil {
				c.phoneTwin = nil
				return err
			}
			if c.webTwin, err = web(false); err != nil {
				c.phoneTwin.close()
				c.phoneTwin = nil
				return err
			}
			ph.far, c.phoneTwin.far = c.phoneTwin, ph
			w.far, c.webTwin.far = c.webTwin, w
		}
	}
	return nil
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
		var web interface {
			media.PacketReader
			media.PacketWriter
		}
		if c.gwPeer != nil {
			web = c.gwPeer
		} else {
			c.webUDP, err = media.NewUDPSession(media.UDPConfig{ListenIP: loopback, Remote: c.web.addr(), ReadBuffer: 256 << 10})
			if err != nil {
				return fmt.Errorf("load: web side: %w", err)
			}
			web = c.webUDP
		}
		c.trunkEP, err = media.NewRTPEndpoint(media.RTPConfig{Codec: codecs.PCMU, Reader: c.trunkUDP, Writer: c.trunkUDP,
			DeadMediaTimeout: 30 * time.Second})
		if err != nil {
			return err
		}
		// As cmd/gateway wires the Matrix leg's audio (telephone-event too).
		c.webEP, err = media.NewRTPEndpoint(media.RTPConfig{Codec: opusCodec, PayloadType: media.OpusPayloadType,
			EventPayloadType: media.WebRTCEventPayloadType, Reader: web, Writer: web, DeadMediaTimeout: 30 * time.Second})
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
		c.phone.dst = c.trunkUDP.LocalAddr()
		if c.webUDP != nil {
			c.web.dst = c.webUDP.LocalAddr()
		}
	}
	return nil
}

// direction sums one direction over the calls; pairs returns a call's
// (sender, receiver) pairs.
func direction(calls []*call, pairs func(*call) [][2]*peer) Direction {
	var d Direction
	var delays []time.Duration
	var jsum time.Duration
	np := 0
	for _, c := range calls {
		for _, pr := range pairs(c) {
			from, to := pr[0], pr[1]
			d.Sent += from.sent.Load()
			d.Received += to.received.Load()
			j := to.rx.Snapshot().Jitter
			jsum += j
			np++
			d.JitterMax = max(d.JitterMax, j)
			delays = append(delays, to.delays()...)
		}
	}
	d.Lost = int64(d.Sent) - int64(d.Received)
	d.JitterMean = jsum / time.Duration(max(np, 1))
	d.Clicks = len(delays)
	if len(delays) > 0 {
		sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
		d.DelayP50 = delays[len(delays)/2]
		d.DelayP99 = delays[min(len(delays)-1, len(delays)*99/100)]
		d.DelayMax = delays[len(delays)-1]
	}
	return d
}
