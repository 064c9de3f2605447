package media

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/codecs"
)

func evPayload(event uint8, end bool, dur uint16) []byte {
	b := make([]byte, DTMFPayloadLen)
	DTMFPayload{Event: event, End: end, Volume: 10, Duration: dur}.Put(b)
	return b
}

func TestDTMFDigitRoundTrip(t *testing.T) {
	for _, d := range "0123456789*#ABCD" {
		ev, ok := DTMFEvent(d)
		if !ok {
			t.Fatalf("%c: no event", d)
		}
		back, ok := DTMFDigit(ev)
		if !ok || back != d {
			t.Errorf("%c -> %d -> %c", d, ev, back)
		}
	}
	if _, ok := DTMFEvent('x'); ok {
		t.Error("x accepted")
	}
	if _, ok := DTMFDigit(16); ok {
		t.Error("flash (16) reported as a digit")
	}
}

// TestDTMFDetector feeds packet sequences as senders produce them.
func TestDTMFDetector(t *testing.T) {
	type pkt struct {
		ts    uint32
		ev    uint8
		end   bool
		dur   uint16
		media bool
	}
	tests := []struct {
		name string
		pkts []pkt
		want string
		durs []time.Duration
	}{
		{"one digit, three end packets", []pkt{{1000, 5, false, 160, false}, {1000, 5, false, 320, false},
			{1000, 5, true, 800, false}, {1000, 5, true, 800, false}, {1000, 5, true, 800, false}}, "5", []time.Duration{100 * time.Millisecond}},
		{"two digits in order", []pkt{{1000, 1, false, 160, false}, {1000, 1, true, 640, false}, {1000, 1, true, 640, false},
			{5000, 2, false, 160, false}, {5000, 2, true, 640, false}, {5000, 2, true, 640, false}}, "12", nil},
		{"retransmitted old event ignored", []pkt{{1000, 1, true, 640, false}, {5000, 2, true, 640, false},
			{1000, 1, true, 640, false}}, "12", nil},
		{"end packets lost, next event closes it", []pkt{{1000, 3, false, 160, false}, {1000, 3, false, 480, false},
			{5000, 4, false, 160, false}, {5000, 4, true, 640, false}}, "34", nil},
		{"overlapping event with end first", []pkt{{1000, 3, false, 160, false}, {2000, 4, true, 640, false},
			{2000, 4, true, 640, false}}, "34", nil},
		{"end lost, media closes it", []pkt{{1000, 7, false, 160, false}, {0, 0, false, 0, true}, {0, 0, false, 0, true},
			{0, 0, false, 0, true}, {0, 0, false, 0, true}, {0, 0, false, 0, true}, {0, 0, false, 0, true}, {0, 0, false, 0, true},
			{0, 0, false, 0, true}, {0, 0, false, 0, true}, {0, 0, false, 0, true}, {0, 0, false, 0, true}}, "7", []time.Duration{20 * time.Millisecond}},
		{"flash is not a digit", []pkt{{1000, 16, true, 640, false}, {2000, 11, true, 640, false}}, "#", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d DTMFDetector
			var got []rune
			var durs []time.Duration
			for _, p := range tc.pkts {
				var digit rune
				var dur time.Duration
				var ok bool
				if p.media {
					digit, dur, ok = d.Media()
				} else {
					digit, dur, ok = d.Feed(p.ts, evPayload(p.ev, p.end, p.dur), 8000)
				}
				if ok {
					got = append(got, digit)
					durs = append(durs, dur)
				}
			}
			if string(got) != tc.want {
				t.Errorf("digits %q, want %q", string(got), tc.want)
			}
			for i, w := range tc.durs {
				if i < len(durs) && durs[i] != w {
					t.Errorf("duration %d = %v, want %v", i, durs[i], w)
				}
			}
		})
	}
}

// FuzzDTMFPayload checks the event parser and detector never panic and a
// parsed payload renders back to the same four bytes.
func FuzzDTMFPayload(f *testing.F) {
	f.Add([]byte{5, 0x8a, 0x03, 0x20}, uint32(1000))
	f.Add([]byte{11, 0x0a, 0, 160, 1, 2}, uint32(0))
	f.Add([]byte{1}, uint32(7))
	f.Fuzz(func(t *testing.T, b []byte, ts uint32) {
		var d DTMFDetector
		_, _, _ = d.Feed(ts, b, 8000)
		_, _, _ = d.Feed(ts, b, 48000)
		_, _, _ = d.Media()
		p, ok := ParseDTMFPayload(b)
		if ok != (len(b) >= DTMFPayloadLen) {
			t.Fatalf("ok=%v for %d bytes", ok, len(b))
		}
		if !ok {
			return
		}
		out := make([]byte, 4)
		p.Put(out)
		want := append([]byte(nil), b[:4]...)
		want[1] &^= 0x40 // the reserved bit is not kept
		if string(out) != string(want) {
			t.Fatalf("round trip %x -> %x", b[:4], out)
		}
	})
}

type pwFunc func([]byte) error

func (f pwFunc) WritePacket(p []byte) error { return f(p) }

// loopWriter delivers written packets to a reader, like a socket pair.
type loopWriter struct {
	ch chan []byte
}

func (w *loopWriter) WritePacket(pkt []byte) error {
	w.ch <- append([]byte(nil), pkt...)
	return nil
}

func (w *loopWriter) ReadPacket(buf []byte) (int, error) {
	p, ok := <-w.ch
	if !ok {
		return 0, context.Canceled
	}
	return copy(buf, p), nil
}

// TestRTPEndpointDTMFRoundTrip sends digits from one endpoint to another
// while audio flows: the receiver reports each once, in order, and the
// packets follow RFC 4733 (one timestamp per event, three end packets).
func TestRTPEndpointDTMFRoundTrip(t *testing.T) {
	link := &loopWriter{ch: make(chan []byte, 4096)}
	var sent [][]byte
	tap := pwFunc(func(p []byte) error {
		sent = append(sent, append([]byte(nil), p...))
		return link.WritePacket(p)
	})
	tx, err := NewRTPEndpoint(RTPConfig{Codec: codecs.PCMU, EventPayloadType: 101, Writer: tap})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []rune
	var durs []time.Duration
	rx, err := NewRTPEndpoint(RTPConfig{Codec: codecs.PCMU, EventPayloadType: 101, Reader: link, Writer: pwFunc(func([]byte) error { return nil }),
		DTMFHandler: func(d rune, dur time.Duration) {
			mu.Lock()
			got = append(got, d)
			durs = append(durs, dur)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { close(link.ch); <-rx.Done(); _ = rx.Close() }()
	w, err := tx.Writer(8000)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range "12#" {
		if err := tx.SendDTMF(context.Background(), d, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	frame := make([]int16, 160)
	for i := 0; i < 60; i++ {
		if err := w.WritePCM(frame); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if string(got) != "12#" {
		t.Fatalf("received %q, want 12#", string(got))
	}
	for _, d := range durs {
		if d != 100*time.Millisecond {
			t.Errorf("duration %v, want 100ms", d)
		}
	}
	ends := map[uint32]int{}
	for _, p := range sent {
		if p[1]&0x7F == 101 && p[13]&0x80 != 0 {
			ends[binary.BigEndian.Uint32(p[4:])]++
		}
	}
	if len(ends) != 3 {
		t.Fatalf("%d events with end packets, want 3", len(ends))
	}
	for ts, n := range ends {
		if n != dtmfEndRepeats {
			t.Errorf("event ts %d: %d end packets, want %d", ts, n, dtmfEndRepeats)
		}
	}
	if st := rx.Stats(); st.DigitsIn != 3 {
		t.Errorf("DigitsIn %d, want 3", st.DigitsIn)
	}
	if err := (&RTPEndpoint{}).SendDTMF(context.Background(), '1', 0); err != ErrNoDTMF {
		t.Errorf("no event PT: %v, want ErrNoDTMF", err)
	}
}

// TestDTMFWithoutAudio: when the far leg sends no audio (a silent trunk,
// VAD), queued digits still go out, paced by the endpoint's own 20 ms clock,
// and arrive once each, in order; when audio starts again the pump stops.
func TestDTMFWithoutAudio(t *testing.T) {
	link := &loopWriter{ch: make(chan []byte, 4096)}
	tx, err := NewRTPEndpoint(RTPConfig{Codec: codecs.PCMU, EventPayloadType: 101, Writer: link})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []rune
	rx, err := NewRTPEndpoint(RTPConfig{Codec: codecs.PCMU, EventPayloadType: 101, Reader: link, Writer: pwFunc(func([]byte) error { return nil }),
		DTMFHandler: func(d rune, _ time.Duration) {
			mu.Lock()
			got = append(got, d)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Close(); close(link.ch); <-rx.Done(); _ = rx.Close() }()
	for _, d := range "7*0" {
		if err := tx.SendDTMF(context.Background(), d, 80*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	if string(got) != "7*0" {
		t.Errorf("received %q with no audio flowing, want 7*0", string(got))
	}
	mu.Unlock()
	// The pump has stopped: nothing more is sent while the endpoint idles.
	time.Sleep(100 * time.Millisecond)
	before := tx.Stats().EventsOut
	time.Sleep(200 * time.Millisecond)
	if after := tx.Stats().EventsOut; after != before {
		t.Errorf("events still sent after the queue drained: %d -> %d", before, after)
	}
	tx.send.mu.Lock()
	pumping := tx.send.pumping
	tx.send.mu.Unlock()
	if pumping {
		t.Error("the DTMF pump is still running")
	}
}

// BenchmarkDTMFDetector measures the receive-side cost of one event packet;
// it must not allocate.
func BenchmarkDTMFDetector(b *testing.B) {
	var d DTMFDetector
	p := evPayload(5, false, 160)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, _, _ = d.Feed(uint32(i/8)*800, p, 8000)
	}
}
