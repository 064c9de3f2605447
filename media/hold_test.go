package media

import (
	"testing"
	"time"
)

func TestPeerSends(t *testing.T) {
	const base = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	cases := []struct {
		name, sdp string
		want      bool
	}{
		{"default sendrecv", base + "m=audio 9 RTP/AVP 0\r\n", true},
		{"inactive", base + "m=audio 9 RTP/AVP 0\r\na=inactive\r\n", false},
		{"recvonly", base + "m=audio 9 RTP/AVP 0\r\na=recvonly\r\n", false},
		{"sendonly", base + "m=audio 9 RTP/AVP 0\r\na=sendonly\r\n", true},
		{"session level inactive", base + "a=inactive\r\nm=audio 9 RTP/AVP 0\r\n", false},
		{"media overrides session", base + "a=inactive\r\nm=audio 9 RTP/AVP 0\r\na=sendrecv\r\n", true},
		{"video direction ignored", base + "m=audio 9 RTP/AVP 0\r\nm=video 9 RTP/AVP 96\r\na=inactive\r\n", true},
	}
	for _, c := range cases {
		if got := PeerSends(c.sdp); got != c.want {
			t.Errorf("%s: PeerSends = %v, want %v", c.name, got, c.want)
		}
	}
}

// A peer on hold sends nothing: the dead-media watch waits, and counts again
// from the resume.
func TestDeadMediaPausedOnHold(t *testing.T) {
	tr := newChanTransport()
	e, err := NewRTPEndpoint(RTPConfig{Codec: fakeCodec(false), Reader: tr, Writer: &discardWriter{}, DeadMediaTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	fired := make(chan time.Duration, 2)
	e.OnDeadMedia(func(d time.Duration) { fired <- d })
	NoteHold(e, "v=0\r\nm=audio 9 RTP/AVP 0\r\na=inactive\r\n")
	select {
	case d := <-fired:
		t.Fatalf("fired after %v while the peer was on hold", d)
	case <-time.After(400 * time.Millisecond):
	}
	NoteHold(e, "v=0\r\nm=audio 9 RTP/AVP 0\r\na=sendrecv\r\n")
	select {
	case <-fired:
	case <-time.After(5 * time.Second):
		t.Fatal("dead media not detected after the call was resumed")
	}
}
