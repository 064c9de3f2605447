package media

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/matrix-gateway/gateway/codecs"
)

// testClient is a browser stand-in: a pion peer with one AudioTrack.
type testClient struct {
	pc    *webrtc.PeerConnection
	track *AudioTrack
}

func newTestClient(t *testing.T) *testClient {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := RegisterAudioCodecs(me); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	reg := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(reg); err != nil {
		t.Fatal(err)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(reg))
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	c := &testClient{pc: pc, track: NewAudioTrack("audio", "client")}
	if _, err := pc.AddTrack(c.track); err != nil {
		t.Fatal(err)
	}
	return c
}

// localSDP sets d as the client's local description and returns it with
// the gathered candidates.
func (c *testClient) localSDP(t *testing.T, d webrtc.SessionDescription) string {
	t.Helper()
	done := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(d); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("client gathering did not finish")
	}
	return c.pc.LocalDescription().SDP
}

// fastWebRTC is a gateway peer factory on a shared loopback port.
func fastWebRTC(t *testing.T, shared bool) *WebRTC {
	t.Helper()
	cfg := WebRTCConfig{IncludeLoopback: true}
	if shared {
		l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		cfg.UDPPort = l.LocalAddr().(*net.UDPAddr).Port
		_ = l.Close()
	}
	w, err := NewWebRTC(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// connect negotiates a gateway peer with a client; gatewayOffers picks who
// offers (and so who is the DTLS client).
func connect(t *testing.T, w *WebRTC, c *testClient, gatewayOffers bool) *Peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var p *Peer
	var err error
	if gatewayOffers {
		if p, err = w.Offer(nil); err != nil {
			t.Fatal(err)
		}
		offer, err := p.LocalDescription(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
			t.Fatal(err)
		}
		ans, err := c.pc.CreateAnswer(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.SetAnswer(c.localSDP(t, ans)); err != nil {
			t.Fatal(err)
		}
	} else {
		o, err := c.pc.CreateOffer(nil)
		if err != nil {
			t.Fatal(err)
		}
		if p, err = w.Answer(c.localSDP(t, o), nil); err != nil {
			t.Fatal(err)
		}
		ans, err := p.LocalDescription(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = p.Close() })
	// Wait until the client can send: its track drops packets until bound.
	for deadline := time.Now().Add(10 * time.Second); c.track.boundSSRC() == 0 ||
		c.pc.ConnectionState() != webrtc.PeerConnectionStateConnected; {
		if time.Now().After(deadline) {
			t.Fatalf("the client did not connect: %v", c.pc.ConnectionState())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return p
}

// sendOpus writes n numbered Opus packets (payload: 4-byte index, then
// filler) from the client, from index first, 20 ms apart.
func (c *testClient) sendOpus(t *testing.T, first, n int) {
	t.Helper()
	pkt := make([]byte, rtpHeaderLen+40)
	for i := first; i < first+n; i++ {
		pkt[0] = 0x80
		pkt[1] = OpusPayloadType
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		binary.BigEndian.PutUint32(pkt[4:], uint32(i*960))
		binary.BigEndian.PutUint32(pkt[rtpHeaderLen:], uint32(i))
		for j := rtpHeaderLen + 4; j < len(pkt); j++ {
			pkt[j] = byte(i + j)
		}
		if _, err := c.track.Write(pkt); err != nil {
			t.Error(err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readIndexes reads packets until the one with index last arrived or 5 s
// pass and returns their indexes in arrival order.
func readIndexes(t *testing.T, p *Peer, last int) []int {
	t.Helper()
	got := make(chan []int, 1)
	go func() {
		var idx []int
		buf := make([]byte, MaxPacketSize)
		for len(idx) == 0 || idx[len(idx)-1] != last {
			n, err := p.ReadPacket(buf)
			if err != nil {
				break
			}
			var h rtpHeader
			if !parseRTP(buf[:n], &h) || buf[1]&0x7F != OpusPayloadType || h.payloadTo-h.payloadAt != 40 {
				t.Errorf("packet %x is not one we sent", buf[:n])
				continue
			}
			i := int(binary.BigEndian.Uint32(buf[h.payloadAt:]))
			for j := h.payloadAt + 4; j < h.payloadTo; j++ {
				if buf[j] != byte(i+j-h.payloadAt+rtpHeaderLen) {
					t.Errorf("packet %d: payload byte %d is %d", i, j, buf[j])
					break
				}
			}
			idx = append(idx, i)
		}
		got <- idx
	}()
	select {
	case idx := <-got:
		return idx
	case <-time.After(5 * time.Second):
		_ = p.Close() // ends the reader
		return <-got
	}
}

// receive reads the client's remote track until want packets came (or 5
// s) and sends their indexes.
func (c *testClient) receive(t *testing.T, want int) <-chan []int {
	tracks := make(chan *webrtc.TrackRemote, 1)
	c.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { tracks <- tr })
	got := make(chan []int, 1)
	go func() {
		var idx []int
		defer func() { got <- idx }()
		var tr *webrtc.TrackRemote
		select {
		case tr = <-tracks:
		case <-time.After(5 * time.Second):
			return
		}
		_ = tr.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, MaxPacketSize)
		for len(idx) < want {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			var h rtpHeader
			if !parseRTP(buf[:n], &h) || h.payloadTo-h.payloadAt != 40 {
				t.Errorf("client: packet %x is not one the gateway sent", buf[:n])
				continue
			}
			idx = append(idx, int(binary.BigEndian.Uint32(buf[h.payloadAt:])))
		}
	}()
	return got
}

// sendFromPeer writes n numbered Opus packets on the gateway peer.
func sendFromPeer(t *testing.T, p *Peer, first, n int) {
	t.Helper()
	pkt := make([]byte, rtpHeaderLen+40)
	for i := first; i < first+n; i++ {
		pkt[0], pkt[1] = 0x80, OpusPayloadType
		binary.BigEndian.PutUint16(pkt[2:], uint16(65530+i)) // wraps: the ROC must follow
		binary.BigEndian.PutUint32(pkt[4:], uint32(i*960))
		binary.BigEndian.PutUint32(pkt[8:], 0x1234)
		binary.BigEndian.PutUint32(pkt[rtpHeaderLen:], uint32(i))
		if err := p.WritePacket(pkt); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFastPathReceivesAndDecrypts(t *testing.T) {
	for _, tc := range []struct {
		name          string
		gatewayOffers bool
	}{{"gateway answers (DTLS client)", false}, {"gateway offers (DTLS server)", true}} {
		t.Run(tc.name, func(t *testing.T) {
			w := fastWebRTC(t, true)
			c := newTestClient(t)
			p := connect(t, w, c, tc.gatewayOffers)
			go c.sendOpus(t, 0, 50)
			idx := readIndexes(t, p, 49)
			if len(idx) < 48 { // loopback: nothing is lost but what is sent before the track is bound
				t.Fatalf("read %d of 50 packets: %v", len(idx), idx)
			}
			for i := 1; i < len(idx); i++ {
				if idx[i] <= idx[i-1] {
					t.Fatalf("out of order: %v", idx)
				}
			}
			st := p.ReceiveStats()
			if st.Fast != uint64(len(idx)) || st.Pion != 0 || st.AuthFailed != 0 {
				t.Fatalf("receive stats %+v for %d packets: want all on the fast path", st, len(idx))
			}
			// The other way: the gateway sends, the client decrypts.
			got := c.receive(t, 30)
			sendFromPeer(t, p, 0, 30)
			if idx := <-got; len(idx) != 30 || idx[0] != 0 || idx[29] != 29 {
				t.Fatalf("client received %v", idx)
			}
			if st := p.ReceiveStats(); st.SentFast != 30 {
				t.Fatalf("receive stats %+v: want 30 sent on the fast path", st)
			}
			if w.routes.size() != 1 {
				t.Fatalf("%d routes, want 1", w.routes.size())
			}
			_ = p.Close()
			if w.routes.size() != 0 {
				t.Fatalf("%d routes after close, want 0", w.routes.size())
			}
		})
	}
}

// Without a shared port every call has its own ICE sockets; they are
// fastConns too, so the fast path works the same.
func TestFastPathWithoutSharedPort(t *testing.T) {
	w := fastWebRTC(t, false)
	c := newTestClient(t)
	p := connect(t, w, c, false)
	go c.sendOpus(t, 0, 20)
	idx := readIndexes(t, p, 19)
	if len(idx) < 18 {
		t.Fatalf("read %d packets", len(idx))
	}
	got := c.receive(t, 20)
	sendFromPeer(t, p, 0, 20)
	if out := <-got; len(out) != 20 {
		t.Fatalf("client received %v", out)
	}
	if st := p.ReceiveStats(); st.Fast != uint64(len(idx)) || st.Pion != 0 || st.SentFast != 20 {
		t.Fatalf("receive stats %+v: want everything on the fast path", st)
	}
}

// startCall connects a client to a gateway peer on a shared port (the
// gateway answers) and checks that the client's first n packets arrive.
func startCall(t *testing.T, n int) (*WebRTC, *testClient, *Peer) {
	t.Helper()
	w := fastWebRTC(t, true)
	c := newTestClient(t)
	p := connect(t, w, c, false)
	go c.sendOpus(t, 0, n)
	if idx := readIndexes(t, p, n-1); len(idx) != n {
		t.Fatalf("read %d of %d packets: %v", len(idx), n, idx)
	}
	return w, c, p
}

// routedAddr is the peer's routed remote address.
func routedAddr(t *testing.T, p *Peer) netip.AddrPort {
	t.Helper()
	p.fast.mu.Lock()
	defer p.fast.mu.Unlock()
	if !p.fast.addr.IsValid() {
		t.Fatal("no route after packets arrived")
	}
	return p.fast.addr
}

// A burst of held-back packets, or a reader that stalls for a second,
// loses nothing: the ring holds them (a 16-slot ring, likely why a DTMF digit
// was once lost on a loaded CI machine).
func TestFastPathHoldsABurst(t *testing.T) {
	_, c, p := startCall(t, 5)
	const burst = 50 // one second of audio, sent at once while nobody reads
	pkt := make([]byte, rtpHeaderLen+40)
	for i := 5; i < 5+burst; i++ {
		pkt[0], pkt[1] = 0x80, OpusPayloadType
		binary.BigEndian.PutUint16(pkt[2:], uint16(i))
		binary.BigEndian.PutUint32(pkt[4:], uint32(i*960))
		binary.BigEndian.PutUint32(pkt[rtpHeaderLen:], uint32(i))
		for j := rtpHeaderLen + 4; j < len(pkt); j++ {
			pkt[j] = byte(i + j)
		}
		if _, err := c.track.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // all of it reaches the ring before the reader looks
	idx := readIndexes(t, p, 5+burst-1)
	if len(idx) != burst || idx[0] != 5 {
		t.Fatalf("read %d of %d packets after the burst: %v", len(idx), burst, idx)
	}
	if st := p.ReceiveStats(); st.Dropped != 0 || st.Fast != 5+burst {
		t.Fatalf("receive stats %+v: want %d on the fast path, none dropped", st, 5+burst)
	}
}

// When the route goes (the selected pair moves off the shared port), what
// reaches pion is still delivered, and the fast path takes over again
// when the route comes back.
func TestFastPathFallsBackToPion(t *testing.T) {
	_, c, p := startCall(t, 10)
	addr := routedAddr(t, p)
	p.route(netip.AddrPort{})
	go c.sendOpus(t, 10, 10)
	if idx := readIndexes(t, p, 19); len(idx) != 10 || idx[0] != 10 {
		t.Fatalf("through pion: %v", idx)
	}
	if st := p.ReceiveStats(); st.Pion != 10 {
		t.Fatalf("receive stats %+v: want 10 through pion", st)
	}
	fast := p.ReceiveStats().Fast
	p.route(addr)
	go c.sendOpus(t, 20, 10)
	if idx := readIndexes(t, p, 29); len(idx) != 10 || idx[0] != 20 {
		t.Fatalf("back on the fast path: %v", idx)
	}
	if st := p.ReceiveStats(); st.Fast != fast+10 || st.AuthFailed != 0 {
		t.Fatalf("receive stats %+v: want 10 more on the fast path", st)
	}
}

// Forged packets from the routed address are counted and dropped; the
// call goes on.
func TestFastPathDropsForged(t *testing.T) {
	_, c, p := startCall(t, 5)
	forged := make([]byte, rtpHeaderLen+30)
	forged[0], forged[1] = 0x80, OpusPayloadType
	binary.BigEndian.PutUint16(forged[2:], 100)
	p.fast.enc.push(forged)
	p.fast.enc.push(forged[:rtpHeaderLen]) // too short for a tag
	go c.sendOpus(t, 5, 5)
	if idx := readIndexes(t, p, 9); len(idx) != 5 || idx[0] != 5 {
		t.Fatalf("after forged packets: %v", idx)
	}
	if st := p.ReceiveStats(); st.AuthFailed != 2 {
		t.Fatalf("receive stats %+v: want 2 authentication failures", st)
	}
}

func TestDTLSClientRole(t *testing.T) {
	for _, tc := range []struct {
		local, remote string
		client, ok    bool
	}{
		{"a=setup:active\r\n", "a=setup:actpass\r\n", true, true},
		{"a=setup:passive\r\n", "a=setup:actpass\r\n", false, true},
		{"a=setup:actpass\r\n", "a=setup:active\r\n", false, true},
		{"a=setup:actpass\r\n", "a=setup:passive\r\n", true, true},
		{"a=setup:actpass\r\n", "", false, false},
		{"", "", false, false},
	} {
		client, ok := dtlsClient(tc.local, tc.remote)
		if client != tc.client || ok != tc.ok {
			t.Errorf("dtlsClient(%q, %q) = %v, %v", tc.local, tc.remote, client, ok)
		}
	}
	if _, ok := dtlsConnField(); !ok {
		t.Fatal("pion's DTLSTransport has no conn *dtls.Conn field: the fast path cannot take SRTP keys")
	}
}

// The gateway's own RTCP: the client gets SRs with our counts, and the
// client's receiver reports give the endpoint its round trip.
func TestWebRTCPeerSendsOwnRTCP(t *testing.T) {
	w := fastWebRTC(t, true)
	c := newTestClient(t)
	srs := make(chan *rtcp.SenderReport, 16)
	c.pc.OnTrack(func(tr *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		go func() { // the client's receiver-report interceptor counts what it reads
			buf := make([]byte, MaxPacketSize)
			for {
				if _, _, err := tr.Read(buf); err != nil {
					return
				}
			}
		}()
		go func() {
			for {
				pkts, _, err := r.ReadRTCP()
				if err != nil {
					return
				}
				for _, pk := range pkts {
					if sr, ok := pk.(*rtcp.SenderReport); ok {
						select {
						case srs <- sr:
						default:
						}
					}
				}
			}
		}()
	})
	p := connect(t, w, c, false)
	e, err := NewRTPEndpoint(RTPConfig{Codec: codecs.Opus, PayloadType: OpusPayloadType, Reader: p, Writer: p})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	pw, err := e.Writer(48000)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		frame := make([]int16, 960)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 500; i++ { // at most 10 s
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			_ = pw.WritePCM(frame)
		}
	}()
	go c.sendOpus(t, 0, 150)
	deadline := time.After(8 * time.Second)
	var sr *rtcp.SenderReport
	for sr == nil || sr.PacketCount == 0 {
		select {
		case sr = <-srs:
		case <-deadline:
			t.Fatalf("no sender report with packets from the gateway (last %v)", sr)
		}
	}
	if sr.SSRC != p.local.boundSSRC() {
		t.Fatalf("sender report from SSRC %x, the gateway sends as %x", sr.SSRC, p.local.boundSSRC())
	}
	if out := e.Stats().PacketsOut; uint64(sr.PacketCount) > out || sr.PacketCount == 0 {
		t.Fatalf("sender report counts %d packets, the endpoint sent %d", sr.PacketCount, out)
	}
	for e.Health().RTT <= 0 {
		select {
		case <-deadline:
			t.Fatalf("no round trip from the client's receiver reports: %+v", e.Health())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if st := p.ReceiveStats(); st.SentFast == 0 || st.Fast == 0 {
		t.Fatalf("receive stats %+v: want both directions on the fast path", st)
	}
}

// pion sends across a sequence number wrap, then the fast path takes over:
// its SRTP context must start at pion's rollover counter or the client
// cannot authenticate a single packet.
func TestFastSendContinuesPionsRolloverCounter(t *testing.T) {
	_, c, p := startCall(t, 5) // shows the fast path which socket the client uses
	addr := routedAddr(t, p)
	got := c.receive(t, 20)
	p.route(netip.AddrPort{})
	sendFromPeer(t, p, 0, 10) // sequence numbers 65530..65535, 0..3: through pion
	if st := p.ReceiveStats(); st.SentFast != 0 {
		t.Fatalf("receive stats %+v: nothing should have gone on the fast path yet", st)
	}
	p.route(addr)
	sendFromPeer(t, p, 10, 10) // 4..13: on the fast path, ROC 1
	idx := <-got
	if len(idx) != 20 || idx[0] != 0 || idx[19] != 19 {
		t.Fatalf("client received %v, want 0..19", idx)
	}
	if st := p.ReceiveStats(); st.SentFast != 10 {
		t.Fatalf("receive stats %+v: want 10 sent on the fast path", st)
	}
}

// FuzzFastPathPacket feeds arbitrary datagrams from a routed address to
// the fast path's decryption and normalisation: counted and dropped,
// never a panic.
func FuzzFastPathPacket(f *testing.F) {
	f.Add([]byte{0x80, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 1, 2, 3})
	f.Add([]byte{0x90, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0xBE, 0xDE, 0, 1, 0x10, 0xFF, 0, 0})
	f.Add([]byte{0x8F, 101, 0xFF, 0xFF})
	key, salt := make([]byte, 16), make([]byte, 12)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		ctx, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm, srtp.SRTPReplayProtection(64))
		if err != nil {
			t.Fatal(err)
		}
		p := &Peer{}
		p.fast.ctx = ctx
		p.fast.dtlsUp = make(chan struct{})
		close(p.fast.dtlsUp)
		p.fast.codecs = []webrtc.RTPCodecParameters{{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}}}
		r := newFastRecv(fastSlots, nil)
		if len(pkt) > MaxPacketSize {
			pkt = pkt[:MaxPacketSize]
		}
		r.push(pkt)
		buf := make([]byte, MaxPacketSize)
		n, err := p.decryptFast(buf, r.peek())
		if err != nil || n != 0 {
			t.Fatalf("a forged packet decrypted: n=%d err=%v", n, err)
		}
		if p.fast.authFailed.Load()+p.fast.replayed.Load() != 1 {
			t.Fatalf("a dropped packet was not counted: %+v", p.fast.authFailed.Load())
		}
	})
}
