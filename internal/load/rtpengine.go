package load

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// This file drives rtpengine (sipwise, Debian `rtpengine-daemon`) over its
// ng control protocol so the same peers and measurements run against it:
// per call one "offer" (the Matrix peer's Opus SDP, transcoding to PCMU)
// and one "answer" (the phone peer's PCMU SDP) give the relay ports each
// peer sends to.

// ngClient speaks rtpengine's ng protocol: "<cookie> <bencoded dict>" over UDP.
type ngClient struct {
	conn   *net.UDPConn
	prefix string // random per client: rtpengine caches replies by cookie
	n      int
}

func dialNG(addr string) (*ngClient, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("load: rtpengine ng address: %w", err)
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("load: rtpengine ng: %w", err)
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	return &ngClient{conn: c, prefix: hex.EncodeToString(r[:])}, nil
}

func (c *ngClient) close() { _ = c.conn.Close() }

// request sends one command and returns the response dictionary.
func (c *ngClient) request(msg map[string]any) (map[string]any, error) {
	c.n++
	cookie := fmt.Sprintf("%s-%d", c.prefix, c.n)
	var b bytes.Buffer
	b.WriteString(cookie + " ")
	bencode(&b, msg)
	buf := make([]byte, 65536)
	for attempt := range 3 {
		if _, err := c.conn.Write(b.Bytes()); err != nil {
			return nil, fmt.Errorf("load: rtpengine ng: %w", err)
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(time.Duration(attempt+1) * time.Second))
		n, err := c.conn.Read(buf)
		if err != nil {
			continue
		}
		rest, ok := strings.CutPrefix(string(buf[:n]), cookie+" ")
		if !ok {
			continue
		}
		v, _, err := bdecode(rest)
		if err != nil {
			return nil, fmt.Errorf("load: rtpengine ng reply: %w", err)
		}
		d, ok := v.(map[string]any)
		if !ok {
			return nil, errors.New("load: rtpengine ng reply is not a dictionary")
		}
		if r, _ := d["result"].(string); r != "ok" {
			return nil, fmt.Errorf("load: rtpengine %v: %v %v", msg["command"], r, d["error-reason"])
		}
		return d, nil
	}
	return nil, errors.New("load: rtpengine ng: no reply")
}

// bencode writes v (string, int, []string, []any, map[string]any).
func bencode(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case string:
		b.WriteString(strconv.Itoa(len(x)) + ":" + x)
	case int:
		b.WriteString("i" + strconv.Itoa(x) + "e")
	case []string:
		b.WriteByte('l')
		for _, s := range x {
			bencode(b, s)
		}
		b.WriteByte('e')
	case []any:
		b.WriteByte('l')
		for _, s := range x {
			bencode(b, s)
		}
		b.WriteByte('e')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('d')
		for _, k := range keys {
			bencode(b, k)
			bencode(b, x[k])
		}
		b.WriteByte('e')
	}
}

// bdecode reads one value from s and returns it and the rest.
func bdecode(s string) (any, string, error) {
	if s == "" {
		return nil, "", errors.New("bencode: truncated")
	}
	switch c := s[0]; {
	case c == 'i':
		end := strings.IndexByte(s, 'e')
		if end < 0 {
			return nil, "", errors.New("bencode: bad integer")
		}
		n, err := strconv.Atoi(s[1:end])
		return n, s[end+1:], err
	case c == 'l':
		var out []any
		s = s[1:]
		for s != "" && s[0] != 'e' {
			v, rest, err := bdecode(s)
			if err != nil {
				return nil, "", err
			}
			out, s = append(out, v), rest
		}
		if s == "" {
			return nil, "", errors.New("bencode: unterminated list")
		}
		return out, s[1:], nil
	case c == 'd':
		out := map[string]any{}
		s = s[1:]
		for s != "" && s[0] != 'e' {
			k, rest, err := bdecode(s)
			if err != nil {
				return nil, "", err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, "", errors.New("bencode: non-string key")
			}
			v, rest, err := bdecode(rest)
			if err != nil {
				return nil, "", err
			}
			out[ks], s = v, rest
		}
		if s == "" {
			return nil, "", errors.New("bencode: unterminated dictionary")
		}
		return out, s[1:], nil
	case c >= '0' && c <= '9':
		colon := strings.IndexByte(s, ':')
		if colon < 0 {
			return nil, "", errors.New("bencode: bad string")
		}
		n, err := strconv.Atoi(s[:colon])
		if err != nil || n < 0 || colon+1+n > len(s) {
			return nil, "", errors.New("bencode: bad string length")
		}
		return s[colon+1 : colon+1+n], s[colon+1+n:], nil
	}
	return nil, "", fmt.Errorf("bencode: unexpected %q", s[0])
}

var mLine = regexp.MustCompile(`(?m)^m=audio (\d+) `)

// sdpPort returns the audio port of an SDP body.
func sdpPort(sdp string) (uint16, error) {
	m := mLine.FindStringSubmatch(sdp)
	if m == nil {
		return 0, errors.New("load: no m=audio line in rtpengine's SDP")
	}
	p, err := strconv.ParseUint(m[1], 10, 16)
	return uint16(p), err
}

func peerSDP(port uint16, pt int, rtpmap string) string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP %d\r\na=rtpmap:%d %s\r\na=sendrecv\r\na=ptime:20\r\n", port, pt, pt, rtpmap)
}

// rtpengineCall sets up one call through rtpengine and points the peers at
// its ports: the Matrix peer offers Opus, rtpengine offers PCMU onward
// (transcode), the phone peer answers PCMU.
func rtpengineCall(ng *ngClient, c *call) (string, error) {
	var id [8]byte
	_, _ = rand.Read(id[:])
	callID := "load-" + hex.EncodeToString(id[:])
	offer, err := ng.request(map[string]any{
		"command": "offer", "call-id": callID, "from-tag": "web",
		"sdp":   peerSDP(c.web.addr().Port(), 111, "opus/48000/2"),
		"codec": map[string]any{"transcode": []string{"PCMU"}, "mask": []string{"opus"}},
		"flags": []string{"trust-address"}, "replace": []string{"origin"}, "ICE": "remove",
	})
	if err != nil {
		return "", err
	}
	osdp, _ := offer["sdp"].(string)
	phonePort, err := sdpPort(osdp)
	if err != nil {
		return "", err
	}
	answer, err := ng.request(map[string]any{
		"command": "answer", "call-id": callID, "from-tag": "web", "to-tag": "phone",
		"sdp":   peerSDP(c.phone.addr().Port(), 0, "PCMU/8000"),
		"flags": []string{"trust-address"}, "replace": []string{"origin"}, "ICE": "remove",
	})
	if err != nil {
		return "", err
	}
	asdp, _ := answer["sdp"].(string)
	webPort, err := sdpPort(asdp)
	if err != nil {
		return "", err
	}
	c.phone.dst = netip.AddrPortFrom(loopback, phonePort)
	c.web.dst = netip.AddrPortFrom(loopback, webPort)
	return callID, nil
}

// procCPU returns the user+system CPU time of process pid from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 10 ms).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("load: bad /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("load: short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}
