package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/transport/v4/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/matrix-gateway/gateway/internal/pionlog"
)

// WebRTCStreamID is the msid stream of the gateway's audio track (named in sdp_stream_metadata).
const WebRTCStreamID = "gateway"

// OpusPayloadType is the payload type the gateway offers and prefers for Opus.
const OpusPayloadType = 111

// WebRTCConfig configures the gateway's WebRTC peers (the Matrix side).
type WebRTCConfig struct {
	ICEServers       []webrtc.ICEServer
	UDPPortMin       uint16   // 0 with UDPPortMax 0: any port
	UDPPortMax       uint16   //
	NAT1To1IPs       []string // public IPs to advertise as host candidates
	IncludeLoopback  bool     // offer loopback candidates (tests on one machine)
	ICEGatherTimeout time.Duration
	// UDPPort, when not 0, makes every peer share this one UDP port (on each
	// interface) through an ICE UDP mux: one firewall rule, one socket per
	// interface for all calls. UDPPortMin/Max are then unused.
	UDPPort int
	// ReadBuffer is the mux sockets' receive buffer (0: 4 MiB).
	ReadBuffer int
	// Loggers receives pion's logs; nil discards them (pion's default
	// would print errors, some per packet, to stderr).
	Loggers logging.LoggerFactory
}

// WebRTC builds peer connections for audio-only calls: Opus and telephone-event, the
// gateway's own RTCP reports (webrtc_rtcp.go), no pion interceptors.
type WebRTC struct {
	api    *webrtc.API
	cfg    WebRTCConfig
	mux    *ice.MultiUDPMuxDefault // nil without UDPPort
	routes *routeTable             // the fast path's routes
}

// Close releases the shared UDP port; peers must be closed first. It is
// idempotent.
func (w *WebRTC) Close() error {
	if w == nil || w.mux == nil {
		return nil
	}
	err := w.mux.Close()
	w.mux = nil
	return err
}

// NewWebRTC makes the peer factory.
func NewWebRTC(cfg WebRTCConfig) (*WebRTC, error) {
	if cfg.ICEGatherTimeout <= 0 {
		cfg.ICEGatherTimeout = 2 * time.Second
	}
	me := &webrtc.MediaEngine{}
	if err := RegisterAudioCodecs(me); err != nil {
		return nil, fmt.Errorf("media: register codecs: %w", err)
	}
	// No interceptors: the peers send their own RTCP reports
	// (webrtc_rtcp.go), and an audio-only call needs no NACK or TWCC.
	reg := &interceptor.Registry{}
	se := webrtc.SettingEngine{}
	if cfg.Loggers == nil {
		cfg.Loggers = pionlog.Discard
	}
	se.LoggerFactory = cfg.Loggers
	se.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	// Every UDP socket pion opens for ICE is a fastConn (webrtc_fast.go):
	// the shared port's, or each call's own.
	std, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("media: network: %w", err)
	}
	routes := &routeTable{}
	fast := &fastNet{Net: std, routes: routes}
	var mux *ice.MultiUDPMuxDefault
	if cfg.UDPPort != 0 {
		rb := cfg.ReadBuffer
		if rb == 0 {
			rb = 4 << 20
		}
		opts := []ice.UDPMuxFromPortOption{
			ice.UDPMuxFromPortWithLogger(cfg.Loggers.NewLogger("ice")),
			ice.UDPMuxFromPortWithNet(fast),
			ice.UDPMuxFromPortWithNetworks(ice.NetworkTypeUDP4, ice.NetworkTypeUDP6),
			ice.UDPMuxFromPortWithReadBufferSize(rb),
		}
		if cfg.IncludeLoopback {
			opts = append(opts, ice.UDPMuxFromPortWithLoopback())
		}
		if mux, err = ice.NewMultiUDPMuxFromPort(cfg.UDPPort, opts...); err != nil {
			return nil, fmt.Errorf("media: webrtc udp port %d: %w", cfg.UDPPort, err)
		}
		se.SetICEUDPMux(mux)
	} else {
		se.SetNet(fast)
		if cfg.UDPPortMin != 0 || cfg.UDPPortMax != 0 {
			if err := se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax); err != nil {
				return nil, fmt.Errorf("media: webrtc port range: %w", err)
			}
		}
	}
	if len(cfg.NAT1To1IPs) > 0 {
		se.SetNAT1To1IPs(cfg.NAT1To1IPs, webrtc.ICECandidateTypeHost)
	}
	// Audio only: UDP over IPv4 and IPv6; no mDNS candidates from us.
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled) // 0 would mean pion's default (query), not off
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
	return &WebRTC{api: api, cfg: cfg, mux: mux, routes: routes}, nil
}

// Peer is one WebRTC peer connection answering a remote offer, with one
// Opus track each way.
type Peer struct {
	pc      *webrtc.PeerConnection
	local   *AudioTrack
	gather  <-chan struct{}
	timeout time.Duration

	trackOnce sync.Once
	track     chan *webrtc.TrackRemote
	closed    chan struct{}
	closeOnce sync.Once
	report    atomic.Pointer[remoteReport] // where the peer's receiver reports go (the endpoint's health)
	sender    *webrtc.RTPSender

	fast fastPeer // the fast media path (webrtc_fast_peer.go)

	rtcpOnce sync.Once     // starts runRTCP (webrtc_rtcp.go)
	lsr      atomic.Uint32 // middle NTP bits of the peer's last SR
	lsrAt    atomic.Int64  // monoNanos when it arrived, 0: none yet
}

// reportTo makes the peer's RTCP receiver reports about our stream update r
// (RFC 3550 loss, jitter, and the round trip from LSR/DLSR against the
// sender reports pion sends for us).
func (p *Peer) reportTo(r *remoteReport) { p.report.Store(r) }

// ErrNoAudio is returned when an offer has no audio we can receive.
var ErrNoAudio = errors.New("media: the offer has no usable Opus audio")

// Answer makes a peer for a remote SDP offer and prepares (but does not
// return) the answer; gathering starts at once. onState receives ICE
// connection state changes.
func (w *WebRTC) Answer(offer string, onState func(webrtc.ICEConnectionState)) (*Peer, error) {
	p, err := w.newPeer(onState)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Peer, error) {
		_ = p.pc.Close()
		return nil, err
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fail(fmt.Errorf("media: bad offer: %w", err))
	}
	hasAudio := false
	for _, tr := range p.pc.GetTransceivers() {
		hasAudio = hasAudio || tr.Kind() == webrtc.RTPCodecTypeAudio
	}
	if !hasAudio {
		return fail(ErrNoAudio)
	}
	// AddTrack after the remote offer reuses the offer's audio transceiver.
	sender, err := p.pc.AddTrack(p.local)
	if err != nil {
		return fail(fmt.Errorf("media: attach track: %w", err))
	}
	ans, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrNoAudio, err))
	}
	if err := p.startLocal(ans, sender); err != nil {
		return fail(err)
	}
	return p, nil
}

// Offer makes a peer that offers one Opus audio track (sendrecv); gathering
// starts at once. The offer SDP comes from LocalDescription; the answer is
// applied with SetAnswer.
func (w *WebRTC) Offer(onState func(webrtc.ICEConnectionState)) (*Peer, error) {
	p, err := w.newPeer(onState)
	if err != nil {
		return nil, err
	}
	sender, err := p.pc.AddTrack(p.local)
	if err == nil {
		var offer webrtc.SessionDescription
		if offer, err = p.pc.CreateOffer(nil); err == nil {
			err = p.startLocal(offer, sender)
		}
	}
	if err != nil {
		_ = p.pc.Close()
		return nil, fmt.Errorf("media: offer: %w", err)
	}
	return p, nil
}

// SetAnswer applies the remote answer to a peer made by Offer.
func (p *Peer) SetAnswer(sdp string) error {
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		return fmt.Errorf("media: bad answer: %w", err)
	}
	return nil
}

// newPeer makes a peer connection with one local Opus track (not yet
// attached) and the handlers every peer needs.
func (w *WebRTC) newPeer(onState func(webrtc.ICEConnectionState)) (*Peer, error) {
	pc, err := w.api.NewPeerConnection(webrtc.Configuration{
		ICEServers:   w.cfg.ICEServers,
		BundlePolicy: webrtc.BundlePolicyMaxBundle,
	})
	if err != nil {
		return nil, fmt.Errorf("media: new peer connection: %w", err)
	}
	p := &Peer{pc: pc, track: make(chan *webrtc.TrackRemote, 1), closed: make(chan struct{}), timeout: w.cfg.ICEGatherTimeout}
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if t.Kind() == webrtc.RTPCodecTypeAudio {
			p.trackOnce.Do(func() { p.track <- t })
		}
	})
	if onState != nil {
		pc.OnICEConnectionStateChange(onState)
	}
	p.startFast(w.routes)
	p.local = NewAudioTrack("audio", WebRTCStreamID)
	return p, nil
}

// startLocal sets the local description and starts gathering and RTCP reading.
func (p *Peer) startLocal(desc webrtc.SessionDescription, sender *webrtc.RTPSender) error {
	p.gather = webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(desc); err != nil {
		return fmt.Errorf("media: set local description: %w", err)
	}
	go p.drainRTCP(sender)
	return nil
}

// drainRTCP reads RTCP for the sender so the interceptors process it, and
// takes the receiver report about our stream for the endpoint's health.
func (p *Peer) drainRTCP(s *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	var info rtcpInfo
	var ssrc uint32
	for {
		n, _, err := s.Read(buf)
		if err != nil {
			return
		}
		if ssrc == 0 {
			if enc := s.GetParameters().Encodings; len(enc) > 0 {
				ssrc = uint32(enc[0].SSRC)
			}
		}
		if !parseRTCP(buf[:n], ssrc, &info) {
			continue
		}
		if info.hasSR {
			p.lsr.Store(ntpMiddle(info.ntp))
			p.lsrAt.Store(monoNanos())
		}
		r := p.report.Load()
		if r == nil || ssrc == 0 || !info.hasBlock {
			continue
		}
		r.lost.Store(int64(info.block.lost))
		r.fraction.Store(uint32(info.block.fraction))
		r.jitter.Store(info.block.jitter)
		r.have.Store(true)
		if rtt, ok := rttFromReport(ntpMiddle(ntpTime(time.Now())), &info.block); ok {
			r.rtt.Store(int64(rtt))
		}
	}
}

// LocalDescription waits for ICE gathering to finish (bounded by the
// configured gather timeout and ctx) and returns the answer SDP with the
// candidates gathered so far.
func (p *Peer) LocalDescription(ctx context.Context) (string, error) {
	t := time.NewTimer(p.timeout)
	defer t.Stop()
	select {
	case <-p.gather:
	case <-t.C:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	d := p.pc.LocalDescription()
	if d == nil {
		return "", errors.New("media: no local description")
	}
	return d.SDP, nil
}

// AddCandidate adds a trickled remote candidate; an empty candidate marks the
// end of candidates.
func (p *Peer) AddCandidate(candidate string, sdpMid *string, sdpMLineIndex *uint16) error {
	return p.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: candidate, SDPMid: sdpMid, SDPMLineIndex: sdpMLineIndex})
}

// Renegotiate applies a new remote offer (hold/resume, ICE restart) and
// returns the answer SDP.
func (p *Peer) Renegotiate(ctx context.Context, offer string) (string, error) {
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("media: bad offer: %w", err)
	}
	ans, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	p.gather = webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(ans); err != nil {
		return "", err
	}
	return p.LocalDescription(ctx)
}

// ReadPacket reads one RTP packet from the remote audio stream: from the
// fast path's ring, or what pion delivered on its track
// (webrtc_fast_peer.go). Opus packets come out with OpusPayloadType and
// telephone-event packets with WebRTCEventPayloadType (8 kHz durations),
// whatever payload types the peer negotiated. It returns io.EOF once the
// peer is closed. Only one goroutine may call it.
func (p *Peer) ReadPacket(buf []byte) (int, error) { return p.readFast(buf) }

// WritePacket sends one RTP packet on the local audio track, which rewrites
// its SSRC and payload type (OpusPayloadType or WebRTCEventPayloadType) to
// the negotiated ones.
func (p *Peer) WritePacket(pkt []byte) error {
	_, err := p.local.Write(pkt)
	if errors.Is(err, io.ErrClosedPipe) {
		return nil // not bound yet or peer closing: drop
	}
	return err
}

// Close ends the peer connection. It is idempotent.
func (p *Peer) Close() error {
	var err error
	p.closeOnce.Do(func() {
		close(p.closed)
		p.stopFast()
		err = p.pc.Close()
		p.addTotals()
	})
	return err
}
