package load

import (
	"bytes"
	"reflect"
	"testing"
)

func TestBencodeRoundTrip(t *testing.T) {
	msg := map[string]any{
		"command": "offer", "call-id": "c1", "sdp": "v=0\r\nm=audio 4000 RTP/AVP 111\r\n",
		"codec": map[string]any{"transcode": []string{"PCMU"}}, "n": 42,
	}
	var b bytes.Buffer
	bencode(&b, msg)
	if got := b.String(); got[:20] != "d7:call-id2:c15:code" {
		t.Fatalf("keys not sorted: %s", got)
	}
	v, rest, err := bdecode(b.String())
	if err != nil || rest != "" {
		t.Fatalf("%v %q", err, rest)
	}
	want := map[string]any{
		"command": "offer", "call-id": "c1", "sdp": "v=0\r\nm=audio 4000 RTP/AVP 111\r\n",
		"codec": map[string]any{"transcode": []any{"PCMU"}}, "n": 42,
	}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("decoded %#v", v)
	}
	for _, bad := range []string{"", "d3:abc", "l", "5:ab", "i12", "x"} {
		if _, _, err := bdecode(bad); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
	if p, err := sdpPort("v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 24042 RTP/AVP 0\r\n"); err != nil || p != 24042 {
		t.Errorf("port %d %v", p, err)
	}
}
