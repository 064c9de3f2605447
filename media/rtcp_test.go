package media

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/codecs"
)

func TestRTCPBuildParse(t *testing.T) {
	buf := make([]byte, 512)
	for _, sr := range []bool{true, false} {
		r := rtcpReport{ssrc: 0x11223344, sr: sr, ntp: 0xE1E2E3E4_A5A6A7A8, rtpTS: 12345, packets: 50, octets: 8000,
			hasBlock: true, cname: "gw@127.0.0.1",
			block: rtcpBlock{ssrc: 0xCAFE, fraction: 13, lost: -2, extMax: 70000, jitter: 88, lsr: 0x1234, dlsr: 0x5678}}
		n := buildRTCP(buf, &r)
		if n == 0 || n%4 != 0 {
			t.Fatalf("sr=%v: length %d", sr, n)
		}
		var info rtcpInfo
		if !parseRTCP(buf[:n], 0xCAFE, &info) {
			t.Fatalf("sr=%v: own packet does not parse: %s", sr, hex.EncodeToString(buf[:n]))
		}
		if info.sender != r.ssrc || info.hasSR != sr || !info.hasBlock || info.block != r.block {
			t.Errorf("sr=%v: %+v", sr, info)
		}
		if sr && (info.ntp != r.ntp || info.rtpTS != r.rtpTS || info.packets != 50 || info.octets != 8000) {
			t.Errorf("sender info %+v", info)
		}
		// A block about another SSRC is skipped.
		if !parseRTCP(buf[:n], 1, &info) || info.hasBlock {
			t.Errorf("foreign block kept: %+v", info)
		}
	}
}

func TestRTCPParseRejects(t *testing.T) {
	buf := make([]byte, 512)
	n := buildRTCP(buf, &rtcpReport{ssrc: 1, hasBlock: true, block: rtcpBlock{ssrc: 2}, cname: "x"})
	good := buf[:n]
	var info rtcpInfo
	bad := map[string][]byte{
		"empty":       nil,
		"short":       good[:3],
		"truncated":   good[:n-4],
		"trailing":    append(append([]byte(nil), good...), 0x80),
		"version 1":   append([]byte{0x40}, good[1:]...),
		"SDES first":  good[32:],
		"block short": {0x81, 201, 0, 1, 0, 0, 0, 1},
	}
	for name, p := range bad {
		if parseRTCP(p, 2, &info) {
			t.Errorf("%s: accepted", name)
		}
	}
	// A BYE after an RR is fine and noticed.
	bye := append(append([]byte(nil), good...), 0x81, rtcpBYE, 0, 1, 0, 0, 0, 1)
	if !parseRTCP(bye, 2, &info) || !info.bye {
		t.Errorf("RR+BYE: %+v", info)
	}
}

func TestRTTFromReport(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sent := ntpMiddle(ntpTime(now))
	back := ntpMiddle(ntpTime(now.Add(130 * time.Millisecond)))
	// The peer held our SR for 100 ms: the round trip is 30 ms.
	rtt, ok := rttFromReport(back, &rtcpBlock{lsr: sent, dlsr: 100 << 16 / 1000})
	if !ok || rtt < 29*time.Millisecond || rtt > 31*time.Millisecond {
		t.Errorf("rtt %v %v", rtt, ok)
	}
	if _, ok := rttFromReport(back, &rtcpBlock{}); ok {
		t.Error("no LSR gave an RTT")
	}
	if _, ok := rttFromReport(sent, &rtcpBlock{lsr: back}); ok {
		t.Error("negative RTT accepted")
	}
	// A loopback peer that counts DLSR in whole milliseconds: it held our SR
	// for 99.6 ms and says 100 ms. The round trip is below what we can tell,
	// reported at the floor (1/65536 s), not dropped.
	back = ntpMiddle(ntpTime(now.Add(99600 * time.Microsecond)))
	rtt, ok = rttFromReport(back, &rtcpBlock{lsr: sent, dlsr: 100 << 16 / 1000})
	if !ok || rtt <= 0 || rtt > 100*time.Microsecond {
		t.Errorf("sub-resolution RTT: %v %v", rtt, ok)
	}
}

func TestRTCPParseNoAllocs(t *testing.T) {
	buf := make([]byte, 512)
	n := buildRTCP(buf, &rtcpReport{ssrc: 1, sr: true, hasBlock: true, block: rtcpBlock{ssrc: 2}, cname: "gateway"})
	var info rtcpInfo
	if a := testing.AllocsPerRun(100, func() { parseRTCP(buf[:n], 2, &info) }); a != 0 {
		t.Errorf("%.1f allocations per parse", a)
	}
}

func FuzzRTCPParse(f *testing.F) {
	buf := make([]byte, 512)
	n := buildRTCP(buf, &rtcpReport{ssrc: 1, sr: true, hasBlock: true, block: rtcpBlock{ssrc: 2, lost: -5}, cname: "gw"})
	f.Add(append([]byte(nil), buf[:n]...))
	n = buildRTCP(buf, &rtcpReport{ssrc: 3, cname: ""})
	f.Add(append([]byte(nil), buf[:n]...))
	f.Add([]byte{0xA1, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4})
	f.Fuzz(func(t *testing.T, p []byte) {
		var info rtcpInfo
		if !parseRTCP(p, 2, &info) {
			return
		}
		// Whatever parses rebuilds into a packet that parses the same way.
		r := rtcpReport{ssrc: info.sender, sr: info.hasSR, ntp: info.ntp, rtpTS: info.rtpTS,
			packets: info.packets, octets: info.octets, hasBlock: info.hasBlock, block: info.block}
		out := make([]byte, 128)
		m := buildRTCP(out, &r)
		var again rtcpInfo
		if m == 0 || !parseRTCP(out[:m], 2, &again) || again.hasBlock != info.hasBlock || again.block != info.block ||
			again.hasSR != info.hasSR || again.ntp != info.ntp {
			t.Fatalf("rebuild differs: %+v vs %+v", info, again)
		}
	})
}

// Two RTP endpoints over UDP sessions with RTCP ports exchange audio and
// RTCP reports: each learns the round trip and the other's view of its
// stream, and sees no loss on loopback.
func TestRTCPSessionExchange(t *testing.T) {
	ports := newTestPorts(t)
	sa, sb := newSession(t, ports), newSession(t, ports)
	sa.SetRemote(sb.AdvertisedAddr())
	sb.SetRemote(sa.AdvertisedAddr())
	ea, err := NewRTPEndpoint(RTPConfig{Codec: codecs.PCMU, Reader: sa, Writer: sa})
	if err != nil {
		t.Fatal(err)
	}
	defer ea.Close()
	eb, err := NewRTPEndpoint(RTPConfig{Codec: codecs.PCMU, Reader: sb, Writer: sb})
	if err != nil {
		t.Fatal(err)
	}
	defer eb.Close()
	ra, err := StartRTCP(RTCPConfig{Session: sa, Endpoint: ea, Interval: 60 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	rb, err := StartRTCP(RTCPConfig{Session: sb, Endpoint: eb, Interval: 60 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	_ = ea.SetSink(8000, nopSink{})
	_ = eb.SetSink(8000, nopSink{})
	wa, _ := ea.Writer(8000)
	wb, _ := eb.Writer(8000)
	frame := Tone(440, 8000, 20, 8000)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_ = wa.WritePCM(frame)
		_ = wb.WritePCM(frame)
		time.Sleep(20 * time.Millisecond)
		ha, hb := ea.Health(), eb.Health()
		if ha.HaveRemote && hb.HaveRemote && ha.RTT > 0 && hb.RTT > 0 {
			break
		}
	}
	for _, x := range []struct {
		name string
		e    *RTPEndpoint
		r    *RTCPSession
	}{{"A", ea, ra}, {"B", eb, rb}} {
		h, st := x.e.Health(), x.r.Stats()
		if !h.HaveRemote || h.RTT <= 0 || h.RTT > time.Second || h.RemoteLost != 0 || h.LostIn != 0 {
			t.Errorf("%s health %+v", x.name, h)
		}
		if st.Sent == 0 || st.Received == 0 || st.Malformed != 0 {
			t.Errorf("%s RTCP stats %+v", x.name, st)
		}
		if h.MOS < 4 {
			t.Errorf("%s MOS %.2f on a clean loopback", x.name, h.MOS)
		}
	}
	if sa.NotRTP() != 0 {
		t.Errorf("RTCP reached the RTP socket: %d", sa.NotRTP())
	}
}
