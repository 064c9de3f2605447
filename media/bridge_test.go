package media

import (
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/codecs"
)

// A whole bridged call over loopback UDP: a "browser" sends Opus from 48 kHz
// to the gateway's Opus endpoint, which is bridged at 8 kHz to the gateway's
// PCMU endpoint facing a "trunk"; the trunk sends 1000 Hz back. Both tones
// must arrive on the far side.
func TestBridgedCallOverUDP(t *testing.T) {
	ports := newTestPorts(t)
	browserS, gwWebS := newSession(t, ports), newSession(t, ports)
	gwTrunkS, trunkS := newSession(t, ports), newSession(t, ports)
	browserS.SetRemote(gwWebS.AdvertisedAddr())
	gwWebS.SetRemote(browserS.AdvertisedAddr())
	gwTrunkS.SetRemote(trunkS.AdvertisedAddr())
	trunkS.SetRemote(gwTrunkS.AdvertisedAddr())

	newEP := func(c codecs.Codec, s *UDPSession) *RTPEndpoint {
		e, err := NewRTPEndpoint(RTPConfig{Codec: c, Reader: s, Writer: s})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		return e
	}
	browser, gwWeb := newEP(codecs.Opus, browserS), newEP(codecs.Opus, gwWebS)
	gwTrunk, trunk := newEP(codecs.PCMU, gwTrunkS), newEP(codecs.PCMU, trunkS)

	rate, err := Bridge(gwWeb, gwTrunk)
	if err != nil || rate != 8000 {
		t.Fatalf("Bridge: rate %d, %v; want 8000", rate, err)
	}
	atTrunk := NewToneDetector(440, 8000)
	atBrowser := NewToneDetector(1000, 48000)
	_ = trunk.SetSink(8000, atTrunk)
	_ = browser.SetSink(48000, atBrowser)

	bw, err := browser.Writer(48000)
	if err != nil {
		t.Fatal(err)
	}
	tw, _ := trunk.Writer(8000)
	bg, tg := NewToneGenerator(440, 48000), NewToneGenerator(1000, 8000)
	bFrame, tFrame := make([]int16, 960), make([]int16, 160)
	for range 50 { // 1 s
		bg.Fill(bFrame)
		if err := bw.WritePCM(bFrame); err != nil {
			t.Fatal(err)
		}
		tg.Fill(tFrame)
		if err := tw.WritePCM(tFrame); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	deadline := time.Now().Add(3 * time.Second)
	for (atTrunk.Blocks() < 10 || atBrowser.Blocks() < 10) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// Opus needs a frame or two to settle: allow the first block to miss.
	if atTrunk.Blocks() != 10 || atTrunk.Hits() < 9 {
		t.Errorf("440 Hz at trunk: %d of %d blocks (last %.3f)", atTrunk.Hits(), atTrunk.Blocks(), atTrunk.Last())
	}
	if atBrowser.Blocks() != 10 || atBrowser.Hits() < 9 {
		t.Errorf("1000 Hz at browser: %d of %d blocks (last %.3f)", atBrowser.Hits(), atBrowser.Blocks(), atBrowser.Last())
	}
	for name, e := range map[string]*RTPEndpoint{"browser": browser, "gwWeb": gwWeb, "gwTrunk": gwTrunk, "trunk": trunk} {
		if s := e.Stats(); s.PacketsIn != 50 || s.PacketsOut != 50 || s.Lost+s.DecodeErrors+s.EncodeErrors+s.SinkErrors != 0 {
			t.Errorf("%s counters %+v", name, s)
		}
	}
	Unbridge(gwWeb, gwTrunk)
}
