package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/matrix-gateway/gateway/internal/load"
)

// loadCmd runs the media load generator (internal/load): N bridged calls in
// this process through the real RTP endpoints, no signalling; the Matrix
// side runs over plain UDP (pure-media mode) or the real WebRTC peer.
func loadCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	callsFlag := fs.String("calls", "10", "comma-separated numbers of concurrent calls to run, e.g. 50,100,200")
	duration := fs.Duration("duration", 10*time.Second, "measured time of each run")
	warmup := fs.Duration("warmup", 2*time.Second, "time before measuring starts")
	reps := fs.Int("reps", 1, "repetitions of each run; the summary gives medians")
	baseline := fs.Bool("baseline", false, "also run the peers alone (no gateway) at each N, to subtract their CPU")
	complexity := fs.Int("opus-complexity", 5, "gateway Opus encoder complexity, 0-10")
	bitrate := fs.Int("opus-bitrate", 24000, "gateway Opus encoder bitrate, bit/s")
	probes := fs.Int("probes", 8, "calls that decode what they receive to measure click delay")
	ceiling := fs.Int("ceiling-frames", 5000, "frames of the codec-only ceiling measurement (0: skip)")
	asJSON := fs.Bool("json", false, "print every run as JSON lines instead of a table")
	rtpe := fs.String("rtpengine", "", "also run each N through an rtpengine daemon at this ng `address` (host:port), side by side")
	rtpePID := fs.Int("rtpengine-pid", 0, "rtpengine's process ID, to measure its CPU")
	transport := fs.String("transport", load.TransportUDP, "Matrix side transport: udp (plain UDP stand-in) or webrtc (the gateway's WebRTC peer facing pion clients: ICE, DTLS, SRTP)")
	rtcPort := fs.Int("webrtc-udp-port", 0, "webrtc transport: one shared UDP `port` for all the gateway's WebRTC peers (ICE UDP mux); 0: sockets per peer")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole command to `file`")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage: gateway load [--calls 50,100,200] [--duration 10s] [--reps 3] [--baseline]
                    [--transport udp|webrtc] [--webrtc-udp-port N]

Media load test: N bridged calls inside this process through the gateway's real
RTP endpoints (PCMU trunk side with RTCP; Opus side over plain UDP standing in for
WebRTC, or with --transport webrtc over the gateway's WebRTC peer answering a pion
client in-process: ICE over loopback, DTLS, SRTP), with a phone peer and a Matrix
peer per call sending click trains. Reports CPU per call, loss, jitter, added one-way
delay, memory, goroutines and sockets per call, and the codec-only ceiling measured
in the same run. In webrtc mode the baseline runs every peer against an identical
twin (pion client to pion client) and counts half of it, so the net CPU is the
gateway's share including its WebRTC transport.`)
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	var ns []int
	for _, s := range strings.Split(*callsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(stderr, "gateway load: bad --calls entry %q\n", s)
			return 2
		}
		ns = append(ns, n)
	}
	if *transport != load.TransportUDP && *transport != load.TransportWebRTC {
		fmt.Fprintf(stderr, "gateway load: --transport must be udp or webrtc, not %q\n", *transport)
		return 2
	}
	if *rtcPort != 0 && *transport != load.TransportWebRTC {
		fmt.Fprintln(stderr, "gateway load: --webrtc-udp-port needs --transport webrtc")
		return 2
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "gateway load: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "gateway load: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if *reps < 1 {
		fmt.Fprintln(stderr, "gateway load: --reps must be at least 1")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var ceil []time.Duration
	for range *reps {
		if *ceiling <= 0 {
			break
		}
		d, err := load.CodecCeiling(*ceiling, *complexity, *bitrate)
		if err != nil {
			fmt.Fprintf(stderr, "gateway load: codec ceiling: %v\n", err)
			return 1
		}
		ceil = append(ceil, d)
	}
	ceilPerFrame := medianDur(ceil)
	if !*asJSON && ceilPerFrame > 0 {
		fmt.Fprintf(stdout, "codec-only ceiling: %.1f us per call-frame (both directions), %.0f calls/core (median of %d)\n",
			float64(ceilPerFrame)/1e3, float64(20*time.Millisecond)/float64(ceilPerFrame), len(ceil))
	}
	fmt.Fprintf(stderr, "gateway load: GOMAXPROCS=%d, %d CPUs, transport %s\n", runtime.GOMAXPROCS(0), runtime.NumCPU(), *transport)

	type summary struct {
		n            int
		gw, base, re []*load.Result
		netCPUPerCal []float64
	}
	var sums []summary
	for _, n := range ns {
		s := summary{n: n}
		for rep := range *reps {
			cfg := load.Config{Calls: n, Duration: *duration, Warmup: *warmup, OpusComplexity: *complexity,
				OpusBitrate: *bitrate, Probes: *probes, Transport: *transport, WebRTCUDPPort: *rtcPort}
			res, err := load.Run(ctx, cfg)
			if err != nil {
				fmt.Fprintf(stderr, "gateway load: %d calls: %v\n", n, err)
				return 1
			}
			s.gw = append(s.gw, res)
			var b *load.Result
			if *baseline {
				cfg.Baseline = true
				if b, err = load.Run(ctx, cfg); err != nil {
					fmt.Fprintf(stderr, "gateway load: baseline %d calls: %v\n", n, err)
					return 1
				}
				s.base = append(s.base, b)
				s.netCPUPerCal = append(s.netCPUPerCal, res.CPUPerCall-b.CPUPerCall)
			}
			var rr *load.Result
			if *rtpe != "" {
				cfg.Baseline, cfg.RTPEngine, cfg.RTPEnginePID = false, *rtpe, *rtpePID
				cfg.Transport, cfg.WebRTCUDPPort = load.TransportUDP, 0
				if rr, err = load.Run(ctx, cfg); err != nil {
					fmt.Fprintf(stderr, "gateway load: rtpengine %d calls: %v\n", n, err)
					return 1
				}
				s.re = append(s.re, rr)
			}
			if *asJSON {
				out, _ := json.Marshal(map[string]any{"rep": rep, "result": res, "baseline": b, "rtpengine": rr,
					"codec_ceiling_us": float64(ceilPerFrame) / 1e3})
				fmt.Fprintln(stdout, string(out))
			} else {
				printRun(stdout, rep, res, b)
				if rr != nil {
					fmt.Fprint(stdout, "  rtpengine: ")
					printRun(stdout, rep, rr, nil)
					fmt.Fprintf(stdout, "  rtpengine process cpu/call=%.2f%%\n", 100*rr.RelayCPUPerCall)
				}
			}
		}
		sums = append(sums, s)
	}
	if *asJSON {
		return 0
	}
	fmt.Fprintln(stdout, "\nsummary (medians over repetitions):")
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "calls\tzero loss\tCPU/call (gross)\tCPU/call (net)\tcalls/core (net)\tratio to codec ceiling\tdelay p50/p99 to phone\tto matrix\tjitter to phone/matrix\tRSS/call\theap/call\tgoroutines/call\tsockets/call")
	for _, s := range sums {
		gross := median(mapf(s.gw, func(r *load.Result) float64 { return r.CPUPerCall }))
		net, perCore, ratio := "-", "-", "-"
		if len(s.netCPUPerCal) > 0 {
			nc := median(s.netCPUPerCal)
			net = fmt.Sprintf("%.2f%%", 100*nc)
			if nc > 0 {
				perCore = fmt.Sprintf("%.0f", 1/nc)
				if ceilPerFrame > 0 {
					ratio = fmt.Sprintf("%.2f", (1/nc)/(float64(20*time.Millisecond)/float64(ceilPerFrame)))
				}
			}
		}
		zero := 0
		for _, r := range s.gw {
			if r.ZeroLoss() {
				zero++
			}
		}
		ms := func(f func(*load.Result) time.Duration) string {
			return fmt.Sprintf("%.2f", float64(medianDur(mapd(s.gw, f)))/1e6)
		}
		fmt.Fprintf(tw, "%d\t%d/%d\t%.2f%%\t%s\t%s\t%s\t%s/%s ms\t%s/%s ms\t%s/%s ms\t%.0f KiB\t%.0f KiB\t%.1f\t%.1f\n",
			s.n, zero, len(s.gw), 100*gross, net, perCore, ratio,
			ms(func(r *load.Result) time.Duration { return r.ToPhone.DelayP50 }), ms(func(r *load.Result) time.Duration { return r.ToPhone.DelayP99 }),
			ms(func(r *load.Result) time.Duration { return r.ToMatrix.DelayP50 }), ms(func(r *load.Result) time.Duration { return r.ToMatrix.DelayP99 }),
			ms(func(r *load.Result) time.Duration { return r.ToPhone.JitterMean }), ms(func(r *load.Result) time.Duration { return r.ToMatrix.JitterMean }),
			median(mapf(s.gw, func(r *load.Result) float64 { return r.RSSPerCall }))/1024,
			median(mapf(s.gw, func(r *load.Result) float64 { return r.HeapPerCall }))/1024,
			median(mapf(s.gw, func(r *load.Result) float64 { return r.GoroutinesPerCall })),
			median(mapf(s.gw, func(r *load.Result) float64 { return r.SocketsPerCall })))
	}
	_ = tw.Flush()
	for _, s := range sums {
		if len(s.re) == 0 {
			continue
		}
		zero := 0
		for _, r := range s.re {
			if r.ZeroLoss() {
				zero++
			}
		}
		fmt.Fprintf(stdout, "rtpengine, %d calls: zero loss %d/%d, rtpengine CPU/call %.2f%%, delay p50 to phone %.2f ms, to matrix %.2f ms\n",
			s.n, zero, len(s.re), 100*median(mapf(s.re, func(r *load.Result) float64 { return r.RelayCPUPerCall })),
			ms(medianDur(mapd(s.re, func(r *load.Result) time.Duration { return r.ToPhone.DelayP50 }))),
			ms(medianDur(mapd(s.re, func(r *load.Result) time.Duration { return r.ToMatrix.DelayP50 }))))
	}
	return 0
}

func printRun(w io.Writer, rep int, r, b *load.Result) {
	fmt.Fprintf(w, "calls=%d rep=%d cpu/call=%.2f%% loss phone<-%d matrix<-%d gw_lost=%d concealed=%d delay_ms to_phone p50=%.2f p99=%.2f (%d clicks) to_matrix p50=%.2f p99=%.2f (%d clicks) jitter_ms %.2f/%.2f rss/call=%.0fKiB heap/call=%.0fKiB goroutines/call=%.1f sockets/call=%.1f",
		r.Calls, rep, 100*r.CPUPerCall, r.ToPhone.Lost, r.ToMatrix.Lost, r.GatewayLost, r.GatewayConcealed,
		ms(r.ToPhone.DelayP50), ms(r.ToPhone.DelayP99), r.ToPhone.Clicks, ms(r.ToMatrix.DelayP50), ms(r.ToMatrix.DelayP99), r.ToMatrix.Clicks,
		ms(r.ToPhone.JitterMean), ms(r.ToMatrix.JitterMean), r.RSSPerCall/1024, r.HeapPerCall/1024, r.GoroutinesPerCall, r.SocketsPerCall)
	if r.Transport == load.TransportWebRTC {
		fmt.Fprintf(w, " ice_connected=%d/%d", r.ICEConnected, r.Calls)
	}
	if b != nil {
		fmt.Fprintf(w, " | baseline cpu/call=%.2f%% loss %d/%d", 100*b.CPUPerCall, b.ToPhone.Lost, b.ToMatrix.Lost)
		if b.Twins {
			fmt.Fprintf(w, " (twins: half of %.2f%%, ice_connected=%d/%d)", 200*b.CPUPerCall, b.ICEConnected, b.Calls)
		}
	}
	fmt.Fprintln(w)
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func medianDur(v []time.Duration) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func mapf(rs []*load.Result, f func(*load.Result) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func mapd(rs []*load.Result, f func(*load.Result) time.Duration) []time.Duration {
	out := make([]time.Duration, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}
