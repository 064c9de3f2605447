package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/matrix-gateway/gateway/media"
)

// Transports of the Matrix side of each call.
const (
	// TransportUDP runs the gateway's Opus endpoint over a plain UDP socket
	// (no ICE, DTLS or SRTP): the pure-media mode.
	TransportUDP = "udp"
	// TransportWebRTC runs it over the gateway's real WebRTC path: a
	// media.Peer answering a pion client's offer, ICE over loopback, DTLS,
	// SRTP and the RTCP report interceptors on both ends.
	TransportWebRTC = "webrtc"
)

// Goroutine labels (key "load") of the load's own peers and of the
// gateway side, so that the gateway's goroutines can be counted apart.
const (
	clientLabel  = "client"
	gatewayLabel = "gateway"
)

// clientAPI is the pion API of the load's Matrix peers, a browser
// stand-in as internal/matrixclient builds it: audio only, loopback host
// candidates over UDP4, RTCP sender and receiver reports. mDNS is off
// (ice.MulticastDNSModeDisabled: the zero value would mean pion's default,
// query-only, with its own sockets and goroutines per peer).
func clientAPI() *webrtc.API {
	me := &webrtc.MediaEngine{}
	_ = media.RegisterAudioCodecs(me)
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	reg := &interceptor.Registry{}
	_ = webrtc.ConfigureRTCPReports(reg)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(reg))
}

// rtcConn is a load peer's pion peer connection with one Opus track each
// way: the pacer writes RTP on track, the peer's receive goroutine reads
// the remote track.
type rtcConn struct {
	pc        *webrtc.PeerConnection
	track     *media.AudioTrack
	sender    *webrtc.RTPSender
	gather    <-chan struct{}
	remote    chan *webrtc.TrackRemote
	closed    chan struct{}
	closeOnce sync.Once
	connected chan struct{} // closed once the peer connection is connected (ICE and DTLS)
	connOnce  sync.Once
	ice       atomic.Int32 // webrtc.ICEConnectionState
}

// newRTCPeer makes a Matrix peer (kindWeb) whose transport is a pion peer
// connection from api, not yet negotiated.
func newRTCPeer(api *webrtc.API, t *trains, probe bool) (*peer, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return nil, fmt.Errorf("load: client peer: %w", err)
	}
	c := &rtcConn{pc: pc, track: media.NewAudioTrack("audio", "load"), remote: make(chan *webrtc.TrackRemote, 1),
		closed: make(chan struct{}), connected: make(chan struct{})}
	pc.OnTrack(func(tr *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		if tr.Kind() != webrtc.RTPCodecTypeAudio {
			return
		}
		select {
		case c.remote <- tr:
			go drainRTCP(r.Read) // receiver reports need the far end's sender reports read
		default:
		}
	})
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) { c.ice.Store(int32(s)) })
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			c.connOnce.Do(func() { close(c.connected) })
		}
	})
	p, err := newPeer(kindWeb, t, probe)
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	// The Matrix peer's traffic goes through pion, not its UDP socket.
	_ = p.conn.Close()
	p.conn, p.rtc = nil, c
	return p, nil
}

// drainRTCP reads an RTP sender's or receiver's RTCP so that the report
// interceptors process it; it returns when the peer connection closes.
func drainRTCP(read func([]byte) (int, interceptor.Attributes, error)) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := read(buf); err != nil {
			return
		}
	}
}

// offer attaches the track, creates the offer and starts gathering; the
// SDP comes from localDescription.
func (c *rtcConn) offer() error {
	var err error
	if c.sender, err = c.pc.AddTrack(c.track); err != nil {
		return fmt.Errorf("load: client track: %w", err)
	}
	go drainRTCP(c.sender.Read)
	o, err := c.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("load: client offer: %w", err)
	}
	c.gather = webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(o); err != nil {
		return fmt.Errorf("load: client offer: %w", err)
	}
	return nil
}

// answer applies a remote offer, attaches the track (to the offer's audio
// transceiver) and starts gathering for the answer.
func (c *rtcConn) answer(offer string) error {
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fmt.Errorf("load: twin offer: %w", err)
	}
	var err error
	if c.sender, err = c.pc.AddTrack(c.track); err != nil {
		return fmt.Errorf("load: twin track: %w", err)
	}
	go drainRTCP(c.sender.Read)
	a, err := c.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("load: twin answer: %w", err)
	}
	c.gather = webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(a); err != nil {
		return fmt.Errorf("load: twin answer: %w", err)
	}
	return nil
}

// localDescription waits for gathering and returns the local SDP.
func (c *rtcConn) localDescription(ctx context.Context) (string, error) {
	select {
	case <-c.gather:
	case <-ctx.Done():
		return "", fmt.Errorf("load: gathering: %w", ctx.Err())
	}
	d := c.pc.LocalDescription()
	if d == nil {
		return "", errors.New("load: no local description")
	}
	return d.SDP, nil
}

func (c *rtcConn) setAnswer(sdp string) error {
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		return fmt.Errorf("load: answer: %w", err)
	}
	return nil
}

// waitUp waits until the peer connection is connected and the local track
// is bound (so that the pacer's first packets are not dropped).
func (c *rtcConn) waitUp(ctx context.Context) error {
	select {
	case <-c.connected:
	case <-ctx.Done():
		return fmt.Errorf("load: client peer not connected (ICE %s): %w", webrtc.ICEConnectionState(c.ice.Load()), ctx.Err())
	}
	for !c.track.CanSendDTMF() { // bound: both ends negotiate telephone-event
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("load: client track not bound: %w", ctx.Err())
		}
	}
	return nil
}

// remoteTrack waits for the far end's track; false once closed.
func (c *rtcConn) remoteTrack() (*webrtc.TrackRemote, bool) {
	select {
	case t := <-c.remote:
		return t, true
	case <-c.closed:
		return nil, false
	}
}

func (c *rtcConn) close() {
	c.closeOnce.Do(func() {
		close(c.closed)
		_ = c.pc.Close()
	})
}

// iceUp reports whether an ICE state is connected or completed.
func iceUp(s webrtc.ICEConnectionState) bool {
	return s == webrtc.ICEConnectionStateConnected || s == webrtc.ICEConnectionStateCompleted
}

// clientDo runs f with the client goroutine label, which every goroutine
// it starts (and those they start) inherits. Calls must not nest.
func clientDo(f func() error) error { return labelDo(clientLabel, f) }

// gatewayDo runs f with the gateway goroutine label.
func gatewayDo(f func() error) error { return labelDo(gatewayLabel, f) }

func labelDo(label string, f func() error) error {
	var err error
	pprof.Do(context.Background(), pprof.Labels("load", label), func(context.Context) { err = f() })
	return err
}

// labelledGoroutines counts the live goroutines started under a label.
func labelledGoroutines(label string) int {
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
		return 0
	}
	total, count := 0, 0
	sc := bufio.NewScanner(&b)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, " @ "); i > 0 && line[0] >= '0' && line[0] <= '9' {
			count, _ = strconv.Atoi(line[:i])
			continue
		}
		if strings.HasPrefix(line, "# labels:") && strings.Contains(line, `"load":"`+label+`"`) {
			total += count
		}
	}
	return total
}

// offerAll makes every call's client offer and waits for their gathering.
func offerAll(ctx context.Context, calls []*call) ([]string, error) {
	offers := make([]string, len(calls))
	err := clientDo(func() error {
		for _, c := range calls {
			if err := c.web.rtc.offer(); err != nil {
				return err
			}
		}
		for i, c := range calls {
			var err error
			if offers[i], err = c.web.rtc.localDescription(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	return offers, err
}

// connectTwins negotiates every call's Matrix peer with its twin (the
// webrtc baseline: pion client to pion client) and waits until all are up.
func connectTwins(ctx context.Context, calls []*call, timeout time.Duration) error {
	offers, err := offerAll(ctx, calls)
	if err != nil {
		return err
	}
	return clientDo(func() error {
		for i, c := range calls {
			if err := c.webTwin.rtc.answer(offers[i]); err != nil {
				return err
			}
		}
		for _, c := range calls {
			ans, err := c.webTwin.rtc.localDescription(ctx)
			if err != nil {
				return err
			}
			if err := c.web.rtc.setAnswer(ans); err != nil {
				return err
			}
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		for _, c := range calls {
			for _, r := range []*rtcConn{c.web.rtc, c.webTwin.rtc} {
				if err := r.waitUp(wctx); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// answerAll makes the gateway's WebRTC peer of every call from its client's
// offer (media.WebRTC.Answer, as the Matrix leg does) and returns the
// answers once gathered.
func answerAll(ctx context.Context, rtc *media.WebRTC, calls []*call, offers []string) ([]string, error) {
	for i, c := range calls {
		p, err := rtc.Answer(offers[i], func(s webrtc.ICEConnectionState) { c.gwICE.Store(int32(s)) })
		if err != nil {
			return nil, fmt.Errorf("load: gateway answer: %w", err)
		}
		c.gwPeer = p
	}
	answers := make([]string, len(calls))
	for i, c := range calls {
		var err error
		if answers[i], err = c.gwPeer.LocalDescription(ctx); err != nil {
			return nil, fmt.Errorf("load: gateway answer: %w", err)
		}
	}
	return answers, nil
}

// connectGateway hands the gateway's answers to the clients and waits until
// both ends of every call are up.
func connectGateway(ctx context.Context, calls []*call, answers []string, timeout time.Duration) error {
	err := clientDo(func() error {
		for i, c := range calls {
			if err := c.web.rtc.setAnswer(answers[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for i, c := range calls {
		if err := c.web.rtc.waitUp(wctx); err != nil {
			return fmt.Errorf("call %d: %w", i, err)
		}
		for !iceUp(webrtc.ICEConnectionState(c.gwICE.Load())) {
			select {
			case <-time.After(5 * time.Millisecond):
			case <-wctx.Done():
				return fmt.Errorf("load: call %d: gateway ICE %s: %w", i, webrtc.ICEConnectionState(c.gwICE.Load()), wctx.Err())
			}
		}
	}
	// The gateway's sender binds right after its DTLS handshake, which
	// ends within a round trip of the client's.
	time.Sleep(100 * time.Millisecond)
	return nil
}

// connectTimeout bounds how long n calls may take to connect.
func connectTimeout(n int) time.Duration {
	return 15*time.Second + time.Duration(n)*50*time.Millisecond
}
