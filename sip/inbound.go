package sip

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	sipgosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
)

// InboundCall describes an authenticated INVITE the gateway may accept.
type InboundCall struct {
	Trunk   string           // the trunk it came from
	From    signalling.Party // the caller: Number is E.164 or "" (anonymous)
	Dialled string           // the Request-URI user part, as received
	// Header returns the value of a header of the INVITE ("" when absent),
	// e.g. a conference room named by a trusted trunk.
	Header func(name string) string
}

// InboundConfig configures how the UA takes calls from trunks.
type InboundConfig struct {
	Trunks []InboundTrunk
	// Realm of digest challenges; default the UA's advertised IP.
	Realm string
	// IgnoreUntrusted leaves INVITEs from unknown sources unanswered
	// instead of answering 403.
	IgnoreUntrusted bool
	// Rate and Burst limit INVITEs per second per source address (0: off);
	// over the limit the gateway answers 503 with Retry-After.
	Rate  float64
	Burst int
	// Codecs are the codecs accepted from trunks, preferred first; default
	// PCMU, PCMA.
	Codecs []string
	// DefaultCC turns national caller numbers into E.164.
	DefaultCC string
	// Media allocates the RTP session of each accepted call (required).
	Media MediaFactory
	// Accept is called for each authenticated INVITE whose SDP we can answer.
	// It must return quickly: it hands the leg to the call core, which then
	// drives it (Ringing, Answer, Hangup). An error refuses the call with the
	// SIP status of its cause (signalling.CauseOf).
	Accept func(l *InLeg, call InboundCall) error
}

// inbound is the state behind HandleInbound.
type inbound struct {
	cfg    InboundConfig
	codecs []Codec
	nonces *nonces
	limit  *rateLimiter
}

// HandleInbound makes the UA accept calls from the configured trunks. Until
// it is called, every INVITE gets 403.
func (u *UA) HandleInbound(cfg InboundConfig) error {
	if cfg.Media == nil || cfg.Accept == nil {
		return errors.New("sip: inbound calls need a media factory and an Accept function")
	}
	if cfg.Realm == "" {
		cfg.Realm = u.cfg.AdvertiseIP.String()
	}
	names := cfg.Codecs
	if len(names) == 0 {
		names = []string{"PCMU", "PCMA"}
	}
	in := &inbound{cfg: cfg, nonces: newNonces(), limit: newRateLimiter(cfg.Rate, cfg.Burst)}
	for _, n := range names {
		c, ok := CodecByName(n)
		if !ok {
			return errors.New("sip: unknown codec " + n)
		}
		in.codecs = append(in.codecs, c)
	}
	u.inbound.Store(in)
	return nil
}

// onInvite handles an out-of-dialog INVITE: rate limit, trunk check, digest,
// 100 Trying, SDP, then Accept.
func (u *UA) onInvite(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
	in := u.inbound.Load()
	respond := func(status int, extra ...sipgosip.Header) {
		res := sipgosip.NewResponseFromRequest(req, status, reasonPhrase(status), nil)
		for _, h := range extra {
			res.AppendHeader(h)
		}
		_ = tx.Respond(res)
	}
	if in == nil {
		if u.inboundInvite != nil {
			u.inboundInvite(req, tx)
			return
		}
		respond(403)
		return
	}
	now := time.Now()
	src, _ := netip.ParseAddrPort(req.Source())
	ip := src.Addr().Unmap()
	log := u.log.With().Str("source", src.String()).Str("sip_call_id", callIDOf(req)).Logger()
	if !in.limit.allow(ip, now) {
		u.inboundRefused.Add(1)
		log.Warn().Msg("INVITE rate limit exceeded: 503")
		respond(503, sipgosip.NewHeader("Retry-After", "5"))
		return
	}
	trunk, ok := in.authenticate(req, ip, now)
	switch {
	case !ok && trunk == nil:
		u.inboundRefused.Add(1)
		if in.cfg.IgnoreUntrusted {
			log.Warn().Msg("INVITE from an untrusted source ignored")
			return
		}
		log.Warn().Msg("INVITE from an untrusted source: 403")
		respond(403)
		return
	case !ok:
		log.Info().Str("trunk", trunk.Name).Msg("INVITE without valid credentials: 401 challenge")
		respond(401, sipgosip.NewHeader("WWW-Authenticate", challenge(in.cfg.Realm, in.nonces, now)))
		return
	}
	respond(100)
	log = log.With().Str("trunk", trunk.Name).Logger()
	remote, err := ParseAnswer(req.Body(), in.codecs)
	if err != nil {
		status := 488
		if errors.Is(err, ErrMalformedSDP) || errors.Is(err, ErrNoSDP) {
			status = 400
		}
		log.Warn().Err(err).Int("status", status).Msg("INVITE refused: SDP")
		respond(status)
		return
	}
	dlg, err := u.dialogs[transportOf(req)].ReadInvite(req, tx)
	if err != nil {
		log.Warn().Err(err).Msg("INVITE refused: bad dialog")
		respond(400)
		return
	}
	l := &InLeg{
		ua: u, dlg: dlg, tx: tx, trunk: trunk.Name, remote: remote, media: in.cfg.Media,
		log: log, sipCallID: callIDOf(req), done: make(chan struct{}), final: make(chan struct{}),
	}
	call := InboundCall{Trunk: trunk.Name, From: callerParty(req, in.cfg.DefaultCC), Dialled: req.Recipient.User,
		Header: func(name string) string {
			if h := req.GetHeader(name); h != nil {
				return h.Value()
			}
			return ""
		}}
	if err := in.cfg.Accept(l, call); err != nil {
		cause := signalling.CauseOf(err)
		status := cause.SIPStatus()
		if status == 0 {
			status = 480
		}
		log.Info().Err(err).Int("status", status).Msg("inbound call refused")
		l.refuse(status)
		return
	}
	// sipgo ends the INVITE transaction when this handler returns: hold it
	// until the call core has sent the final response (bounded).
	select {
	case <-l.final:
	case <-time.After(maxRing):
		log.Warn().Msg("no final response to an inbound INVITE in time")
	}
}

// maxRing bounds how long an inbound INVITE may stay unanswered.
const maxRing = 10 * time.Minute

// authenticate finds the trunk an INVITE comes from. ok is false with a
// trunk when that trunk needs (valid) digest credentials, and false with no
// trunk when the source is not trusted at all.
func (in *inbound) authenticate(req *sipgosip.Request, ip netip.Addr, now time.Time) (*InboundTrunk, bool) {
	var digestOnly *InboundTrunk
	for i := range in.cfg.Trunks {
		t := &in.cfg.Trunks[i]
		switch {
		case t.fromSource(ip):
			if t.Username == "" {
				return t, true
			}
			return t, in.digestOK(req, t, now)
		case len(t.Sources) == 0 && t.Username != "":
			if in.digestOK(req, t, now) {
				return t, true
			}
			if digestOnly == nil {
				digestOnly = t
			}
		}
	}
	return digestOnly, false
}

func (in *inbound) digestOK(req *sipgosip.Request, t *InboundTrunk, now time.Time) bool {
	h := req.GetHeader("Authorization")
	if h == nil {
		return false
	}
	return checkDigest(h.Value(), string(req.Method), in.cfg.Realm, t, in.nonces, now)
}

// callerParty reads the caller from P-Asserted-Identity or From.
func callerParty(req *sipgosip.Request, cc string) signalling.Party {
	var p signalling.Party
	user := ""
	if h := req.GetHeader("P-Asserted-Identity"); h != nil {
		var uri sipgosip.Uri
		v := h.Value()
		if i, j := strings.IndexByte(v, '<'), strings.IndexByte(v, '>'); i >= 0 && j > i {
			v = v[i+1 : j]
		}
		if sipgosip.ParseUri(v, &uri) == nil {
			user = uri.User
		}
	}
	if from := req.From(); from != nil {
		p.DisplayName = strings.Trim(from.DisplayName, `"`)
		if user == "" {
			user = from.Address.User
		}
	}
	if n, err := signalling.Normalize(user, cc); err == nil {
		p.Number = n
	}
	if len(p.DisplayName) > 64 {
		p.DisplayName = p.DisplayName[:64]
	}
	return p
}

func callIDOf(req *sipgosip.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

func transportOf(req *sipgosip.Request) string {
	if strings.EqualFold(req.Transport(), "tcp") {
		return "tcp"
	}
	return "udp"
}

// InLeg is a call from a trunk. It implements signalling.Leg, Ringer and
// Describer. The call core drives it; the far side's CANCEL and BYE are
// posted to the call.
type InLeg struct {
	ua        *UA
	dlg       *sipgo.DialogServerSession
	tx        sipgosip.ServerTransaction
	trunk     string
	remote    Answer // the caller's media, as parsed from its offer
	media     MediaFactory
	log       zerolog.Logger
	sipCallID string
	done      chan struct{}
	final     chan struct{} // closed once the final response was sent
	finalOnce sync.Once

	mu       sync.Mutex
	poster   signalling.Poster
	session  MediaSession
	localSDP []byte
	answered bool
	closed   bool // the call asked for the hangup
	status   int  // final status sent
	once     sync.Once
}

var (
	_ signalling.Leg       = (*InLeg)(nil)
	_ signalling.Ringer    = (*InLeg)(nil)
	_ signalling.Describer = (*InLeg)(nil)
)

// Bind attaches the leg to its call and starts watching the dialog for the
// caller's CANCEL or BYE. Call it once, from Accept's NewInbound.
func (l *InLeg) Bind(p signalling.Poster) {
	l.mu.Lock()
	l.poster = p
	l.mu.Unlock()
	go l.watch()
}

// watch posts the end of the dialog when the far side ended it.
func (l *InLeg) watch() {
	<-l.dlg.Context().Done()
	l.mu.Lock()
	closed, answered, p := l.closed, l.answered, l.poster
	l.mu.Unlock()
	if closed || p == nil {
		return
	}
	cause, detail := signalling.CauseNormal, "SIP BYE"
	if !answered {
		cause, detail = signalling.CauseCancelled, "SIP CANCEL"
	}
	p.Post(signalling.Event{Leg: l, Type: signalling.EventHangup, Cause: cause, Detail: detail})
}

// refuse answers the INVITE with a final error status.
func (l *InLeg) refuse(status int) {
	defer l.finalSent()
	l.mu.Lock()
	l.closed, l.status = true, status
	l.mu.Unlock()
	res := sipgosip.NewResponseFromRequest(l.dlg.InviteRequest, status, reasonPhrase(status), nil)
	if err := l.tx.Respond(res); err != nil {
		l.log.Debug().Err(err).Msg("final response not sent")
	}
}

func (l *InLeg) finalSent() { l.finalOnce.Do(func() { close(l.final) }) }

// Kind implements signalling.Leg.
func (l *InLeg) Kind() string { return "sip" }

// Ringing implements signalling.Ringer: 180 Ringing.
func (l *InLeg) Ringing(context.Context) error {
	return l.dlg.Respond(180, "Ringing", nil)
}

// Answer implements signalling.Leg: start RTP toward the caller and send
// 200 OK with our SDP.
func (l *InLeg) Answer(ctx context.Context) error {
	ms, err := l.media.NewSession()
	if err != nil {
		return err
	}
	dtmf := uint8(0)
	if l.remote.HasDTMF {
		dtmf = l.remote.DTMFPayload
	}
	if err := ms.Start(l.remote.Remote, l.remote.Codec.Name, l.remote.Codec.PayloadType, dtmf); err != nil {
		_ = ms.Close()
		return err
	}
	watchDTMF(ms.Endpoint(), l.postDTMF)
	dir := DirSendRecv
	switch l.remote.Direction {
	case DirSendOnly:
		dir = DirRecvOnly
	case DirRecvOnly:
		dir = DirSendOnly
	case DirInactive:
		dir = DirInactive
	}
	body := Offer{
		SessionID: rand.Uint64() >> 1, SessionVersion: 1, Addr: ms.LocalAddr(),
		Codecs: []Codec{l.remote.Codec}, DTMFPayload: dtmf, PTime: l.remote.PTime, Direction: dir,
	}.Marshal()
	l.mu.Lock()
	l.session, l.localSDP = ms, body
	l.mu.Unlock()
	// Route the ACK (and later BYE) to this leg before sending 200 OK:
	// RespondSDP returns once the ACK has arrived.
	l.ua.setInbound(l.dlg.ID, l)
	defer l.finalSent()
	if err := l.dlg.RespondSDP(body); err != nil {
		return err
	}
	l.mu.Lock()
	l.answered, l.status = true, 200
	l.mu.Unlock()
	return nil
}

// Audio implements signalling.Leg.
func (l *InLeg) Audio() media.Endpoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.session == nil {
		return nil
	}
	return l.session.Endpoint()
}

// Hangup implements signalling.Leg: a final error response before answer,
// BYE after.
func (l *InLeg) Hangup(ctx context.Context, cause signalling.Cause) {
	l.once.Do(func() {
		l.mu.Lock()
		wasClosed := l.closed
		l.closed = true
		answered, ms := l.answered, l.session
		l.mu.Unlock()
		ended := l.dlg.LoadState() == sipgosip.DialogStateEnded
		switch {
		case wasClosed || ended:
		case !answered:
			status := cause.SIPStatus()
			if status == 0 || status < 300 {
				status = 480
			}
			l.refuse(status)
		default:
			bctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if err := l.dlg.Bye(bctx); err != nil {
				l.log.Debug().Err(err).Msg("BYE not confirmed")
			}
			cancel()
		}
		if ms != nil {
			_ = ms.Close()
		}
		l.ua.removeInbound(l.dlg.ID, l)
		l.finalSent()
		close(l.done)
	})
}

// Describe implements signalling.Describer.
func (l *InLeg) Describe(r *signalling.CallRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r.Trunk, r.SIPCallID, r.SIPStatus = l.trunk, l.sipCallID, l.status
	r.PhoneCodec = l.remote.Codec.String()
	if l.session != nil {
		if ep := l.session.Endpoint(); ep != nil {
			r.PhoneCodec = ep.String()
			if s, ok := ep.(interface{ Stats() media.RTPStats }); ok {
				st := s.Stats()
				r.PhonePacketsIn, r.PhonePacketsLost = st.PacketsIn, st.Lost
			}
		}
	}
}

// onInDialog handles ACK, BYE and re-INVITE within an inbound dialog.
func (l *InLeg) onInDialog(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
	switch req.Method {
	case sipgosip.ACK:
		_ = l.dlg.ReadAck(req, tx)
	case sipgosip.BYE:
		if err := l.dlg.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sipgosip.NewResponseFromRequest(req, 481, reasonPhrase(481), nil))
		}
	case sipgosip.INVITE:
		// Session refresh or hold: answer with the current description; a
		// hold pauses the dead-media watch.
		l.mu.Lock()
		body, ms := l.localSDP, l.session
		l.mu.Unlock()
		if ms != nil && len(req.Body()) > 0 {
			if ep := ms.Endpoint(); ep != nil {
				media.NoteHold(ep, string(req.Body()))
			}
		}
		res := sipgosip.NewResponseFromRequest(req, 200, "OK", body)
		ct := sipgosip.ContentTypeHeader(sdpMimeType)
		res.AppendHeader(&ct)
		_ = tx.Respond(res)
	}
}

// reasonPhrase returns the RFC 3261 reason phrase of a status.
func reasonPhrase(status int) string {
	switch status {
	case 100:
		return "Trying"
	case 180:
		return "Ringing"
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 480:
		return "Temporarily Unavailable"
	case 481:
		return "Call/Transaction Does Not Exist"
	case 484:
		return "Address Incomplete"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 500:
		return "Server Internal Error"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 603:
		return "Decline"
	}
	return "Error"
}

// inboundState is kept by the UA for inbound calls.
type inboundState struct {
	inbound        atomic.Pointer[inbound]
	inboundRefused atomic.Uint64
	inMu           sync.Mutex
	inDlg          map[string]*InLeg
}

func (u *UA) setInbound(id string, l *InLeg) {
	u.inMu.Lock()
	defer u.inMu.Unlock()
	if u.inDlg == nil {
		u.inDlg = make(map[string]*InLeg)
	}
	u.inDlg[id] = l
}

func (u *UA) removeInbound(id string, l *InLeg) {
	u.inMu.Lock()
	defer u.inMu.Unlock()
	if u.inDlg[id] == l {
		delete(u.inDlg, id)
	}
}

// inboundForRequest finds the inbound leg of an in-dialog request.
func (u *UA) inboundForRequest(req *sipgosip.Request) *InLeg {
	id, err := sipgosip.DialogIDFromRequestUAS(req)
	if err != nil {
		return nil
	}
	u.inMu.Lock()
	defer u.inMu.Unlock()
	return u.inDlg[id]
}

// InboundRefused counts INVITEs refused for rate or trust.
func (u *UA) InboundRefused() uint64 { return u.inboundRefused.Load() }
