package sip

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"

	"github.com/matrix-gateway/gateway/signalling"
)

var ours = []Codec{CodecPCMU, CodecPCMA}

func TestOfferMarshal(t *testing.T) {
	o := Offer{
		SessionID: 42, SessionVersion: 43,
		Addr:        netip.MustParseAddrPort("192.0.2.10:20000"),
		Codecs:      ours,
		DTMFPayload: 101,
	}
	got := string(o.Marshal())
	want := "v=0\r\n" +
		"o=- 42 43 IN IP4 192.0.2.10\r\n" +
		"s=-\r\n" +
		"c=IN IP4 192.0.2.10\r\n" +
		"t=0 0\r\n" +
		"m=audio 20000 RTP/AVP 0 8 101\r\n" +
		"a=rtpmap:0 PCMU/8000\r\n" +
		"a=rtpmap:8 PCMA/8000\r\n" +
		"a=rtpmap:101 telephone-event/8000\r\n" +
		"a=fmtp:101 0-16\r\n" +
		"a=ptime:20\r\n" +
		"a=sendrecv\r\n"
	if got != want {
		t.Errorf("offer:\n%s\nwant:\n%s", got, want)
	}
	// pion parses it too.
	var sd sdp.SessionDescription
	if err := sd.Unmarshal([]byte(got)); err != nil {
		t.Fatalf("pion: %v", err)
	}

	o.Addr = netip.MustParseAddrPort("[2001:db8::1]:20002")
	o.Codecs = []Codec{CodecPCMA}
	o.DTMFPayload = 0
	v6 := string(o.Marshal())
	for _, line := range []string{"c=IN IP6 2001:db8::1\r\n", "m=audio 20002 RTP/AVP 8\r\n", "o=- 42 43 IN IP6 2001:db8::1\r\n"} {
		if !strings.Contains(v6, line) {
			t.Errorf("IPv6 offer lacks %q:\n%s", line, v6)
		}
	}
	if strings.Contains(v6, "telephone-event") {
		t.Error("DTMF offered with DTMFPayload 0")
	}
}

func sdpBody(lines ...string) []byte {
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}

func TestParseAnswer(t *testing.T) {
	head := []string{"v=0", "o=- 1 2 IN IP4 198.51.100.7", "s=-"}
	cases := []struct {
		name string
		body []byte
		want Answer
	}{
		{
			name: "session c= and PCMA only",
			body: sdpBody(append(head, "c=IN IP4 198.51.100.7", "t=0 0", "m=audio 4000 RTP/AVP 8 101",
				"a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=ptime:30")...),
			want: Answer{Codec: CodecPCMA, Remote: netip.MustParseAddrPort("198.51.100.7:4000"), DTMFPayload: 101, HasDTMF: true, PTime: 30, Direction: DirSendRecv},
		},
		{
			name: "media c= overrides session c=, our preference wins, no rtpmap for static PTs",
			body: sdpBody(append(head, "c=IN IP4 198.51.100.7", "t=0 0", "m=audio 4002 RTP/AVP 8 0",
				"c=IN IP4 203.0.113.9", "a=recvonly")...),
			want: Answer{Codec: CodecPCMU, Remote: netip.MustParseAddrPort("203.0.113.9:4002"), PTime: 20, Direction: DirRecvOnly},
		},
		{
			name: "IPv6, LF line ends, dynamic DTMF PT, lower-case names",
			body: []byte("v=0\no=- 1 2 IN IP6 2001:db8::5\ns=-\nc=IN IP6 2001:db8::5\nt=0 0\nm=audio 5004 RTP/AVP 0 96\na=rtpmap:0 pcmu/8000\na=rtpmap:96 TELEPHONE-EVENT/8000\na=inactive\n"),
			want: Answer{Codec: CodecPCMU, Remote: netip.MustParseAddrPort("[2001:db8::5]:5004"), DTMFPayload: 96, HasDTMF: true, PTime: 20, Direction: DirInactive},
		},
		{
			name: "session-level direction, hold address",
			body: sdpBody(append(head, "c=IN IP4 0.0.0.0", "t=0 0", "a=sendrecv", "m=audio 4000 RTP/AVP 0")...),
			want: Answer{Codec: CodecPCMU, PTime: 20, Direction: DirSendOnly},
		},
		{
			name: "video first, then audio; telephone-event at 48k ignored",
			body: sdpBody(append(head, "c=IN IP4 198.51.100.7", "t=0 0", "m=video 0 RTP/AVP 96",
				"m=audio 4000 RTP/AVP 8 100", "a=rtpmap:100 telephone-event/48000", "a=sendonly")...),
			want: Answer{Codec: CodecPCMA, Remote: netip.MustParseAddrPort("198.51.100.7:4000"), PTime: 20, Direction: DirSendOnly},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAnswer(tc.body, ours)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseAnswerErrors(t *testing.T) {
	head := []string{"v=0", "o=- 1 2 IN IP4 198.51.100.7", "s=-", "c=IN IP4 198.51.100.7", "t=0 0"}
	cases := []struct {
		name string
		body []byte
		kind error
	}{
		{"empty", nil, ErrNoSDP},
		{"blank", []byte(" \r\n"), ErrNoSDP},
		{"garbage", []byte("hello world"), ErrMalformedSDP},
		{"no audio", sdpBody(append(head, "m=video 4000 RTP/AVP 96")...), ErrMalformedSDP},
		{"port 0", sdpBody(append(head, "m=audio 0 RTP/AVP 0")...), ErrMediaRejected},
		{"no common codec", sdpBody(append(head, "m=audio 4000 RTP/AVP 9 18", "a=rtpmap:9 G722/8000")...), ErrNoCommonCodec},
		{"PCMU at wrong rate", sdpBody(append(head, "m=audio 4000 RTP/AVP 97", "a=rtpmap:97 PCMU/16000")...), ErrNoCommonCodec},
		{"SRTP", sdpBody(append(head, "m=audio 4000 RTP/SAVP 0")...), ErrNoCommonCodec},
		{"no c=", sdpBody("v=0", "o=- 1 2 IN IP4 198.51.100.7", "s=-", "t=0 0", "m=audio 4000 RTP/AVP 0"), ErrMalformedSDP},
		{"hostname c=", sdpBody("v=0", "o=- 1 2 IN IP4 x", "s=-", "c=IN IP4 media.example.org", "t=0 0", "m=audio 4000 RTP/AVP 0"), ErrMalformedSDP},
		{"IP4 with v6 address", sdpBody("v=0", "o=- 1 2 IN IP4 x", "s=-", "c=IN IP4 2001:db8::1", "t=0 0", "m=audio 4000 RTP/AVP 0"), ErrMalformedSDP},
		{"multicast", sdpBody("v=0", "o=- 1 2 IN IP4 x", "s=-", "c=IN IP4 224.2.1.1/127", "t=0 0", "m=audio 4000 RTP/AVP 0"), ErrMalformedSDP},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAnswer(tc.body, ours)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("err %v, want %v", err, tc.kind)
			}
			var se *SDPError
			if !errors.As(err, &se) || se.HangupCause() != signalling.CauseIncompatible || ErrorCause(err) != signalling.CauseIncompatible {
				t.Errorf("%v does not map to CauseIncompatible", err)
			}
		})
	}
}

func TestParseAnswerRoundTrip(t *testing.T) {
	o := Offer{SessionID: 1, SessionVersion: 1, Addr: netip.MustParseAddrPort("10.0.0.1:30000"), Codecs: []Codec{CodecPCMA, CodecPCMU}, DTMFPayload: 101}
	a, err := ParseAnswer(o.Marshal(), ours)
	if err != nil {
		t.Fatal(err)
	}
	// Our preference (PCMU first) picks PCMU even though the SDP lists PCMA first.
	if a.Codec != CodecPCMU || a.Remote != o.Addr || !a.HasDTMF || a.PTime != 20 {
		t.Errorf("%+v", a)
	}
}

// FuzzParseAnswer checks the parser never panics and that what it accepts
// is usable. Seeds are in testdata/fuzz/FuzzParseAnswer.
func FuzzParseAnswer(f *testing.F) {
	f.Add([]byte(answerSDP))
	f.Add(Offer{SessionID: 1, Addr: netip.MustParseAddrPort("[::1]:9"), Codecs: ours, DTMFPayload: 101}.Marshal())
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := ParseAnswer(body, ours)
		if err != nil {
			var se *SDPError
			if !errors.As(err, &se) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if a.Codec != CodecPCMU && a.Codec != CodecPCMA && a.Codec.Name != "PCMU" && a.Codec.Name != "PCMA" {
			t.Fatalf("codec %+v", a.Codec)
		}
		if a.Remote.IsValid() && a.Remote.Port() == 0 {
			t.Fatalf("remote %s with port 0", a.Remote)
		}
		if a.PTime <= 0 {
			t.Fatalf("ptime %d", a.PTime)
		}
	})
}
