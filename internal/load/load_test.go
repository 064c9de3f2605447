package load

import (
	"context"
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

func TestConfigRejects(t *testing.T) {
	for _, c := range []Config{{}, {Calls: 1, ClickEvery: 30 * time.Millisecond}, {Calls: 1, ClickEvery: 250 * time.Millisecond}, {Calls: 1, Warmup: -1}} {
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
