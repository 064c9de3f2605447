package media

import (
	"testing"

	"github.com/pion/rtp"

	"github.com/matrix-gateway/gateway/codecs"
)

func TestParseRTP(t *testing.T) {
	base := rtpPacket(0, 7, 1000, 42, []byte{1, 2, 3})
	withCSRC := append([]byte{0x82, 0, 0, 7, 0, 0, 3, 0xE8, 0, 0, 0, 42, 0, 0, 0, 1, 0, 0, 0, 2}, 9, 9)
	withExt := append([]byte{0x90, 0, 0, 7, 0, 0, 3, 0xE8, 0, 0, 0, 42, 0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0}, 5)
	withPad := append(rtpPacket(0, 7, 1000, 42, []byte{4, 5}), 0, 0, 3)
	withPad[0] |= 0x20
	tests := []struct {
		name    string
		pkt     []byte
		ok      bool
		payload []byte
	}{
		{"plain", base, true, []byte{1, 2, 3}},
		{"csrc", withCSRC, true, []byte{9, 9}},
		{"extension", withExt, true, []byte{5}},
		{"padding", withPad, true, []byte{4, 5}},
		{"short", base[:11], false, nil},
		{"header only", base[:12], false, nil},
		{"version 0", append([]byte{0x00}, base[1:]...), false, nil},
		{"csrc beyond end", append([]byte{0x8F}, base[1:]...), false, nil},
		{"extension beyond end", append([]byte{0x90, 0, 0, 7, 0, 0, 3, 0xE8, 0, 0, 0, 42, 0xBE, 0xDE, 0, 9}, 1), false, nil},
		{"padding eats header", append(append([]byte{0xA0}, base[1:12]...), 0, 200), false, nil},
		{"zero padding", append(append([]byte{0xA0}, base[1:12]...), 1, 0), false, nil},
	}
	for _, tt := range tests {
		var h rtpHeader
		ok := parseRTP(tt.pkt, &h)
		if ok != tt.ok {
			t.Errorf("%s: ok %v, want %v", tt.name, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		if got := tt.pkt[h.payloadAt:h.payloadTo]; string(got) != string(tt.payload) {
			t.Errorf("%s: payload %v, want %v", tt.name, got, tt.payload)
		}
		if h.seq != 7 || h.ts != 1000 || h.ssrc != 42 || h.pt != 0 {
			t.Errorf("%s: header %+v", tt.name, h)
		}
		// pion/rtp agrees on the header fields and payload.
		var p rtp.Packet
		if err := p.Unmarshal(tt.pkt); err != nil {
			t.Errorf("%s: pion rejects it: %v", tt.name, err)
		} else if p.SequenceNumber != h.seq || p.SSRC != h.ssrc || string(p.Payload) != string(tt.payload) {
			t.Errorf("%s: pion reads %v", tt.name, p.Header)
		}
	}
}

// FuzzRTPReceive feeds arbitrary datagrams, split by a leading length
// byte, through the whole receive path of a G.711, an Opus and a fake
// FEC receiver; it must never panic and must keep its invariants.
func FuzzRTPReceive(f *testing.F) {
	seed := func(pkts ...[]byte) []byte {
		var out []byte
		for _, p := range pkts {
			out = append(out, byte(len(p)))
			out = append(out, p...)
		}
		return out
	}
	pcmu := make([]byte, 160)
	f.Add(seed(rtpPacket(0, 1, 0, 1, pcmu), rtpPacket(0, 3, 320, 1, pcmu), rtpPacket(0, 2, 160, 1, pcmu)))
	f.Add(seed(rtpPacket(111, 1, 0, 1, []byte{0x08, 0xFF, 0xFE}), rtpPacket(111, 5, 3840, 1, []byte{0x03, 0xFF})))
	f.Add(seed(fakePacket(1, 1), fakePacket(9, 1), fakePacket(9, 1), fakePacket(2, 2)))
	f.Add(seed([]byte{0x90, 0, 0, 7, 0, 0, 3, 0xE8, 0, 0, 0, 42, 0xBE, 0xDE, 0xFF, 0xFF}))
	f.Add(seed([]byte{0xBF, 0x6F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var recvs []*rtpReceiver
		for _, c := range []codecs.Codec{codecs.PCMU, codecs.Opus, fakeCodec(true)} {
			e, err := NewRTPEndpoint(RTPConfig{Codec: c, Writer: &discardWriter{}, ReorderWindow: 2, EventPayloadType: 101})
			if err != nil {
				t.Fatal(err)
			}
			_ = e.SetSink(8000, nopSink{})
			recvs = append(recvs, newRTPReceiver(e))
		}
		for len(data) > 0 {
			n := min(int(data[0]), len(data)-1)
			pkt := data[1 : 1+n]
			data = data[1+n:]
			var h rtpHeader
			if parseRTP(pkt, &h) && (h.payloadAt > h.payloadTo || h.payloadTo > len(pkt) || h.payloadAt < 12) {
				t.Fatalf("bad payload bounds %d..%d of %d", h.payloadAt, h.payloadTo, len(pkt))
			}
			for _, r := range recvs {
				// The fake codec needs PT 96: rewrite a copy for it.
				if r.e.pt == 96 && len(pkt) > 1 {
					cp := append([]byte(nil), pkt...)
					cp[1] = cp[1]&0x80 | 96
					r.handle(cp)
					continue
				}
				r.handle(pkt)
			}
		}
		for _, r := range recvs {
			if r.nheld > r.e.window {
				t.Fatalf("holding %d packets, window %d", r.nheld, r.e.window)
			}
			for i := 1; i < r.nheld; i++ {
				if int16(r.held[i].h.seq-r.held[i-1].h.seq) <= 0 {
					t.Fatal("held packets out of order")
				}
			}
		}
	})
}
