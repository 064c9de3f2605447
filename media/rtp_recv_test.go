package media

import (
	"fmt"
	"strings"
	"testing"
)

// describe renders recorded frames as "1 2 C F3 4".
func describe(frames []frameRec) string {
	var b strings.Builder
	for i, f := range frames {
		if i > 0 {
			b.WriteByte(' ')
		}
		switch f.kind {
		case kindConcealed:
			b.WriteString("C")
		case kindFEC:
			fmt.Fprintf(&b, "F%d", uint16(f.id))
		default:
			fmt.Fprintf(&b, "%d", uint16(f.id))
		}
	}
	return b.String()
}

func newTestReceiver(t *testing.T, window int, fec bool) (*rtpReceiver, *recordingSink) {
	t.Helper()
	e, err := NewRTPEndpoint(RTPConfig{
		Codec: fakeCodec(fec), EventPayloadType: 101, ReorderWindow: window, Writer: &discardWriter{},
	})
	if err != nil {
		t.Fatal(err)
	}
	sink := &recordingSink{}
	if err := e.SetSink(8000, sink); err != nil {
		t.Fatal(err)
	}
	return newRTPReceiver(e), sink
}

func TestReceiveSequencing(t *testing.T) {
	const A, B = 0xAAAA, 0xBBBB
	type pkt struct {
		seq  uint16
		ssrc uint32
	}
	seqs := func(ssrc uint32, s ...uint16) []pkt {
		var out []pkt
		for _, q := range s {
			out = append(out, pkt{q, ssrc})
		}
		return out
	}
	tests := []struct {
		name   string
		window int
		fec    bool
		in     []pkt
		want   string
		check  func(RTPStats) string
	}{
		{"in order", 1, false, seqs(A, 1, 2, 3), "1 2 3", nil},
		{"swap", 1, false, seqs(A, 1, 3, 2, 4), "1 2 3 4",
			func(s RTPStats) string { return want(s.Reordered == 1 && s.Lost == 0, s) }},
		{"duplicate", 1, false, seqs(A, 1, 2, 2, 3), "1 2 3",
			func(s RTPStats) string { return want(s.Duplicates == 1 && s.PacketsIn == 3, s) }},
		{"duplicate of held", 1, false, seqs(A, 1, 3, 3, 2), "1 2 3",
			func(s RTPStats) string { return want(s.Duplicates == 1 && s.Reordered == 1, s) }},
		{"one lost", 1, false, seqs(A, 1, 3, 4), "1 C 3 4",
			func(s RTPStats) string { return want(s.Lost == 1 && s.Concealed == 1, s) }},
		{"two lost", 1, false, seqs(A, 1, 4, 5), "1 C C 4 5",
			func(s RTPStats) string { return want(s.Lost == 2 && s.Concealed == 2, s) }},
		{"late after concealment", 1, false, seqs(A, 1, 3, 4, 2, 5), "1 C 3 4 5",
			func(s RTPStats) string { return want(s.Late == 1 && s.Lost == 1, s) }},
		{"reorder by two, window 1", 1, false, seqs(A, 1, 4, 3, 2, 5), "1 C 3 4 5",
			func(s RTPStats) string { return want(s.Lost == 1 && s.Late == 1, s) }},
		{"reorder by two, window 2", 2, false, seqs(A, 1, 4, 3, 2, 5), "1 2 3 4 5",
			func(s RTPStats) string { return want(s.Reordered == 1 && s.Lost == 0, s) }},
		{"loss, window 2", 2, false, seqs(A, 1, 3, 4, 5), "1 C 3 4 5",
			func(s RTPStats) string { return want(s.Lost == 1, s) }},
		{"FEC recovers one", 1, true, seqs(A, 1, 3, 4), "1 F3 3 4",
			func(s RTPStats) string { return want(s.FECRecovered == 1 && s.Concealed == 0, s) }},
		{"FEC after PLC", 1, true, seqs(A, 1, 4, 5), "1 C F4 4 5",
			func(s RTPStats) string { return want(s.FECRecovered == 1 && s.Concealed == 1, s) }},
		{"sequence wraps", 1, false, seqs(A, 65534, 65535, 0, 1), "65534 65535 0 1", nil},
		{"reorder across wrap", 1, false, seqs(A, 65534, 0, 65535, 1), "65534 65535 0 1", nil},
		{"sender restart", 1, false, seqs(A, 100, 101, 5, 6), "100 101 5 6", nil},
		{"big forward jump conceals at most 100 ms", 1, false, seqs(A, 1, 1000, 1001), "1 C C C C C 1000 1001",
			func(s RTPStats) string { return want(s.Lost == 998 && s.Concealed == 5, s) }},
		{"foreign SSRC ignored", 1, false, append(append(seqs(A, 1, 2), seqs(B, 50, 51)...), seqs(A, 3)...), "1 2 3",
			func(s RTPStats) string { return want(s.WrongSSRC == 2 && s.SSRCChanges == 0, s) }},
		{"SSRC switch after 5", 1, false, append(seqs(A, 1, 2), seqs(B, 50, 51, 52, 53, 54, 55)...), "1 2 54 55",
			func(s RTPStats) string { return want(s.WrongSSRC == 5 && s.SSRCChanges == 1, s) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, sink := newTestReceiver(t, tt.window, tt.fec)
			for _, p := range tt.in {
				r.handle(fakePacket(p.seq, p.ssrc))
			}
			if got := describe(sink.frames); got != tt.want {
				t.Errorf("frames %q, want %q", got, tt.want)
			}
			if tt.check != nil {
				if msg := tt.check(r.e.Stats()); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
}

func want(ok bool, s RTPStats) string {
	if ok {
		return ""
	}
	return fmt.Sprintf("unexpected counters %+v", s)
}

func TestReceiveFilters(t *testing.T) {
	r, sink := newTestReceiver(t, 1, false)
	r.handle(fakePacket(1, 7))
	// Telephone-event and comfort-noise packets use the stream's sequence
	// numbers: they are counted, not decoded, and leave no gap.
	r.handle(rtpPacket(101, 2, 160, 7, []byte{1, 0, 0, 160})) // telephone-event
	r.handle(rtpPacket(101, 3, 160, 7, []byte{1, 0, 1, 64}))  // telephone-event
	r.handle(rtpPacket(13, 4, 640, 7, []byte{0x40}))          // comfort noise
	r.handle([]byte{0x80, 96, 0})                             // short
	r.handle(append([]byte{0x40}, fakePacket(5, 7)[1:]...))   // version 1
	r.handle(fakePacket(6, 7))                                // held: 5 is missing
	r.handle(rtpPacket(101, 5, 800, 7, []byte{1, 0, 0, 160})) // a late event fills it
	s := r.e.Stats()
	if s.Events != 3 || s.WrongPT != 1 || s.Malformed != 2 || s.PacketsIn != 2 || s.BytesIn != 4 ||
		s.Lost != 0 || s.Concealed != 0 || s.Reordered != 1 {
		t.Errorf("counters %+v", s)
	}
	if got := describe(sink.frames); got != "1 6" {
		t.Errorf("frames %q", got)
	}
}

func TestReceiveWithoutSink(t *testing.T) {
	r, sink := newTestReceiver(t, 1, false)
	r.handle(fakePacket(1, 7))
	if err := r.e.SetSink(0, nil); err != nil {
		t.Fatal(err)
	}
	r.handle(fakePacket(2, 7))
	r.handle(fakePacket(4, 7)) // held
	r.handle(fakePacket(5, 7)) // gap given up with no sink
	if err := r.e.SetSink(8000, sink); err != nil {
		t.Fatal(err)
	}
	r.handle(fakePacket(6, 7))
	if got := describe(sink.frames); got != "1 6" {
		t.Errorf("frames %q, want %q", got, "1 6")
	}
	if s := r.e.Stats(); s.PacketsIn != 5 || s.Lost != 1 {
		t.Errorf("counters %+v", s)
	}
	if err := r.e.SetSink(16000, sink); err == nil {
		t.Error("SetSink accepted a rate the codec lacks")
	}
}

// The receive goroutine runs, delivers, and ends on Close.
func TestEndpointGoroutine(t *testing.T) {
	tr := newChanTransport()
	e, err := NewRTPEndpoint(RTPConfig{Codec: fakeCodec(false), Reader: tr, Writer: &discardWriter{}})
	if err != nil {
		t.Fatal(err)
	}
	sink := &recordingSink{}
	if err := e.SetSink(8000, sink); err != nil {
		t.Fatal(err)
	}
	for i := range uint16(10) {
		tr.ch <- fakePacket(i+1, 9)
	}
	close(tr.ch) // the reader then returns io.EOF, ending the goroutine
	<-e.Done()
	if got := describe(sink.frames); got != "1 2 3 4 5 6 7 8 9 10" {
		t.Errorf("frames %q", got)
	}
	if e.Err() == nil {
		t.Error("Err is nil after a reader error")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal("second Close:", err)
	}

	// Close on a live endpoint closes the reader and waits.
	tr2 := newChanTransport()
	e2, _ := NewRTPEndpoint(RTPConfig{Codec: fakeCodec(false), Reader: tr2, Writer: &discardWriter{}})
	if err := e2.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e2.Done():
	default:
		t.Fatal("Close returned before the receive goroutine ended")
	}
	if e2.Err() != nil {
		t.Errorf("Err after Close: %v", e2.Err())
	}
	if _, err := e2.Writer(8000); err == nil {
		t.Error("Writer after Close succeeded")
	}
}

func TestNewRTPEndpointValidates(t *testing.T) {
	bad := []RTPConfig{
		{Writer: &discardWriter{}},
		{Codec: fakeCodec(false)},
		{Codec: fakeCodec(false), Writer: &discardWriter{}, ReorderWindow: 3},
		{Codec: fakeCodec(false), Writer: &discardWriter{}, PayloadType: 200},
	}
	for i, cfg := range bad {
		if _, err := NewRTPEndpoint(cfg); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
}
