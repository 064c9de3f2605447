package sip

import (
	"net/netip"
	"strings"
	"testing"
)

func TestCodecByNameWideband(t *testing.T) {
	for _, tt := range []struct {
		name, rtpmap string
		pt           uint8
	}{
		{"G722", "G722/8000", 9},
		{"g722", "G722/8000", 9},
		{"opus", "opus/48000/2", 111},
		{"OPUS", "opus/48000/2", 111},
		{"PCMU", "PCMU/8000", 0},
	} {
		c, ok := CodecByName(tt.name)
		if !ok || c.String() != tt.rtpmap || c.PayloadType != tt.pt {
			t.Errorf("CodecByName(%q) = %+v, %v; want %s pt %d", tt.name, c, ok, tt.rtpmap, tt.pt)
		}
	}
	if _, ok := CodecByName("G729"); ok {
		t.Error("G729 known")
	}
}

func TestOfferWidebandInConfiguredOrder(t *testing.T) {
	o := Offer{SessionID: 1, SessionVersion: 1, Addr: netip.MustParseAddrPort("192.0.2.10:20000"),
		Codecs: []Codec{CodecOpus, CodecG722, CodecPCMU}, DTMFPayload: 101}
	got := string(o.Marshal())
	want := "m=audio 20000 RTP/AVP 111 9 0 101\r\n" +
		"a=rtpmap:111 opus/48000/2\r\n" +
		"a=fmtp:111 minptime=10;useinbandfec=1\r\n" +
		"a=rtpmap:9 G722/8000\r\n" +
		"a=rtpmap:0 PCMU/8000\r\n" +
		"a=rtpmap:101 telephone-event/8000\r\n"
	if !strings.Contains(got, want) {
		t.Errorf("offer:\n%s\nwant the media section:\n%s", got, want)
	}
	// Our own offer, parsed as an answer, gives back our first choice.
	a, err := ParseAnswer(o.Marshal(), o.Codecs)
	if err != nil || a.Codec != CodecOpus {
		t.Errorf("round trip: %+v %v", a.Codec, err)
	}
}

func TestParseAnswerWideband(t *testing.T) {
	head := []string{"v=0", "o=- 1 1 IN IP4 198.51.100.7", "s=-", "c=IN IP4 198.51.100.7", "t=0 0"}
	prefs := []Codec{CodecOpus, CodecG722, CodecPCMU, CodecPCMA}
	for _, tt := range []struct {
		name   string
		lines  []string
		offer  []Codec
		want   string
		wantPT uint8
	}{
		{"baresip opus on a dynamic type", []string{"m=audio 4000 RTP/AVP 96 101", "a=rtpmap:96 opus/48000/2",
			"a=fmtp:96 stereo=1;sprop-stereo=1", "a=rtpmap:101 telephone-event/8000"}, prefs, "opus/48000/2", 96},
		{"G722 by rtpmap", []string{"m=audio 4000 RTP/AVP 9", "a=rtpmap:9 G722/8000"}, prefs, "G722/8000", 9},
		{"G722 static, no rtpmap", []string{"m=audio 4000 RTP/AVP 9 0"}, prefs, "G722/8000", 9},
		{"our order wins over theirs", []string{"m=audio 4000 RTP/AVP 0 9 96", "a=rtpmap:96 opus/48000/2"}, prefs, "opus/48000/2", 96},
		{"G722 not configured", []string{"m=audio 4000 RTP/AVP 9 0"}, []Codec{CodecPCMU}, "PCMU/8000", 0},
		{"opus at another rate is not opus/48000", []string{"m=audio 4000 RTP/AVP 97 8", "a=rtpmap:97 opus/16000"}, prefs, "PCMA/8000", 8},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAnswer(sdpBody(append(head, tt.lines...)...), tt.offer)
			if err != nil {
				t.Fatal(err)
			}
			if a.Codec.String() != tt.want || a.Codec.PayloadType != tt.wantPT {
				t.Errorf("got %s pt %d, want %s pt %d", a.Codec, a.Codec.PayloadType, tt.want, tt.wantPT)
			}
		})
	}
}
