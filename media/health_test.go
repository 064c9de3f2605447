package media

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/codecs"
)

// Packets arriving exactly on their timestamps have no jitter; a constant
// +-5 ms alternation converges to 10 ms (RFC 3550 A.8: |D| is 10 ms each time).
func TestReceptionJitter(t *testing.T) {
	s := NewReceptionStats(8000)
	for i := range 200 {
		s.Update(1, uint16(i), uint32(i*160), int64(i)*20e6)
	}
	if r := s.Snapshot(); r.JitterUnits != 0 || r.Received != 200 || r.Expected != 200 || r.Lost != 0 {
		t.Fatalf("steady stream: %+v", r)
	}
	s = NewReceptionStats(8000)
	for i := range 400 {
		off := int64(5e6)
		if i%2 == 1 {
			off = -off
		}
		s.Update(1, uint16(i), uint32(i*160), int64(i)*20e6+off+1e9)
	}
	r := s.Snapshot()
	if r.Jitter < 9*time.Millisecond || r.Jitter > 10*time.Millisecond {
		t.Errorf("alternating 5 ms: jitter %v, want about 10ms", r.Jitter)
	}
}

// Loss is expected minus received over the extended sequence numbers,
// across a sequence wrap; duplicates count as received (RFC 3550 A.3).
func TestReceptionLossAndWrap(t *testing.T) {
	s := NewReceptionStats(8000)
	start := uint16(65500)
	for i := range 100 {
		if i%10 == 3 {
			continue
		}
		seq := start + uint16(i)
		s.Update(7, seq, uint32(i*160), int64(i)*20e6)
	}
	r := s.Snapshot()
	if r.Expected != 100 || r.Received != 90 || r.Lost != 10 || r.ExtHighestSeq != 1<<16+63 {
		t.Errorf("%+v", r)
	}
	if f := r.LossFraction(); math.Abs(f-0.1) > 1e-9 {
		t.Errorf("loss fraction %v", f)
	}
	// A new SSRC starts over.
	s.Update(8, 10, 0, 5e9)
	if r := s.Snapshot(); r.SSRC != 8 || r.Received != 1 || r.Expected != 1 {
		t.Errorf("after SSRC change: %+v", r)
	}
}

func TestReceptionNoAllocs(t *testing.T) {
	s := NewReceptionStats(48000)
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		s.Update(1, uint16(i), uint32(i*960), monoNanos())
		i++
	}); n != 0 {
		t.Errorf("%.1f allocations per update", n)
	}
}

func TestEModel(t *testing.T) {
	d := EModelDelay("PCMU", 0, 0)
	if d != 40*time.Millisecond {
		t.Errorf("G.711 delay without RTT/jitter = %v, want 40ms", d)
	}
	tests := []struct {
		codec    string
		delay    time.Duration
		loss     float64
		min, max float64
	}{
		{"PCMU", 40 * time.Millisecond, 0, 4.35, 4.42}, // R = 92.2
		{"PCMA", 40 * time.Millisecond, 0.05, 3.5, 3.9},
		{"opus", 50 * time.Millisecond, 0, 4.0, 4.1},  // R = 93.2 - 1.2 - 11
		{"PCMU", 400 * time.Millisecond, 0, 2.5, 3.1}, // long delay hurts
		{"PCMU", 40 * time.Millisecond, 1, 1, 1.2},    // R = 92.2 - 95*100/125.1
	}
	for _, tc := range tests {
		m := EstimateMOS(tc.codec, tc.delay, tc.loss)
		if m < tc.min || m > tc.max {
			t.Errorf("MOS(%s, %v, %.2f) = %.3f, want %.2f-%.2f (R %.1f)", tc.codec, tc.delay, tc.loss, m, tc.min, tc.max,
				RFactor(tc.codec, tc.delay, tc.loss))
		}
	}
	if MOSFromR(0) != 1 || MOSFromR(120) != 4.5 {
		t.Error("MOS clamps")
	}
}

// A peer that stops sending triggers the dead-media callback once, after
// the timeout counted from its last packet; packets keep it quiet.
func TestDeadMedia(t *testing.T) {
	tr := newChanTransport()
	e, err := NewRTPEndpoint(RTPConfig{Codec: fakeCodec(false), Reader: tr, Writer: &discardWriter{}, DeadMediaTimeout: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	fired := make(chan time.Duration, 2)
	e.OnDeadMedia(func(d time.Duration) { fired <- d })
	for i := range 20 { // 400 ms of packets, every 20 ms
		tr.ch <- fakePacket(uint16(i), 9)
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case d := <-fired:
		t.Fatalf("fired after %v while packets flowed", d)
	default:
	}
	select {
	case d := <-fired:
		if d < 150*time.Millisecond {
			t.Errorf("silence %v shorter than the timeout", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("dead media not detected")
	}
	if h := e.Health(); h.PacketsIn != 20 || h.Silence < 150*time.Millisecond {
		t.Errorf("health %+v", h)
	}
	select {
	case <-fired:
		t.Error("fired twice")
	case <-time.After(300 * time.Millisecond):
	}
}

// A peer that never sends is dead too; Close stops the watch.
func TestDeadMediaNeverStarted(t *testing.T) {
	tr := newChanTransport()
	e, err := NewRTPEndpoint(RTPConfig{Codec: fakeCodec(false), Reader: tr, Writer: &discardWriter{}, DeadMediaTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fired := make(chan time.Duration, 1)
	e.OnDeadMedia(func(d time.Duration) { fired <- d })
	select {
	case <-fired:
	case <-time.After(5 * time.Second):
		t.Fatal("silent peer not detected")
	}
	// A closed endpoint never fires.
	e.OnDeadMedia(func(d time.Duration) { fired <- d })
	_ = e.Close()
	select {
	case <-fired:
		t.Error("fired after Close")
	case <-time.After(150 * time.Millisecond):
	}
}

// lossyWriter drops a fraction of the packets it is given, with a seeded
// generator so the run is reproducible: an in-process lossy link.
type lossyWriter struct {
	w       PacketWriter
	rng     *rand.Rand
	loss    float64
	dropped int
}

func (l *lossyWriter) WritePacket(p []byte) error {
	if l.rng.Float64() < l.loss {
		l.dropped++
		return nil
	}
	return l.w.WritePacket(p)
}

// Under 5% random loss over real UDP sockets a 1 kHz tone is still
// detected in the concealed audio (Opus PLC/FEC, G.711 fade), and the
// receiver's statistics see the loss.
func TestLossConcealmentFivePercent(t *testing.T) {
	ports := newTestPorts(t)
	for _, c := range []codecs.Codec{codecs.PCMU, codecs.Opus} {
		t.Run(c.Name, func(t *testing.T) {
			sa, sb := newSession(t, ports), newSession(t, ports)
			sa.SetRemote(sb.AdvertisedAddr())
			sb.SetRemote(sa.AdvertisedAddr())
			lossy := &lossyWriter{w: sa, rng: rand.New(rand.NewPCG(1, 2)), loss: 0.05}
			ea, err := NewRTPEndpoint(RTPConfig{Codec: c, Writer: lossy})
			if err != nil {
				t.Fatal(err)
			}
			defer ea.Close()
			eb, err := NewRTPEndpoint(RTPConfig{Codec: c, Reader: sb, Writer: sb})
			if err != nil {
				t.Fatal(err)
			}
			defer eb.Close()
			det := NewToneDetector(1000, 8000)
			if err := eb.SetSink(8000, det); err != nil {
				t.Fatal(err)
			}
			w, _ := ea.Writer(8000)
			gen := NewToneGenerator(1000, 8000)
			frame := make([]int16, 160)
			const frames = 500 // 10 s of audio
			for i := range frames {
				gen.Fill(frame)
				if err := w.WritePCM(frame); err != nil {
					t.Fatal(err)
				}
				if i%5 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			want := uint64(frames - lossy.dropped)
			deadline := time.Now().Add(5 * time.Second)
			for eb.Stats().PacketsIn < want && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			st, h := eb.Stats(), eb.Health()
			if lossy.dropped < 10 {
				t.Fatalf("only %d packets dropped", lossy.dropped)
			}
			if st.PacketsIn != want || st.Concealed+st.FECRecovered == 0 {
				t.Errorf("stats %+v, want %d in and concealment", st, want)
			}
			// The last packet may be the lost one: nothing after it reveals the gap.
			if h.LostIn < int64(lossy.dropped)-1 || h.LostIn > int64(lossy.dropped) || h.LossIn < 0.02 || h.LossIn > 0.08 {
				t.Errorf("health %+v, dropped %d", h, lossy.dropped)
			}
			if h.MOS <= 1 || h.MOS >= EstimateMOS(c.Name, 40*time.Millisecond, 0) {
				t.Errorf("MOS %.2f under loss", h.MOS)
			}
			if b, hits := det.Blocks(), det.Hits(); b < frames/5-2 || hits < b*95/100 {
				t.Errorf("tone in %d of %d blocks under %.1f%% loss", hits, b, 100*float64(lossy.dropped)/frames)
			}
		})
	}
}
