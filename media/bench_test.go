package media

import (
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/codecs"
	"github.com/matrix-gateway/gateway/codecs/g711"
	"github.com/matrix-gateway/gateway/codecs/opus"
)

// encodedFrames encodes 1 s of a tone as 20 ms payloads.
func encodedFrames(b *testing.B, c codecs.Codec, rate int, freq float64) [][]byte {
	b.Helper()
	enc, err := c.NewEncoder(rate)
	if err != nil {
		b.Fatal(err)
	}
	gen := NewToneGenerator(freq, rate)
	frame := make([]int16, SamplesPerFrame(rate))
	var out [][]byte
	for range 50 {
		gen.Fill(frame)
		buf := make([]byte, c.MaxPayload)
		n, err := enc.Encode(frame, buf)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, buf[:n])
	}
	return out
}

// packetFeed replays payloads as one RTP stream with rising sequence
// numbers and timestamps, rewriting a reused packet buffer.
type packetFeed struct {
	pt       uint8
	step     uint32
	payloads [][]byte
	buf      [MaxPacketSize]byte
	i        int
	seq      uint16
	ts       uint32
}

func (f *packetFeed) next() []byte {
	p := f.payloads[f.i%len(f.payloads)]
	putRTPHeader(f.buf[:], false, f.pt, f.seq, f.ts, 0xCAFE)
	n := copy(f.buf[rtpHeaderLen:], p)
	f.i++
	f.seq++
	f.ts += f.step
	return f.buf[:rtpHeaderLen+n]
}

func reportCallsPerCore(b *testing.B) {
	if b.N > 0 {
		perOp := float64(b.Elapsed()) / float64(b.N)
		b.ReportMetric(float64(FrameMillis*time.Millisecond)/perOp, "calls/core")
	}
}

// BenchmarkBridgedCallFrame is one bridged call's media for one 20 ms frame
// in both directions, in process with fake transports: an Opus packet from
// the browser (48 kHz source) is decoded straight to 8 kHz, PCMU-encoded and
// sent; a PCMU packet from the trunk is decoded and encoded as narrowband
// Opus (complexity 5) and sent. It includes RTP parsing, sequencing and
// packetisation on both sides.
func BenchmarkBridgedCallFrame(b *testing.B) {
	web, err := NewRTPEndpoint(RTPConfig{Codec: codecs.Opus, Writer: &discardWriter{}})
	if err != nil {
		b.Fatal(err)
	}
	trunkOut := &discardWriter{}
	trunk, err := NewRTPEndpoint(RTPConfig{Codec: codecs.PCMU, Writer: trunkOut})
	if err != nil {
		b.Fatal(err)
	}
	rate, err := Bridge(web, trunk)
	if err != nil || rate != 8000 {
		b.Fatalf("bridge: rate %d err %v", rate, err)
	}
	rWeb, rTrunk := newRTPReceiver(web), newRTPReceiver(trunk)
	fromWeb := &packetFeed{pt: 111, step: 960, payloads: encodedFrames(b, codecs.Opus, 48000, 440)}
	fromTrunk := &packetFeed{pt: 0, step: 160, payloads: encodedFrames(b, codecs.PCMU, 8000, 1000)}
	// Warm up: the first packet makes each receiver's decoder.
	rWeb.handle(fromWeb.next())
	rTrunk.handle(fromTrunk.next())
	b.ReportAllocs()
	for b.Loop() {
		rWeb.handle(fromWeb.next())
		rTrunk.handle(fromTrunk.next())
	}
	reportCallsPerCore(b)
	ws, ts := web.Stats(), trunk.Stats()
	if ws.PacketsOut == 0 || ts.PacketsOut == 0 || ws.DecodeErrors+ts.DecodeErrors+ws.EncodeErrors+ts.EncodeErrors != 0 {
		b.Fatalf("media did not flow: web %+v trunk %+v", ws, ts)
	}
}

// BenchmarkCodecOnlyFrame is the codec work of BenchmarkBridgedCallFrame
// alone, the ceiling for the bridge: Opus decode to 8 kHz, PCMU encode,
// PCMU decode, Opus narrowband encode at complexity 5.
func BenchmarkCodecOnlyFrame(b *testing.B) {
	opusIn := encodedFrames(b, codecs.Opus, 48000, 440)
	pcmuIn := encodedFrames(b, codecs.PCMU, 8000, 1000)
	dec, err := opus.NewDecoder(8000)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := opus.NewEncoder(8000, opus.Options{Complexity: 5})
	if err != nil {
		b.Fatal(err)
	}
	pcm := make([]int16, 960)
	out := make([]byte, opus.MaxPacket)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		n, err := dec.Decode(opusIn[i], pcm)
		if err != nil {
			b.Fatal(err)
		}
		g711.EncodeULaw(out, pcm[:n])
		m := g711.DecodeULaw(pcm, pcmuIn[i])
		if _, err := enc.Encode(pcm[:m], out); err != nil {
			b.Fatal(err)
		}
		i = (i + 1) % len(opusIn)
	}
	reportCallsPerCore(b)
}

// BenchmarkUDPPacket is one RTP packet through a loopback UDP session pair
// (send syscall plus receive syscall).
func BenchmarkUDPPacket(b *testing.B) {
	a, err := NewUDPSession(UDPConfig{ListenIP: loopback})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	c, err := NewUDPSession(UDPConfig{ListenIP: loopback})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	a.SetRemote(c.LocalAddr())
	pkt := rtpPacket(0, 1, 0, 1, make([]byte, 160))
	buf := make([]byte, MaxPacketSize)
	b.ReportAllocs()
	for b.Loop() {
		if err := a.WritePacket(pkt); err != nil {
			b.Fatal(err)
		}
		if _, err := c.ReadPacket(buf); err != nil {
			b.Fatal(err)
		}
	}
}
