package media

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"
)

// streamPipes is a StreamEndpoint over two io.Pipe pairs: the test writes
// the "device's" capture into capW and reads what the endpoint plays from
// playR.
type streamPipes struct {
	ep    *StreamEndpoint
	capW  *io.PipeWriter
	playR *io.PipeReader
}

func newStreamPipes(t *testing.T, rate int) *streamPipes {
	t.Helper()
	capR, capW := io.Pipe()
	playR, playW := io.Pipe()
	ep, err := NewStreamEndpoint(StreamConfig{Capture: capR, Playback: playW, Rate: rate, Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ep.Close() })
	return &streamPipes{ep: ep, capW: capW, playR: playR}
}

func s16le(pcm []int16) []byte {
	b := make([]byte, 2*len(pcm))
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return b
}

func fromS16LE(b []byte) []int16 {
	pcm := make([]int16, len(b)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return pcm
}

// TestStreamEndpointCarriesTonesBothWays feeds a paced 1000 Hz tone into
// the capture stream and a paced 440 Hz tone into the writer, and checks
// each arrives at the other side, at both rates.
func TestStreamEndpointCarriesTonesBothWays(t *testing.T) {
	for _, c := range []struct {
		name      string
		rate, far int
	}{{"8k", 8000, 8000}, {"16k", 16000, 16000}, {"16k device, 8k far end", 16000, 8000}} {
		rate, far := c.rate, c.far
		t.Run(c.name, func(t *testing.T) {
			p := newStreamPipes(t, rate)
			if r := p.ep.Rates(); r[0] != rate || (rate == 16000) != (len(r) == 2 && r[1] == 8000) || (rate == 8000 && len(r) != 1) {
				t.Fatalf("Rates %v", r)
			}
			det := NewToneDetector(1000, far)
			if err := p.ep.SetSink(far, det); err != nil {
				t.Fatal(err)
			}
			w, err := p.ep.Writer(far)
			if err != nil {
				t.Fatal(err)
			}
			const frames = 50 // one second
			n := SamplesPerFrame(rate)

			// The "device" side: capture paced by a ticker, playback read as it comes.
			var wg sync.WaitGroup
			var played []int16
			wg.Add(2)
			go func() {
				defer wg.Done()
				g := NewToneGenerator(1000, rate)
				frame := make([]int16, n)
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for i := 0; i < frames; i++ {
					<-tick.C
					g.Fill(frame)
					if _, err := p.capW.Write(s16le(frame)); err != nil {
						t.Errorf("capture write: %v", err)
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				buf := make([]byte, 2*n)
				for len(played) < frames*n {
					if _, err := io.ReadFull(p.playR, buf); err != nil {
						t.Errorf("playback read: %v", err)
						return
					}
					played = append(played, fromS16LE(buf)...)
				}
			}()
			g := NewToneGenerator(440, far)
			frame := make([]int16, SamplesPerFrame(far))
			tick := time.NewTicker(20 * time.Millisecond)
			for i := 0; i < frames; i++ {
				<-tick.C
				g.Fill(frame)
				if err := w.WritePCM(frame); err != nil {
					t.Fatal(err)
				}
			}
			tick.Stop()
			waitGroupOrFail(t, &wg, 10*time.Second)

			if b, h := det.Blocks(), det.Hits(); b < 9 || h < b-1 {
				t.Errorf("1000 Hz at the sink: %d of %d blocks", h, b)
			}
			if lvl := Goertzel(played, rate, 440); lvl < 0.9 {
				t.Errorf("440 Hz on playback: level %.3f", lvl)
			}
			// The playback goroutine counts a frame just after its write returns.
			st := p.ep.Stats()
			for i := 0; i < 500 && st.FramesOut < frames; i++ {
				time.Sleep(time.Millisecond)
				st = p.ep.Stats()
			}
			if st.FramesIn != frames || st.FramesOut != frames || st.ReadErrors+st.WriteErrors+st.Dropped != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func waitGroupOrFail(t *testing.T, wg *sync.WaitGroup, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatal("stream test goroutines did not finish")
	}
}

// signalSink reports each frame it gets on a channel, without allocating.
type signalSink struct {
	ch   chan struct{}
	last int16
}

func (s *signalSink) WritePCM(pcm []int16) error {
	s.last = pcm[len(pcm)-1]
	s.ch <- struct{}{}
	return nil
}

// TestStreamEndpointZeroAllocs checks that a frame each way allocates
// nothing: capture read, conversion, sink push; writer conversion, queue,
// playback write.
func TestStreamEndpointZeroAllocs(t *testing.T) {
	p := newStreamPipes(t, 8000)
	sink := &signalSink{ch: make(chan struct{}, 1)}
	if err := p.ep.SetSink(8000, sink); err != nil {
		t.Fatal(err)
	}
	w, err := p.ep.Writer(8000)
	if err != nil {
		t.Fatal(err)
	}
	frame := Tone(1000, 8000, 20, 8000)
	in := s16le(frame)
	out := make([]byte, len(in))
	step := func() {
		if _, err := p.capW.Write(in); err != nil {
			t.Fatal(err)
		}
		<-sink.ch
		if err := w.WritePCM(frame); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(p.playR, out); err != nil {
			t.Fatal(err)
		}
	}
	step() // warm up
	if allocs := testing.AllocsPerRun(200, step); allocs != 0 {
		t.Errorf("%.1f allocations per frame, want 0", allocs)
	}
	if sink.last != frame[len(frame)-1] || string(out) != string(in) {
		t.Error("audio changed on the way")
	}
}

// errWriter fails every write as a device gone away or a short write does.
type errWriter struct {
	mu     sync.Mutex
	n      int
	closed bool
}

func (w *errWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	if w.n%2 == 0 {
		return len(b) / 2, io.ErrShortWrite
	}
	return 0, syscall.EPIPE
}

func (w *errWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	return nil
}

// TestStreamEndpointWriteErrorsAreCounted: EPIPE and short writes count as
// write errors; capture keeps flowing.
func TestStreamEndpointWriteErrorsAreCounted(t *testing.T) {
	capR, capW := io.Pipe()
	pw := &errWriter{}
	ep, err := NewStreamEndpoint(StreamConfig{Capture: capR, Playback: pw, Rate: 8000})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	sink := &signalSink{ch: make(chan struct{}, 1)}
	_ = ep.SetSink(8000, sink)
	w, _ := ep.Writer(8000)
	frame := Tone(440, 8000, 20, 8000)
	for i := 0; i < 4; i++ {
		if err := w.WritePCM(frame); err != nil {
			t.Fatalf("WritePCM: %v", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for ep.Stats().WriteErrors < uint64(i+1) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	if _, err := capW.Write(s16le(frame)); err != nil {
		t.Fatal(err)
	}
	<-sink.ch
	st := ep.Stats()
	if st.WriteErrors != 4 || st.FramesOut != 0 || st.FramesIn != 1 {
		t.Errorf("stats %+v, want 4 write errors, 1 frame in", st)
	}
	if err := ep.Close(); err != nil {
		t.Fatal(err)
	}
	if !pw.closed {
		t.Error("playback not closed")
	}
}

// TestStreamEndpointCaptureEnd: the end of the capture stream ends the
// receive goroutine with io.EOF; a truncated frame is an error too.
func TestStreamEndpointCaptureEnd(t *testing.T) {
	p := newStreamPipes(t, 8000)
	if p.ep.Err() != nil {
		t.Fatal("Err before the end")
	}
	_ = p.capW.Close()
	select {
	case <-p.ep.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed at the end of the capture stream")
	}
	if !errors.Is(p.ep.Err(), io.EOF) || p.ep.Stats().ReadErrors != 1 {
		t.Errorf("Err %v, stats %+v", p.ep.Err(), p.ep.Stats())
	}

	q := newStreamPipes(t, 8000)
	go func() { _, _ = q.capW.Write(make([]byte, 7)); _ = q.capW.Close() }()
	select {
	case <-q.ep.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after a truncated frame")
	}
	if !errors.Is(q.ep.Err(), io.ErrUnexpectedEOF) {
		t.Errorf("Err %v, want unexpected EOF", q.ep.Err())
	}
}

// TestStreamEndpointClose: Close stops the goroutines and closes both
// streams, is idempotent, and Err stays nil.
func TestStreamEndpointClose(t *testing.T) {
	p := newStreamPipes(t, 16000)
	if err := p.ep.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.ep.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case <-p.ep.Done():
	default:
		t.Fatal("Done open after Close")
	}
	if p.ep.Err() != nil || p.ep.Stats().ReadErrors != 0 {
		t.Errorf("Err %v after Close, stats %+v", p.ep.Err(), p.ep.Stats())
	}
	if _, err := p.capW.Write([]byte{0, 0}); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("capture still open: %v", err)
	}
	if _, err := p.playR.Read(make([]byte, 2)); err != io.EOF {
		t.Errorf("playback still open: %v", err)
	}
}

func TestStreamEndpointChecks(t *testing.T) {
	r, w := io.Pipe()
	defer r.Close()
	for _, cfg := range []StreamConfig{
		{Playback: w, Rate: 8000},
		{Capture: r, Rate: 8000},
		{Capture: r, Playback: w, Rate: 48000},
		{Capture: r, Playback: w},
	} {
		if _, err := NewStreamEndpoint(cfg); err == nil {
			t.Errorf("NewStreamEndpoint(%+v) accepted", cfg)
		}
	}
	p := newStreamPipes(t, 8000)
	if _, err := p.ep.Writer(16000); err == nil {
		t.Error("Writer(16000) on an 8 kHz stream")
	}
	if err := p.ep.SetSink(48000, NewToneDetector(1, 48000)); err == nil {
		t.Error("SetSink(48000) on an 8 kHz stream")
	}
	if err := p.ep.SetSink(0, nil); err != nil {
		t.Errorf("clearing the sink: %v", err)
	}
	if s := p.ep.String(); s != "pcm/8000 test" {
		t.Errorf("String %q", s)
	}
}

// TestStreamEndpointDropsWhenPlaybackStalls: a device that stops reading
// costs dropped frames, never a blocked writer.
func TestStreamEndpointDropsWhenPlaybackStalls(t *testing.T) {
	p := newStreamPipes(t, 8000) // nobody reads playR
	w, _ := p.ep.Writer(8000)
	frame := Tone(440, 8000, 20, 8000)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 30; i++ {
			_ = w.WritePCM(frame)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("WritePCM blocked on a stalled device")
	}
	// One buffer is in the pipe write, 10 queued: at least 19 dropped.
	if d := p.ep.Stats().Dropped; d < 19 {
		t.Errorf("dropped %d frames, want >= 19", d)
	}
}
