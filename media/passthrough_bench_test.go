package media

import (
	"testing"

	"github.com/matrix-gateway/gateway/codecs"
	"github.com/matrix-gateway/gateway/codecs/g722"
	"github.com/matrix-gateway/gateway/codecs/opus"
)

// Wideband bridges. Opus on both legs is still transcoded (decode and
// encode at 48 kHz): BenchmarkBridgedCallFrameOpusOpus is what an Opus
// passthrough would save.

// benchBridge runs one bridged call's media for one 20 ms frame in both
// directions, as BenchmarkBridgedCallFrame does, for any codec pair.
func benchBridge(b *testing.B, web, trunk codecs.Codec, trunkPT uint8, wantRate int) {
	we, err := NewRTPEndpoint(RTPConfig{Codec: web, Writer: &discardWriter{}})
	if err != nil {
		b.Fatal(err)
	}
	te, err := NewRTPEndpoint(RTPConfig{Codec: trunk, PayloadType: trunkPT, Writer: &discardWriter{}})
	if err != nil {
		b.Fatal(err)
	}
	rate, err := Bridge(we, te)
	if err != nil || rate != wantRate {
		b.Fatalf("bridge: rate %d err %v, want %d", rate, err, wantRate)
	}
	rWeb, rTrunk := newRTPReceiver(we), newRTPReceiver(te)
	fromWeb := &packetFeed{pt: web.PayloadType, step: uint32(web.ClockRate / 50), payloads: encodedFrames(b, web, web.Rates[0], 440)}
	fromTrunk := &packetFeed{pt: te.pt, step: uint32(trunk.ClockRate / 50), payloads: encodedFrames(b, trunk, trunk.Rates[0], 1000)}
	rWeb.handle(fromWeb.next())
	rTrunk.handle(fromTrunk.next())
	b.ReportAllocs()
	for b.Loop() {
		rWeb.handle(fromWeb.next())
		rTrunk.handle(fromTrunk.next())
	}
	reportCallsPerCore(b)
	ws, ts := we.Stats(), te.Stats()
	if ws.PacketsOut == 0 || ts.PacketsOut == 0 || ws.DecodeErrors+ts.DecodeErrors+ws.EncodeErrors+ts.EncodeErrors != 0 {
		b.Fatalf("media did not flow: web %+v trunk %+v", ws, ts)
	}
}

// BenchmarkBridgedCallFrameG722 is Opus (WebRTC) <-> G.722 (SIP), bridged
// at 16 kHz: Opus decodes to and encodes from 16 kHz natively, no resampler.
func BenchmarkBridgedCallFrameG722(b *testing.B) {
	benchBridge(b, codecs.Opus, codecs.G722, 0, g722.Rate)
}

// BenchmarkBridgedCallFrameOpusOpus is Opus on both legs, transcoded at
// 48 kHz (RTP payload type 96 on the SIP side, as baresip offers it).
func BenchmarkBridgedCallFrameOpusOpus(b *testing.B) {
	benchBridge(b, codecs.Opus, codecs.Opus, 96, 48000)
}

// BenchmarkCodecOnlyFrameG722 is the codec work of
// BenchmarkBridgedCallFrameG722 alone: Opus decode to 16 kHz, G.722 encode,
// G.722 decode, Opus encode from 16 kHz at complexity 5.
func BenchmarkCodecOnlyFrameG722(b *testing.B) {
	opusIn := encodedFrames(b, codecs.Opus, 48000, 440)
	g722In := encodedFrames(b, codecs.G722, g722.Rate, 1000)
	dec, err := opus.NewDecoder(g722.Rate)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := opus.NewEncoder(g722.Rate, opus.Options{Complexity: 5})
	if err != nil {
		b.Fatal(err)
	}
	genc, _ := g722.NewEncoder(g722.Rate)
	gdec, _ := g722.NewDecoder(g722.Rate)
	pcm := make([]int16, 960)
	out := make([]byte, opus.MaxPacket)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		n, err := dec.Decode(opusIn[i], pcm)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := genc.Encode(pcm[:n], out); err != nil {
			b.Fatal(err)
		}
		m, err := gdec.Decode(g722In[i], pcm)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := enc.Encode(pcm[:m], out); err != nil {
			b.Fatal(err)
		}
		i = (i + 1) % len(opusIn)
	}
	reportCallsPerCore(b)
}
