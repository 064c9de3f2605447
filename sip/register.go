package sip

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	sipgosip "github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

// RegisterConfig describes a trunk that needs the gateway to register
// (RFC 3261 section 10) before it sends calls.
type RegisterConfig struct {
	Trunk     string        // name, for logs and status
	Host      string        // registrar host
	Port      int           // registrar port; default 5060
	Transport string        // "udp" (default) or "tcp"
	User      string        // the address-of-record user part
	Domain    string        // the AOR domain; default Host
	Username  string        // digest user; default User
	Password  string        // digest password; never logged
	Expires   time.Duration // requested binding lifetime; default 1h
	// RetryMin and RetryMax bound the back-off after a failure; defaults
	// 5s and 5m.
	RetryMin, RetryMax time.Duration
}

// RegistrationStatus is a snapshot of a registration.
type RegistrationStatus struct {
	Trunk      string
	Registered bool
	Expires    time.Time // when the current binding ends
	LastError  string
	Failures   int // consecutive failures
}

// Registration keeps one binding alive: it registers, refreshes before the
// binding expires and backs off on failure, until Close unregisters it.
type Registration struct {
	ua     *UA
	cfg    RegisterConfig
	log    zerolog.Logger
	callID string
	cseq   uint32
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	mu     sync.Mutex
	status RegistrationStatus
	notify func(RegistrationStatus)
}

// Register starts keeping a registration alive. notify, if set, is called
// on every status change (for logs and metrics).
func (u *UA) Register(cfg RegisterConfig, notify func(RegistrationStatus)) (*Registration, error) {
	if cfg.Host == "" || cfg.User == "" {
		return nil, fmt.Errorf("sip: registration %q needs a host and a user", cfg.Trunk)
	}
	if cfg.Port == 0 {
		cfg.Port = 5060
	}
	if cfg.Transport == "" {
		cfg.Transport = "udp"
	}
	if cfg.Domain == "" {
		cfg.Domain = cfg.Host
	}
	if cfg.Username == "" {
		cfg.Username = cfg.User
	}
	if cfg.Expires <= 0 {
		cfg.Expires = time.Hour
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 5 * time.Second
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(5*time.Minute, cfg.RetryMin)
	}
	r := &Registration{
		ua: u, cfg: cfg, callID: uuid.NewString(),
		log:    u.log.With().Str("trunk", cfg.Trunk).Str("registrar", fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)).Logger(),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		status: RegistrationStatus{Trunk: cfg.Trunk},
		notify: notify,
	}
	go r.run()
	return r, nil
}

// Status returns the registration's current state.
func (r *Registration) Status() RegistrationStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

func (r *Registration) run() {
	defer close(r.done)
	backoff := r.cfg.RetryMin
	for {
		granted, err := r.register(r.cfg.Expires)
		var wait time.Duration
		r.mu.Lock()
		if err != nil {
			r.status.Registered = false
			r.status.LastError = err.Error()
			r.status.Failures++
			wait, backoff = backoff, min(2*backoff, r.cfg.RetryMax)
			r.log.Warn().Err(err).Dur("retry_in", wait).Msg("registration failed")
		} else {
			r.status.Registered, r.status.LastError, r.status.Failures = true, "", 0
			r.status.Expires = time.Now().Add(granted)
			backoff = r.cfg.RetryMin
			// Refresh well before the binding ends: at half its lifetime, at
			// most 5 minutes before the end.
			wait = max(granted/2, granted-5*time.Minute)
			r.log.Info().Dur("expires", granted).Dur("refresh_in", wait).Msg("registered")
		}
		st := r.status
		r.mu.Unlock()
		if r.notify != nil {
			r.notify(st)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.stop:
			t.Stop()
			return
		}
	}
}

// register sends one REGISTER (answering a digest challenge) and returns
// the lifetime the registrar granted.
func (r *Registration) register(expires time.Duration) (time.Duration, error) {
	timeout := 32 * time.Second // RFC 3261 Timer F
	if expires == 0 {
		timeout = 3 * time.Second // unregistering at shutdown: do not hold it up
	}
	ctx, cancel := context.WithTimeout(r.ua.ctx, timeout)
	defer cancel()
	c := r.cfg
	recipient := sipgosip.Uri{Scheme: "sip", Host: c.Host, Port: c.Port}
	if c.Transport == "tcp" {
		recipient.UriParams = sipgosip.NewParams()
		recipient.UriParams.Add("transport", "tcp")
	}
	req := sipgosip.NewRequest(sipgosip.REGISTER, recipient)
	aor := sipgosip.Uri{Scheme: "sip", User: c.User, Host: c.Domain}
	from := &sipgosip.FromHeader{Address: aor, Params: sipgosip.NewParams()}
	from.Params.Add("tag", uuid.NewString()[:8])
	req.AppendHeader(from)
	req.AppendHeader(&sipgosip.ToHeader{Address: aor, Params: sipgosip.NewParams()})
	contact := r.ua.contactHeader(c.Transport)
	contact.Address.User = c.User
	req.AppendHeader(&contact)
	cid := sipgosip.CallIDHeader(r.callID)
	req.AppendHeader(&cid)
	r.cseq++
	req.AppendHeader(&sipgosip.CSeqHeader{SeqNo: r.cseq, MethodName: sipgosip.REGISTER})
	req.AppendHeader(sipgosip.NewHeader("Expires", strconv.Itoa(int(expires.Seconds()))))
	req.AppendHeader(r.ua.userAgentHeader())
	req.SetTransport(transportName(c.Transport))

	cli := r.ua.dialogs[c.Transport].Client
	res, err := cli.Do(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("no response: %w", err)
	}
	if res.StatusCode == 401 || res.StatusCode == 407 {
		r.cseq++
		req.CSeq().SeqNo = r.cseq
		res, err = cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: c.Username, Password: c.Password})
		if err != nil {
			return 0, fmt.Errorf("authentication: %w", err)
		}
		if cs := req.CSeq(); cs != nil {
			r.cseq = cs.SeqNo
		}
	}
	if !res.IsSuccess() {
		return 0, fmt.Errorf("registrar answered %d %s", res.StatusCode, res.Reason)
	}
	return grantedExpiry(res, expires), nil
}

// grantedExpiry reads the binding lifetime from the 200: the Contact's
// expires parameter, else the Expires header, else what was asked.
func grantedExpiry(res *sipgosip.Response, asked time.Duration) time.Duration {
	if ct := res.Contact(); ct != nil {
		if v, ok := ct.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return time.Duration(n) * time.Second
			}
		}
	}
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(h.Value()); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	}
	return asked
}

func transportName(t string) string {
	if t == "tcp" {
		return "TCP"
	}
	return "UDP"
}

// Close stops refreshing and removes the binding (Expires: 0, best effort).
func (r *Registration) Close() {
	r.once.Do(func() {
		close(r.stop)
		<-r.done
		r.mu.Lock()
		registered := r.status.Registered
		r.mu.Unlock()
		if registered {
			if _, err := r.register(0); err != nil {
				r.log.Debug().Err(err).Msg("unregistering failed")
			}
		}
	})
}
