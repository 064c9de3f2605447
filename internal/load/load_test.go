package load

import (
	"context"
	"net"
	"testing"
	"time"
)

// Two bridged calls for a few seconds through the real endpoints over
// loopback UDP: nothing is lost and the clicks cross the gateway in both
// directions.
func TestLoadSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, Config{Calls: 2, Warmup: time.Second, Duration: 3 * time.Second, PortMin: 23000, PortMax: 23999})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *res)
	if !res.ZeroLoss() {
		t.Errorf("loss: to phone %+v, to matrix %+v, gateway lost %d", res.ToPhone, res.ToMatrix, res.GatewayLost)
	}
	// 4 s of 20 ms frames per call and direction, at the least 3 s of them.
	for name, d := range map[string]Direction{"to phone": res.ToPhone, "to matrix": res.ToMatrix} {
		if d.Sent < 2*150 || d.Received != d.Sent {
			t.Errorf("%s: sent %d received %d", name, d.Sent, d.Received)
		}
		// A click every 500 ms on both probe calls; the first of each stream
		// has no quiet before it.
		if d.Clicks < 2*4 {
			t.Errorf("%s: %d clicks arrived", name, d.Clicks)
		}
	}
	if res.GatewayDecodeErrors != 0 {
		t.Errorf("gateway decode errors: %d", res.GatewayDecodeErrors)
	}
	if res.GoroutinesPerCall <= 0 || res.SocketsPerCall < 3 {
		t.Errorf("resources per call: %.1f goroutines, %.1f sockets", res.GoroutinesPerCall, res.SocketsPerCall)
	}
}

// Four calls for two seconds whose Matrix side is the gateway's real
// WebRTC peer (ICE over loopback, DTLS, SRTP) facing pion clients, with a
// port per peer and with the shared ICE UDP mux: every call connects,
// nothing is lost and the clicks cross in both directions.
func TestLoadWebRTC(t *testing.T) {
	var perPeerSockets float64
	for _, tc := range []struct {
		name string
		port int
	}{{"port per peer", 0}, {"udp mux", freeUDPPort(t)}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			const calls = 4
			res, err := Run(ctx, Config{Calls: calls, Warmup: time.Second, Duration: 2 * time.Second, PortMin: 23000, PortMax: 23999,
				Transport: TransportWebRTC, WebRTCUDPPort: tc.port})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", *res)
			if res.Transport != TransportWebRTC || res.ICEConnected != calls {
				t.Errorf("transport %q, ICE connected on %d of %d calls", res.Transport, res.ICEConnected, calls)
			}
			if !res.ZeroLoss() {
				t.Errorf("loss: to phone %+v, to matrix %+v, gateway lost %d", res.ToPhone, res.ToMatrix, res.GatewayLost)
			}
			for name, d := range map[string]Direction{"to phone": res.ToPhone, "to matrix": res.ToMatrix} {
				// 3 s of 20 ms frames per call, at the least 2 s of them.
				if d.Sent < calls*100 || d.Received != d.Sent {
					t.Errorf("%s: sent %d received %d", name, d.Sent, d.Received)
				}
				// A click every 500 ms on every (probe) call; the first of each
				// stream has no quiet before it.
				if d.Clicks < calls*4 {
					t.Errorf("%s: %d clicks arrived", name, d.Clicks)
				}
				if d.DelayP50 <= 0 || d.DelayMax > time.Second {
					t.Errorf("%s: delay p50 %v max %v", name, d.DelayP50, d.DelayMax)
				}
			}
			if res.GatewayDecodeErrors != 0 {
				t.Errorf("gateway decode errors: %d", res.GatewayDecodeErrors)
			}
			// Trunk RTP and RTCP, plus the peer's own ICE sockets without the
			// mux: at least one per local address (loopback v4 and v6, and
			// any other interface), which the mux shares between the calls.
			if res.GoroutinesPerCall < 3 || res.SocketsPerCall < 2 {
				t.Errorf("resources per call: %.1f goroutines, %.1f sockets", res.GoroutinesPerCall, res.SocketsPerCall)
			}
			if tc.port == 0 {
				perPeerSockets = res.SocketsPerCall
			} else if res.SocketsPerCall >= perPeerSockets || res.SocketsPerCall > 3.5 {
				// With the mux a call holds the trunk's RTP and RTCP sockets and at most
				// part of the shared port's: no per-call ICE or mDNS sockets.
				t.Errorf("udp mux: %.2f sockets per call, %.2f without", res.SocketsPerCall, perPeerSockets)
			}
		})
	}
}

// The webrtc baseline: each peer talks to its twin, pion client to pion
// client; nothing is lost and no gateway resources are counted.
func TestLoadWebRTCBaseline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, Config{Calls: 3, Warmup: time.Second, Duration: time.Second, Transport: TransportWebRTC, Baseline: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *res)
	if !res.Twins || res.ICEConnected != 3 || !res.ZeroLoss() {
		t.Errorf("twins %v, ICE connected %d, loss %d/%d", res.Twins, res.ICEConnected, res.ToPhone.Lost, res.ToMatrix.Lost)
	}
	// Both ways of 3 pairs for 2 s at least.
	if res.ToMatrix.Received < 2*3*100 || res.ToPhone.Received < 2*3*100 {
		t.Errorf("received %d / %d", res.ToMatrix.Received, res.ToPhone.Received)
	}
	if res.GoroutinesPerCall != 0 || res.CPUPerCall <= 0 {
		t.Errorf("gateway goroutines %.1f, cpu/call %.4f", res.GoroutinesPerCall, res.CPUPerCall)
	}
}

// freeUDPPort finds a UDP port free on every interface, for the mux.
func freeUDPPort(t *testing.T) int {
	c, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func TestConfigRejects(t *testing.T) {
	for _, c := range []Config{{}, {Calls: 1, ClickEvery: 30 * time.Millisecond}, {Calls: 1, ClickEvery: 250 * time.Millisecond}, {Calls: 1, Warmup: -1},
		{Calls: 1, Transport: "tcp"}, {Calls: 1, Transport: TransportWebRTC, RTPEngine: "127.0.0.1:1"}, {Calls: 1, WebRTCUDPPort: 70000}} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestDetector(t *testing.T) {
	tr, err := newTrains(500 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// The peer's Opus encode/decode moves the click by its lookahead only.
	if tr.webShift < 0 || tr.webShift > 20*time.Millisecond {
		t.Errorf("web shift %v", tr.webShift)
	}
	var d detector
	pcm := make([]int16, 2000)
	pcm[1500] = 9000
	if at, ok := d.feed(pcm); !ok || at != 1500 {
		t.Errorf("onset at %d %v", at, ok)
	}
	// A second click right after is not an onset: no quiet before it.
	pcm[1500], pcm[10] = 0, 9000
	if _, ok := d.feed(pcm[:100]); ok {
		t.Error("onset without quiet before it")
	}
}
