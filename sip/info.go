package sip

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	sipgosip "github.com/emiago/sipgo/sip"

	"github.com/matrix-gateway/gateway/media"
)

// SIP INFO DTMF (application/dtmf-relay, the de-facto format of Cisco and
// Asterisk): the fallback toward trunks that did not negotiate
// telephone-event, and accepted from any trunk.

// Content types of DTMF in SIP INFO bodies.
const (
	DTMFRelayType = "application/dtmf-relay"
	DTMFType      = "application/dtmf"
)

// infoTimeout bounds one INFO transaction.
const infoTimeout = 4 * time.Second

// ErrBadDTMFInfo is returned for an INFO body that carries no digit.
var ErrBadDTMFInfo = errors.New("sip: INFO carries no DTMF digit")

// DTMFInfoBody renders an application/dtmf-relay body:
// "Signal=5\r\nDuration=160\r\n" (duration in milliseconds).
func DTMFInfoBody(digit rune, d time.Duration) []byte {
	return []byte(fmt.Sprintf("Signal=%c\r\nDuration=%d\r\n", digit, d.Milliseconds()))
}

// ParseDTMFInfo reads a digit and its duration from an INFO body of
// content type ct: application/dtmf-relay ("Signal=" and "Duration=" lines,
// case-insensitive) or application/dtmf (the digit alone). A missing
// duration gives media.DefaultDTMFDuration.
func ParseDTMFInfo(ct string, body []byte) (rune, time.Duration, error) {
	ct = strings.ToLower(strings.TrimSpace(ct))
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = strings.TrimSpace(ct[:i])
	}
	dur := media.DefaultDTMFDuration
	var sig string
	switch ct {
	case DTMFType:
		sig = strings.TrimSpace(string(body))
	case DTMFRelayType:
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), "=")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "signal":
				sig = v
			case "duration":
				if ms, err := strconv.Atoi(v); err == nil && ms > 0 && ms <= 60000 {
					dur = time.Duration(ms) * time.Millisecond
				}
			}
		}
	default:
		return 0, 0, fmt.Errorf("%w: content type %q", ErrBadDTMFInfo, ct)
	}
	if sig == "" {
		return 0, 0, ErrBadDTMFInfo
	}
	// Some senders write the event code ("Signal=10" for '*', 11 for '#').
	if n, err := strconv.Atoi(sig); err == nil && n >= 10 && n <= 15 {
		d, _ := media.DTMFDigit(uint8(n))
		return d, dur, nil
	}
	r := []rune(sig)
	if len(r) != 1 {
		return 0, 0, fmt.Errorf("%w: signal %q", ErrBadDTMFInfo, sig)
	}
	if _, ok := media.DTMFEvent(r[0]); !ok {
		return 0, 0, fmt.Errorf("%w: signal %q", ErrBadDTMFInfo, sig)
	}
	d := r[0]
	if d >= 'a' && d <= 'd' {
		d -= 'a' - 'A'
	}
	return d, dur, nil
}

// newInfo builds an INFO request carrying digit toward target.
func newInfo(target sipgosip.Uri, digit rune, d time.Duration) *sipgosip.Request {
	req := sipgosip.NewRequest(sipgosip.INFO, target)
	ct := sipgosip.ContentTypeHeader(DTMFRelayType)
	req.AppendHeader(&ct)
	req.SetBody(DTMFInfoBody(digit, d))
	return req
}

// infoDoer sends an in-dialog request and waits for its final response
// (sipgo's dialog sessions).
type infoDoer interface {
	Do(ctx context.Context, req *sipgosip.Request) (*sipgosip.Response, error)
}

// sendInfo sends one INFO digit in dialog dlg and checks the answer.
func sendInfo(ctx context.Context, dlg infoDoer, target sipgosip.Uri, digit rune, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, infoTimeout)
	defer cancel()
	res, err := dlg.Do(ctx, newInfo(target, digit, d))
	if err != nil {
		return fmt.Errorf("sip: INFO: %w", err)
	}
	if !res.IsSuccess() {
		return fmt.Errorf("sip: INFO answered %d %s", res.StatusCode, res.Reason)
	}
	return nil
}

// onInfo handles an INFO from a trunk: DTMF is posted to the call of the
// dialog it belongs to; anything else is refused.
func (u *UA) onInfo(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
	respond := func(status int) {
		_ = tx.Respond(sipgosip.NewResponseFromRequest(req, status, reasonPhrase(status), nil))
	}
	var post func(rune, time.Duration)
	if l := u.legForRequest(req); l != nil {
		post = l.postDTMF
	} else if l := u.inboundForRequest(req); l != nil {
		post = l.postDTMF
	}
	if post == nil {
		respond(481)
		return
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	digit, d, err := ParseDTMFInfo(ct, req.Body())
	if err != nil {
		respond(415)
		return
	}
	respond(200)
	post(digit, d)
}
