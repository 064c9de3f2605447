package media

import (
	"testing"

	"github.com/matrix-gateway/gateway/codecs"
)

func TestWriterFraming(t *testing.T) {
	tests := []struct {
		name   string
		codec  codecs.Codec
		rate   int
		chunk  int // ms per WritePCM
		total  int // ms written
		tsStep uint32
		pt     uint8
	}{
		{"PCMU 10 ms in", codecs.PCMU, 8000, 10, 200, 160, 0},
		{"PCMU 20 ms in", codecs.PCMU, 8000, 20, 200, 160, 0},
		{"PCMA 30 ms in", codecs.PCMA, 8000, 30, 210, 160, 8},
		{"opus from 8 kHz", codecs.Opus, 8000, 30, 210, 960, 111},
		{"opus from 48 kHz", codecs.Opus, 48000, 10, 200, 960, 111},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := &packetLog{}
			e, err := NewRTPEndpoint(RTPConfig{Codec: tt.codec, Writer: log, SSRC: 0x1234})
			if err != nil {
				t.Fatal(err)
			}
			w, err := e.Writer(tt.rate)
			if err != nil {
				t.Fatal(err)
			}
			if w2, _ := e.Writer(tt.rate); w2 != w {
				t.Error("Writer returned a new writer for the same rate")
			}
			gen := NewToneGenerator(440, tt.rate)
			chunk := make([]int16, tt.rate*tt.chunk/1000)
			for range tt.total / tt.chunk {
				gen.Fill(chunk)
				if err := w.WritePCM(chunk); err != nil {
					t.Fatal(err)
				}
			}
			if len(log.pkts) != tt.total/20 {
				t.Fatalf("%d packets, want %d", len(log.pkts), tt.total/20)
			}
			var h0 rtpHeader
			for i, p := range log.pkts {
				var h rtpHeader
				if !parseRTP(p, &h) {
					t.Fatalf("packet %d does not parse", i)
				}
				if i == 0 {
					h0 = h
				}
				if h.ssrc != 0x1234 || h.pt != tt.pt || h.marker != (i == 0) ||
					h.seq != h0.seq+uint16(i) || h.ts != h0.ts+uint32(i)*tt.tsStep {
					t.Errorf("packet %d: %+v (first %+v)", i, h, h0)
				}
				if tt.codec.Name != "opus" && h.payloadTo-h.payloadAt != 160 {
					t.Errorf("packet %d payload %d bytes", i, h.payloadTo-h.payloadAt)
				}
			}
			if s := e.Stats(); s.PacketsOut != uint64(len(log.pkts)) || s.BytesOut == 0 {
				t.Errorf("counters %+v", s)
			}
			if _, err := e.Writer(11025); err == nil {
				t.Error("Writer accepted 11025 Hz")
			}
		})
	}
}

// Sending a 20 ms frame (PCM -> encode -> RTP -> transport) allocates nothing.
func TestSendNoAllocs(t *testing.T) {
	for _, c := range []codecs.Codec{codecs.PCMU, codecs.Opus} {
		e, err := NewRTPEndpoint(RTPConfig{Codec: c, Writer: &discardWriter{}})
		if err != nil {
			t.Fatal(err)
		}
		w, _ := e.Writer(8000)
		frame := Tone(440, 8000, 20, 8000)
		half := frame[:80]
		if a := testing.AllocsPerRun(100, func() {
			_ = w.WritePCM(frame)
			_ = w.WritePCM(half)
		}); a != 0 {
			t.Errorf("%s: %.1f allocations per write, want 0", c, a)
		}
	}
}

// Receiving a packet (parse, sequence, decode, push) and concealing a loss
// allocate nothing once the decoder exists.
func TestReceiveNoAllocs(t *testing.T) {
	for _, c := range []codecs.Codec{codecs.PCMU, codecs.Opus} {
		e, err := NewRTPEndpoint(RTPConfig{Codec: c, Writer: &discardWriter{}})
		if err != nil {
			t.Fatal(err)
		}
		_ = e.SetSink(8000, nopSink{})
		enc, _ := c.NewEncoder(8000)
		payload := make([]byte, 1500)
		n, _ := enc.Encode(Tone(440, 8000, 20, 8000), payload)
		pkt := rtpPacket(c.PayloadType, 0, 0, 5, payload[:n])
		r := newRTPReceiver(e)
		seq := uint16(0)
		next := func() {
			putRTPHeader(pkt, false, c.PayloadType, seq, uint32(seq)*uint32(c.ClockRate/50), 5)
			r.handle(pkt)
			seq++
		}
		next() // makes the decoder
		if a := testing.AllocsPerRun(100, next); a != 0 {
			t.Errorf("%s: %.1f allocations per packet, want 0", c, a)
		}
		if a := testing.AllocsPerRun(50, func() {
			seq++ // lose one
			next()
			next()
		}); a != 0 {
			t.Errorf("%s: %.1f allocations per loss, want 0", c, a)
		}
		if s := e.Stats(); s.Lost == 0 || (s.Concealed+s.FECRecovered) == 0 || s.DecodeErrors != 0 {
			t.Errorf("%s counters %+v", c, s)
		}
	}
}
