package media

import (
	"errors"
	"io"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// fastPeer is a Peer's side of the fast receive path (webrtc_fast.go).
type fastPeer struct {
	routes *routeTable
	enc    *fastRecv // SRTP from the shared socket
	plain  *fastRecv // packets pion delivered (a pair off the shared port), normalised; shares enc's wake

	mu      sync.Mutex // guards addr, sendCtx and stopped
	addr    netip.AddrPort
	sendCtx *srtp.Context // encrypts what we send; nil until DTLS is done
	stopped bool

	dtlsUp   chan struct{} // closed when the peer connection is connected (DTLS done) and rctx is set
	dtlsOnce sync.Once
	rctx     *srtp.Context // decrypts what the peer sends; nil if the keys could not be taken

	// Owned by the ReadPacket goroutine.
	ctx    *srtp.Context
	hdr    rtp.Header
	kinds  [128]ptKind
	codecs []webrtc.RTPCodecParameters

	fastPackets, pionPackets, authFailed, replayed atomic.Uint64
}

// ReceiveStats counts how a Peer's RTP packets arrived and left.
type ReceiveStats struct {
	Fast       uint64 // read from the shared socket and decrypted by the gateway
	Pion       uint64 // through pion's receive pipeline
	AuthFailed uint64 // fast path: SRTP authentication failed (dropped)
	Replayed   uint64 // fast path: replayed or too old (dropped)
	Dropped    uint64 // fast path: the call's ring was full
	SentFast   uint64 // packets sent on the fast path (the rest went through pion)
}

// ReceiveStats reports how the peer's packets arrived.
func (p *Peer) ReceiveStats() ReceiveStats {
	f := &p.fast
	return ReceiveStats{Fast: f.fastPackets.Load(), Pion: f.pionPackets.Load(), AuthFailed: f.authFailed.Load(),
		Replayed: f.replayed.Load(), Dropped: f.enc.dropped.Load() + f.plain.dropped.Load(), SentFast: p.local.fastSent.Load()}
}

// webrtcTotals are the ReceiveStats of closed peers, summed (added once
// per call, not per packet).
var webrtcTotals struct {
	fast, pion, authFailed, replayed, dropped, sentFast atomic.Uint64
}

// WebRTCTotals returns the ReceiveStats of all WebRTC peers closed so far,
// summed: the process-wide view for metrics.
func WebRTCTotals() ReceiveStats {
	t := &webrtcTotals
	return ReceiveStats{Fast: t.fast.Load(), Pion: t.pion.Load(), AuthFailed: t.authFailed.Load(),
		Replayed: t.replayed.Load(), Dropped: t.dropped.Load(), SentFast: t.sentFast.Load()}
}

// addTotals adds the peer's counts to the process totals (at Close).
func (p *Peer) addTotals() {
	st := p.ReceiveStats()
	t := &webrtcTotals
	t.fast.Add(st.Fast)
	t.pion.Add(st.Pion)
	t.authFailed.Add(st.AuthFailed)
	t.replayed.Add(st.Replayed)
	t.dropped.Add(st.Dropped)
	t.sentFast.Add(st.SentFast)
}

// startFast arms the fast path: the selected ICE pair's remote address is
// routed to the peer's ring while the pair's local candidate is a host
// candidate (one of the fastConn sockets).
func (p *Peer) startFast(routes *routeTable) {
	f := &p.fast
	f.routes = routes
	f.enc = newFastRecv(fastSlots, nil)
	f.plain = newFastRecv(4, f.enc.wake)
	f.dtlsUp = make(chan struct{})
	p.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			f.dtlsOnce.Do(p.keyFast)
		}
	})
	p.pc.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(p.onPair)
	go p.forwardPion()
}

// keyFast takes the SRTP keys once DTLS is done (pion's connected
// state) and releases the reader. Without keys the peer stays on pion's
// path.
func (p *Peer) keyFast() {
	f := &p.fast
	defer close(f.dtlsUp)
	var local, remote string
	if d := p.pc.CurrentLocalDescription(); d != nil {
		local = d.SDP
	}
	if d := p.pc.CurrentRemoteDescription(); d != nil {
		remote = d.SDP
	}
	client, ok := dtlsClient(local, remote)
	if !ok {
		return
	}
	rctx, sctx, err := srtpContexts(p.pc.SCTP().Transport(), client)
	if err != nil {
		return
	}
	f.rctx = rctx
	f.mu.Lock()
	f.sendCtx = sctx
	p.updateSend()
	f.mu.Unlock()
}

// onPair routes the new selected pair's remote address to the peer.
func (p *Peer) onPair(pair *webrtc.ICECandidatePair) {
	var remote netip.AddrPort
	if pair != nil && pair.Local != nil && pair.Remote != nil && pair.Local.Typ == webrtc.ICECandidateTypeHost &&
		pair.Remote.Protocol == webrtc.ICEProtocolUDP {
		if ip, err := netip.ParseAddr(pair.Remote.Address); err == nil {
			remote = netip.AddrPortFrom(ip.Unmap(), pair.Remote.Port)
		}
	}
	p.route(remote)
}

// route makes remote (invalid: none) the peer's routed address.
func (p *Peer) route(remote netip.AddrPort) {
	f := &p.fast
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped || f.addr == remote {
		return
	}
	if f.addr.IsValid() {
		f.routes.set(f.addr, nil, f.enc)
	}
	if remote.IsValid() {
		f.routes.set(remote, f.enc, nil)
	}
	f.addr = remote
	p.updateSend()
}

// updateSend points the track's fast send path at the routed address, or
// back to pion. f.mu is held.
func (p *Peer) updateSend() {
	f := &p.fast
	var d *fastDest
	if f.sendCtx != nil && f.addr.IsValid() && !f.stopped {
		d = &fastDest{recv: f.enc, to: f.addr, ctx: f.sendCtx}
	}
	p.local.fast.Store(d)
}

// stopFast removes the peer's route for good.
func (p *Peer) stopFast() {
	f := &p.fast
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.addr.IsValid() {
		f.routes.set(f.addr, nil, f.enc)
	}
	f.addr, f.stopped = netip.AddrPort{}, true
	p.updateSend()
}

// forwardPion reads what still reaches pion's track (a selected pair over
// a TURN relay candidate, packets in flight while the pair changes) into the
// plain ring.
func (p *Peer) forwardPion() {
	var t *webrtc.TrackRemote
	select {
	case t = <-p.track:
	case <-p.closed:
		return
	}
	var kinds [128]ptKind
	buf := make([]byte, MaxPacketSize)
	codec := func(uint8) webrtc.RTPCodecParameters { return t.Codec() }
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		normaliseRemote(buf[:n], &kinds, codec)
		p.fast.pionPackets.Add(1)
		// pion's buffers are behind this reader: wait for room rather
		// than drop (a rare path; the reader may be stalled).
		for !p.fast.plain.tryPush(buf[:n]) {
			select {
			case <-p.closed:
				return
			default:
				time.Sleep(time.Millisecond)
			}
		}
	}
}

// readFast is ReadPacket on the fast path.
func (p *Peer) readFast(buf []byte) (int, error) {
	f := &p.fast
	for {
		if pkt := f.enc.peek(); pkt != nil {
			n, err := p.decryptFast(buf, pkt)
			f.enc.pop()
			if err != nil {
				return 0, err
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if pkt := f.plain.peek(); pkt != nil {
			n := copy(buf, pkt)
			f.plain.pop()
			return n, nil
		}
		select {
		case <-f.enc.wake:
		case <-p.closed:
			return 0, io.EOF
		}
	}
}

// decryptFast decrypts pkt into buf and normalises it; 0 means dropped.
func (p *Peer) decryptFast(buf, pkt []byte) (int, error) {
	f := &p.fast
	if f.ctx == nil {
		select {
		case <-f.dtlsUp:
		case <-p.closed:
			return 0, io.EOF
		}
		if f.rctx == nil {
			// No keys: stay on pion's path. What is routed now is lost,
			// the rest reaches pion.
			p.stopFast()
			f.authFailed.Add(1)
			return 0, nil
		}
		f.ctx = f.rctx
	}
	out, err := f.ctx.DecryptRTP(buf, pkt, &f.hdr)
	if err != nil {
		if isReplay(err) {
			f.replayed.Add(1)
		} else {
			f.authFailed.Add(1)
		}
		return 0, nil
	}
	f.fastPackets.Add(1)
	normaliseRemote(out, &f.kinds, p.negotiatedCodec)
	return len(out), nil
}

// isReplay reports whether a decryption error is srtp's replay rejection
// (its error type is unexported).
func isReplay(err error) bool {
	return strings.Contains(err.Error(), "duplicated packet")
}

// negotiatedCodec returns the negotiated receive codec of payload type pt.
func (p *Peer) negotiatedCodec(pt uint8) webrtc.RTPCodecParameters {
	f := &p.fast
	if f.codecs == nil {
		for _, tr := range p.pc.GetTransceivers() {
			if tr.Kind() == webrtc.RTPCodecTypeAudio && tr.Receiver() != nil {
				f.codecs = tr.Receiver().GetParameters().Codecs
				break
			}
		}
	}
	for _, c := range f.codecs {
		if uint8(c.PayloadType) == pt {
			return c
		}
	}
	return webrtc.RTPCodecParameters{}
}

// fastDest is where the track sends on the fast path: SRTP from our own
// context, written straight to the shared socket the peer's packets come
// in on (the selected pair's local candidate; behind 1:1 NAT the
// candidate's address is not the socket's, the socket still is).
type fastDest struct {
	recv *fastRecv
	to   netip.AddrPort
	ctx  *srtp.Context
}

// errNoSocketYet means no packet from the peer has shown which socket to
// send from: the packet goes through pion.
var errNoSocketYet = errors.New("media: fast path: no packet from the peer yet")

// fastSend is the AudioTrack's state for the fast send path, guarded by
// the track's mu.
type fastSend struct {
	ctx     *srtp.Context // the context last used; its ROC is set once
	wraps   uint32        // sequence number wrap-arounds sent so far (the SRTP ROC)
	lastSeq uint16
	sent    bool
	plain   [MaxPacketSize]byte
	enc     [MaxPacketSize + 64]byte
}

// countSeq tracks the rollover counter of the sequence numbers sent.
func (s *fastSend) countSeq(seq uint16) {
	if s.sent && seq < s.lastSeq && s.lastSeq-seq > 0x8000 {
		s.wraps++
	}
	if !s.sent || seq-s.lastSeq < 0x8000 {
		s.lastSeq = seq
	}
	s.sent = true
}

// write encrypts the packet hdr+payload with d's context and sends it.
func (s *fastSend) write(d *fastDest, hdr *rtp.Header, payload []byte) error {
	conn := d.recv.via.Load()
	if conn == nil {
		return errNoSocketYet
	}
	if s.ctx != d.ctx {
		// pion's context may have sent this SSRC before: start at its ROC.
		d.ctx.SetROC(hdr.SSRC, s.wraps)
		s.ctx = d.ctx
	}
	n, err := hdr.MarshalTo(s.plain[:])
	if err != nil {
		return err
	}
	n += copy(s.plain[n:], payload)
	out, err := d.ctx.EncryptRTP(s.enc[:0], s.plain[:n], hdr)
	if err != nil {
		return err
	}
	_, err = conn.WriteToUDPAddrPort(out, d.to)
	return err
}
