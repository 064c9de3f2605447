package sip

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	sipgosip "github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
)

// Timing of the leg's own waits.
const (
	hangupWait  = 2 * time.Second // Hangup waits this long for CANCEL/487 or BYE/200
	byeTimeout  = 5 * time.Second // a BYE we send gets this long for its 200
	ackTimeout  = 2 * time.Second
	sdpMimeType = "application/sdp"
)

// Dialer places calls through one trunk. It implements signalling.Dialer.
type Dialer struct {
	ua    *UA
	trunk Trunk
	media MediaFactory
	err   error // trunk validation error, returned by every Dial
}

var _ signalling.Dialer = (*Dialer)(nil)

// Dialer returns a signalling.Dialer that places calls to trunk, with RTP
// sessions from mf. An invalid trunk makes every Dial fail.
func (u *UA) Dialer(trunk Trunk, mf MediaFactory) signalling.Dialer {
	return u.NewDialer(trunk, mf)
}

// NewDialer is Dialer with the concrete type, for callers that want Trunk().
func (u *UA) NewDialer(trunk Trunk, mf MediaFactory) *Dialer {
	d := &Dialer{ua: u, trunk: trunk, media: mf}
	d.err = d.trunk.Validate()
	if d.err == nil && mf == nil {
		d.err = errors.New("sip: dialer needs a MediaFactory")
	}
	return d
}

// Trunk returns the trunk with defaults filled in.
func (d *Dialer) Trunk() Trunk { return d.trunk }

// Dial starts an outbound call and returns at once; the leg posts ringing,
// answer or hangup events to p from its own goroutine. Errors here (invalid
// number, bad trunk, closed UA) mean no leg was created; ErrorCause maps them.
func (d *Dialer) Dial(ctx context.Context, req signalling.DialRequest, p signalling.Poster) (signalling.Leg, error) {
	l, err := d.dial(req, p)
	if err != nil {
		// Carry the cause so the call core (signalling.CauseOf) maps it.
		return nil, signalling.NewCauseError(ErrorCause(err), "sip: dial "+d.trunk.Name, err)
	}
	return l, nil
}

func (d *Dialer) dial(req signalling.DialRequest, p signalling.Poster) (*Leg, error) {
	if d.err != nil {
		return nil, d.err
	}
	if p == nil {
		return nil, errors.New("sip: Dial needs a Poster")
	}
	number, err := d.trunk.FormatNumber(req.To.Number)
	if err != nil {
		return nil, err
	}
	l := &Leg{
		ua:       d.ua,
		trunk:    d.trunk,
		mf:       d.media,
		req:      req,
		poster:   p,
		number:   number,
		sipCall:  SIPCallID(uuid.NewString()),
		hangupCh: make(chan struct{}),
		byeCh:    make(chan struct{}),
		done:     make(chan struct{}),
	}
	l.log = d.ua.log.With().Str("call_id", string(req.CallID)).Str("leg", "sip").
		Str("trunk", d.trunk.Name).Str("sip_call_id", string(l.sipCall)).Logger()
	if err := d.ua.addLeg(l); err != nil {
		return nil, err
	}
	go l.run()
	return l, nil
}

// ErrorCause maps an error from Dial or a leg to a neutral hangup cause.
func ErrorCause(err error) signalling.Cause {
	var se *SDPError
	switch {
	case err == nil:
		return signalling.CauseNormal
	case errors.Is(err, ErrInvalidNumber):
		return signalling.CauseInvalidNumber
	case errors.Is(err, ErrClosed):
		return signalling.CauseShutdown
	case errors.As(err, &se):
		return se.HangupCause()
	}
	return signalling.CauseUnknown
}

// SIPCallID is a SIP Call-ID header value, distinct from the gateway's CallID.
type SIPCallID string

// Leg is one outbound SIP call. It implements signalling.Leg.
type Leg struct {
	ua      *UA
	trunk   Trunk
	mf      MediaFactory
	req     signalling.DialRequest
	poster  signalling.Poster
	number  string // formatted called number
	sipCall SIPCallID
	log     zerolog.Logger

	hangupOnce sync.Once
	hangupCh   chan struct{} // closed when the call asks for a hangup
	byeOnce    sync.Once
	byeCh      chan struct{} // closed when the far side sent BYE
	done       chan struct{} // closed when run has finished

	mu          sync.Mutex
	localHangup bool // the call asked for the hangup: post no EventHangup
	ended       bool // a terminal EventHangup was posted
	sentRinging bool
	sentProg    bool
	endpoint    media.Endpoint
	dlg         *sipgo.DialogClientSession // set once answered
	localSDP    []byte
	desc        describeState // call record details, see describe.go
}

var _ signalling.Leg = (*Leg)(nil)

// Kind returns "sip".
func (l *Leg) Kind() string { return "sip" }

// SIPCallID returns the Call-ID of the leg's INVITE.
func (l *Leg) SIPCallID() SIPCallID { return l.sipCall }

// Answer is not supported on an outbound leg.
func (l *Leg) Answer(ctx context.Context) error {
	return errors.New("sip: an outbound leg cannot answer")
}

// Audio returns the RTP endpoint once media runs (after the answer, or
// after EventProgress for early media), else nil; nil again once the leg ended.
func (l *Leg) Audio() media.Endpoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.endpoint
}

// Hangup ends the leg: CANCEL before answer, BYE after. It waits up to two
// seconds (or until ctx ends) for the far side to confirm, is idempotent and
// posts no EventHangup.
func (l *Leg) Hangup(ctx context.Context, cause signalling.Cause) {
	l.hangupOnce.Do(func() {
		l.mu.Lock()
		l.localHangup = true
		l.mu.Unlock()
		l.log.Debug().Str("cause", cause.String()).Msg("hangup requested")
		close(l.hangupCh)
	})
	t := time.NewTimer(hangupWait)
	defer t.Stop()
	select {
	case <-l.done:
	case <-ctx.Done():
	case <-t.C:
	}
}

// Done is closed when the leg has fully ended and its media is closed.
func (l *Leg) Done() <-chan struct{} { return l.done }

// post sends ev unless the call asked for the hangup or the leg already
// ended; at most one EventHangup is ever posted.
func (l *Leg) post(ev signalling.Event) {
	l.mu.Lock()
	if l.localHangup || l.ended {
		l.mu.Unlock()
		return
	}
	switch ev.Type {
	case signalling.EventHangup:
		l.ended = true
	case signalling.EventRinging:
		if l.sentRinging {
			l.mu.Unlock()
			return
		}
		l.sentRinging = true
	case signalling.EventProgress:
		if l.sentProg {
			l.mu.Unlock()
			return
		}
		l.sentProg = true
	}
	l.mu.Unlock()
	ev.Leg = l
	if ev.Type == signalling.EventHangup {
		l.log.Info().Str("cause", ev.Cause.String()).Str("detail", ev.Detail).Msg("SIP leg ended by far side")
	}
	l.poster.Post(ev)
}

func (l *Leg) fail(cause signalling.Cause, detail string) {
	l.post(signalling.Event{Type: signalling.EventHangup, Cause: cause, Detail: detail})
}

func (l *Leg) hangupRequested() bool {
	select {
	case <-l.hangupCh:
		return true
	default:
		return false
	}
}

// waitReason says why the wait for an answer was cut short.
type waitReason int32

const (
	reasonNone waitReason = iota
	reasonUnreachable
	reasonNoAnswer
	reasonLocal
	reasonShutdown
)

var errCancelInvite = errors.New("sip: cancel INVITE")

// run is the leg's goroutine: it sets up media, sends the INVITE, waits for
// the answer and then for the end of the call.
func (l *Leg) run() {
	defer l.ua.legWG.Done()
	defer close(l.done)
	defer l.ua.removeLeg(l)

	sess, err := l.mf.NewSession()
	if err != nil {
		l.log.Error().Err(err).Msg("RTP session allocation failed")
		l.fail(signalling.CauseMediaFailed, "RTP session: "+err.Error())
		return
	}
	defer func() {
		l.mu.Lock()
		l.endpoint = nil
		l.mu.Unlock()
		if err := sess.Close(); err != nil {
			l.log.Warn().Err(err).Msg("closing RTP session")
		}
	}()

	codecs := l.trunk.codecs()
	offer := Offer{
		SessionID:   rand.Uint64() >> 2,
		Addr:        sess.LocalAddr(),
		Codecs:      codecs,
		DTMFPayload: DefaultDTMFPayloadType,
		PTime:       DefaultPTime,
	}
	offer.SessionVersion = offer.SessionID
	body := offer.Marshal()
	l.mu.Lock()
	l.localSDP = body
	l.mu.Unlock()

	if l.hangupRequested() {
		return
	}
	if l.ua.ctx.Err() != nil {
		l.fail(signalling.CauseShutdown, "gateway shutting down")
		return
	}

	invite := l.buildInvite(body)
	dua := l.ua.dialogs[l.trunk.Transport]
	start := time.Now()

	// Connection set-up (TCP connect, DNS) is bounded by the setup timeout.
	connCtx, connCancel := context.WithTimeout(l.ua.ctx, l.trunk.SetupTimeout)
	dlg, err := dua.WriteInvite(connCtx, invite)
	connCancel()
	if err != nil {
		l.log.Warn().Err(err).Msg("sending INVITE failed")
		if l.ua.ctx.Err() != nil {
			l.fail(signalling.CauseShutdown, "gateway shutting down")
			return
		}
		l.fail(signalling.CauseUnreachable, "SIP INVITE not sent: "+err.Error())
		return
	}
	defer dlg.Close()
	l.log.Info().Str("to", l.number).Str("trunk_host", l.trunk.Host).Msg("INVITE sent")

	ringFor := l.trunk.RingTimeout
	if !l.req.Deadline.IsZero() {
		if until := time.Until(l.req.Deadline); until < ringFor {
			ringFor = max(until, 0)
		}
	}

	waitCtx, cancelWait := context.WithCancelCause(context.Background())
	defer cancelWait(nil)
	firstResp := make(chan struct{})
	var gotResp atomic.Bool
	var reason atomic.Int32
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		l.watch(cancelWait, firstResp, &reason, stopWatch, l.trunk.SetupTimeout-time.Since(start), ringFor-time.Since(start))
	}()

	var early *Answer // SDP from a provisional response, media already started
	opts := sipgo.AnswerOptions{
		Username: l.trunk.Username,
		Password: l.trunk.Password,
		OnResponse: func(r *sipgosip.Response) error {
			if gotResp.CompareAndSwap(false, true) {
				close(firstResp)
			}
			l.log.Debug().Int("status", r.StatusCode).Str("reason", r.Reason).Msg("INVITE response")
			if r.StatusCode == 180 {
				l.post(signalling.Event{Type: signalling.EventRinging})
			}
			if r.StatusCode > 100 && r.StatusCode < 200 && early == nil && len(r.Body()) > 0 {
				// Early media (RFC 3960 gateway model): ringback or an
				// announcement from the network.
				if ans, err := ParseAnswer(r.Body(), codecs); err != nil {
					l.log.Debug().Err(err).Msg("ignoring SDP in provisional response")
				} else if err := l.startMedia(sess, ans); err != nil {
					l.log.Warn().Err(err).Msg("starting early media failed")
				} else {
					early = &ans
					l.post(signalling.Event{Type: signalling.EventProgress})
				}
			}
			if r.StatusCode == 183 && early == nil {
				// Session progress without usable media: all the call
				// can be told is that the far side is alerting.
				l.post(signalling.Event{Type: signalling.EventRinging})
			}
			return nil
		},
	}
	if opts.Username == "" {
		opts.Username = invite.From().Address.User
	}
	for {
		err = dlg.WaitAnswer(waitCtx, opts)
		// sipgo gives up after ten responses in one call; keep waiting,
		// the watch timers still bound the total.
		if err != nil && err.Error() == "more than 10 responses received" && waitCtx.Err() == nil {
			continue
		}
		break
	}
	close(stopWatch)
	<-watchDone

	if err != nil {
		l.handleFailure(dlg, err, waitReason(reason.Load()))
		return
	}
	l.established(dlg, sess, codecs, early)
}

// watch runs the setup and ring timers and turns hangup or shutdown
// requests into cancelling the wait for an answer. Before any response has
// arrived a CANCEL may not be sent (RFC 3261 section 9.1), so a hangup then
// waits for the first response, at most until the setup timer, and only
// stops retransmitting the INVITE if none comes.
func (l *Leg) watch(cancel context.CancelCauseFunc, firstResp <-chan struct{}, reason *atomic.Int32, stop <-chan struct{}, setup, ring time.Duration) {
	setupT := time.NewTimer(max(setup, 0))
	defer setupT.Stop()
	ringT := time.NewTimer(max(ring, 0))
	defer ringT.Stop()
	setupC := setupT.C
	hang, shut := l.hangupCh, l.ua.ctx.Done()
	responded := false
	pending := reasonNone
	want := func(r waitReason) bool {
		if pending == reasonNone {
			pending = r
			reason.Store(int32(r))
		}
		if responded {
			cancel(errCancelInvite)
			return true
		}
		return false
	}
	for {
		select {
		case <-stop:
			return
		case <-firstResp:
			firstResp = nil
			responded = true
			setupT.Stop()
			setupC = nil
			if pending != reasonNone {
				cancel(errCancelInvite)
				return
			}
		case <-setupC:
			if pending == reasonNone {
				pending = reasonUnreachable
				reason.Store(int32(pending))
			}
			cancel(sipgo.WaitAnswerForceCancelErr)
			return
		case <-ringT.C:
			if want(reasonNoAnswer) {
				return
			}
		case <-hang:
			hang = nil
			if want(reasonLocal) {
				return
			}
		case <-shut:
			shut = nil
			if want(reasonShutdown) {
				return
			}
		}
	}
}

// handleFailure deals with WaitAnswer failing: a non-2xx final response,
// a cancelled wait, a transport failure. A 2xx that raced with our CANCEL
// is acknowledged and ended with BYE.
func (l *Leg) handleFailure(dlg *sipgo.DialogClientSession, err error, why waitReason) {
	l.noteFinalResponse(err)
	if res := dlg.InviteResponse; res != nil && res.IsSuccess() {
		l.log.Info().Msg("200 OK crossed our CANCEL; sending ACK and BYE")
		l.ackAndBye(dlg)
	}
	if l.hangupRequested() || why == reasonLocal {
		return
	}
	var dr *sipgo.ErrDialogResponse
	if errors.As(err, &dr) && dr.Res != nil {
		code := dr.Res.StatusCode
		detail := fmt.Sprintf("SIP %d %s", code, dr.Res.Reason)
		switch {
		case why == reasonShutdown:
			l.fail(signalling.CauseShutdown, detail)
		case why == reasonNoAnswer && code == 487:
			l.fail(signalling.CauseNoAnswer, "no answer within the ring timeout")
		default:
			l.fail(signalling.CauseFromSIP(code), detail)
		}
		return
	}
	switch why {
	case reasonNoAnswer:
		l.fail(signalling.CauseNoAnswer, "no answer within the ring timeout")
	case reasonShutdown:
		l.fail(signalling.CauseShutdown, "gateway shutting down")
	case reasonUnreachable:
		l.fail(signalling.CauseUnreachable, fmt.Sprintf("no response from %s:%d within %s", l.trunk.Host, l.trunk.Port, l.trunk.SetupTimeout))
	default:
		l.log.Warn().Err(err).Msg("INVITE failed")
		l.fail(signalling.CauseUnreachable, "SIP transaction failed: "+err.Error())
	}
}

// established handles a 2xx: SDP answer, media start, ACK, then waits for
// the end of the call.
func (l *Leg) established(dlg *sipgo.DialogClientSession, sess MediaSession, codecs []Codec, early *Answer) {
	l.mu.Lock()
	l.dlg = dlg
	l.mu.Unlock()
	l.ua.setDialog(dlg.ID, l)

	ans, perr := ParseAnswer(dlg.InviteResponse.Body(), codecs)
	switch {
	case early != nil && (perr != nil || ans != *early):
		// Media already runs on the early SDP; the session cannot be
		// restarted, so keep it (the usual case is an identical answer).
		if perr == nil {
			l.log.Warn().Str("early_remote", early.Remote.String()).Str("remote", ans.Remote.String()).
				Msg("2xx SDP differs from early media SDP; keeping early media parameters")
		}
		ans = *early
	case early != nil:
	case perr != nil:
		l.log.Warn().Err(perr).Msg("unusable SDP answer")
		l.ackAndBye(dlg)
		l.fail(signalling.CauseIncompatible, "SDP answer: "+perr.Error())
		return
	default:
		if err := l.startMedia(sess, ans); err != nil {
			l.log.Error().Err(err).Msg("starting RTP failed")
			l.ackAndBye(dlg)
			l.fail(signalling.CauseMediaFailed, "RTP start: "+err.Error())
			return
		}
	}
	ackCtx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	err := dlg.Ack(ackCtx)
	cancel()
	if err != nil {
		l.log.Warn().Err(err).Msg("sending ACK failed")
		l.bye(dlg)
		l.fail(signalling.CauseUnreachable, "SIP ACK not sent: "+err.Error())
		return
	}

	if l.hangupRequested() {
		l.bye(dlg)
		return
	}
	l.log.Info().Str("codec", ans.Codec.Name).Uint8("pt", ans.Codec.PayloadType).Str("remote_rtp", ans.Remote.String()).
		Str("direction", ans.Direction.String()).Msg("SIP leg answered")
	l.post(signalling.Event{Type: signalling.EventAnswered})

	select {
	case <-l.byeCh:
		l.fail(signalling.CauseNormal, "SIP BYE")
	case <-l.hangupCh:
		l.bye(dlg)
	case <-l.ua.ctx.Done():
		l.bye(dlg)
		l.fail(signalling.CauseShutdown, "gateway shutting down")
	case <-dlg.Context().Done():
		select {
		case <-l.byeCh:
			l.fail(signalling.CauseNormal, "SIP BYE")
		default:
			cause := context.Cause(dlg.Context())
			l.log.Warn().AnErr("cause", cause).Msg("SIP dialog ended")
			detail := "SIP dialog ended"
			if cause != nil {
				detail += ": " + cause.Error()
			}
			l.fail(signalling.CauseProtocolError, detail)
		}
	}
}

// startMedia starts the RTP session on the far side's SDP and publishes its
// endpoint for Audio.
func (l *Leg) startMedia(sess MediaSession, ans Answer) error {
	remote := ans.Remote
	if !ans.Direction.Receives() {
		remote = netip.AddrPort{} // the far side wants no audio from us
	}
	var dtmfPT uint8
	if ans.HasDTMF {
		dtmfPT = ans.DTMFPayload
	}
	if err := sess.Start(remote, ans.Codec.Name, ans.Codec.PayloadType, dtmfPT); err != nil {
		return err
	}
	ep := sess.Endpoint()
	watchDTMF(ep, l.postDTMF)
	l.mu.Lock()
	l.endpoint = ep
	l.desc.ep = ep
	l.mu.Unlock()
	return nil
}

// ackAndBye acknowledges a 2xx we do not want and ends the dialog.
func (l *Leg) ackAndBye(dlg *sipgo.DialogClientSession) {
	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	err := dlg.Ack(ctx)
	cancel()
	if err != nil {
		l.log.Warn().Err(err).Msg("sending ACK failed")
		return
	}
	l.bye(dlg)
}

// bye sends BYE and waits a bounded time for its response.
func (l *Leg) bye(dlg *sipgo.DialogClientSession) {
	select {
	case <-l.byeCh:
		return // the far side already ended the dialog
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	defer cancel()
	if err := dlg.Bye(ctx); err != nil {
		l.log.Warn().Err(err).Msg("BYE failed")
		return
	}
	l.log.Info().Msg("BYE sent")
}

// onBye handles a BYE from the far side (server goroutine).
func (l *Leg) onBye(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
	l.mu.Lock()
	dlg := l.dlg
	l.mu.Unlock()
	if dlg == nil {
		_ = tx.Respond(sipgosip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	l.byeOnce.Do(func() { close(l.byeCh) })
	if err := dlg.ReadBye(req, tx); err != nil {
		l.log.Warn().Err(err).Msg("answering BYE failed")
	}
}

// onReinvite answers a re-INVITE (session refresh) with our current SDP.
func (l *Leg) onReinvite(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
	l.mu.Lock()
	dlg, body, ep := l.dlg, l.localSDP, l.endpoint
	l.mu.Unlock()
	if dlg == nil {
		_ = tx.Respond(sipgosip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	if ep != nil && len(req.Body()) > 0 {
		media.NoteHold(ep, string(req.Body())) // a hold pauses the dead-media watch
	}
	if err := dlg.ReadRequest(req, tx); err != nil {
		_ = tx.Respond(sipgosip.NewResponseFromRequest(req, 500, "Server Internal Error", nil))
		return
	}
	if len(req.Body()) > 0 {
		if ans, err := ParseAnswer(req.Body(), l.trunk.codecs()); err == nil && ans.Remote.IsValid() {
			l.log.Debug().Str("remote_rtp", ans.Remote.String()).Msg("re-INVITE offer (media unchanged)")
		}
	}
	res := sipgosip.NewResponseFromRequest(req, 200, "OK", body)
	ct := sipgosip.ContentTypeHeader(sdpMimeType)
	res.AppendHeader(&ct)
	contact := l.ua.contactHeader(l.trunk.Transport)
	res.AppendHeader(&contact)
	if err := tx.Respond(res); err != nil {
		l.log.Warn().Err(err).Msg("answering re-INVITE failed")
	}
}

// buildInvite builds the initial INVITE (RFC 3261 section 8.1.1).
func (l *Leg) buildInvite(body []byte) *sipgosip.Request {
	t := &l.trunk
	recipient := sipgosip.Uri{
		Scheme:    "sip",
		User:      l.number,
		Host:      hostForURI(t.Host),
		Port:      t.Port,
		UriParams: sipgosip.NewParams(),
	}
	recipient.UriParams.Add("transport", t.Transport)
	req := sipgosip.NewRequest(sipgosip.INVITE, recipient)
	req.SetTransport(strings.ToUpper(t.Transport))

	from := &sipgosip.FromHeader{
		DisplayName: displayName(l.req.From.DisplayName),
		Address:     sipgosip.Uri{Scheme: "sip", User: t.fromUser(l.req.From), Host: hostForURI(t.FromDomain)},
		Params:      sipgosip.NewParams(),
	}
	from.Params.Add("tag", sipgosip.GenerateTagN(16))
	to := &sipgosip.ToHeader{
		Address: sipgosip.Uri{Scheme: "sip", User: l.number, Host: hostForURI(t.Host)},
		Params:  sipgosip.NewParams(),
	}
	callID := sipgosip.CallIDHeader(l.sipCall)
	contact := l.ua.contactHeader(t.Transport)
	ct := sipgosip.ContentTypeHeader(sdpMimeType)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&contact)
	req.AppendHeader(l.ua.userAgentHeader())
	req.AppendHeader(sipgosip.NewHeader("Allow", allowMethods))
	req.AppendHeader(&ct)
	req.SetBody(body)
	return req
}
