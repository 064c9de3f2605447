// Package sip is the SIP leg: a sipgo user agent that places calls to SIP
// trunks (INVITE, digest auth, CANCEL, BYE, re-INVITE refresh) and the SDP
// offer/answer that sets up the RTP media for them.
package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	sipgosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"
)

// DefaultUserAgent is the User-Agent header value unless Config says otherwise.
const DefaultUserAgent = "matrix-gateway"

// Config configures the UA's listening sockets and identity.
type Config struct {
	// ListenAddr is the local "ip:port" the UA listens on for both UDP and
	// TCP. Port 0 picks one free port for both. Default "0.0.0.0:5060".
	ListenAddr string
	// AdvertiseIP is the IP put in Via and Contact. Default: the listen IP,
	// which then must not be unspecified.
	AdvertiseIP netip.Addr
	// UserAgent is the User-Agent header value. Default DefaultUserAgent.
	UserAgent string
}

// Option configures a UA.
type Option func(*UA) error

// WithLogger sets the logger; the default discards everything.
func WithLogger(l zerolog.Logger) Option {
	return func(u *UA) error {
		u.log = l
		return nil
	}
}

// WithInviteHandler sets the handler for out-of-dialog INVITEs (inbound
// calls). Without one the UA refuses them with 403.
func WithInviteHandler(h func(req *sipgosip.Request, tx sipgosip.ServerTransaction)) Option {
	return func(u *UA) error {
		u.inboundInvite = h
		return nil
	}
}

// UA is the gateway's SIP user agent: one sipgo stack listening on UDP and
// TCP, used by every trunk's Dialer. It is safe for concurrent use.
type UA struct {
	cfg Config
	log zerolog.Logger

	ua  *sipgo.UserAgent
	srv *sipgo.Server

	udpConn net.PacketConn
	tcpLn   net.Listener
	laddr   netip.AddrPort // actual listen address (same port for UDP and TCP)
	contact netip.AddrPort // advertised IP and listen port

	dialogs map[string]*sipgo.DialogUA // by transport: "udp", "tcp"

	inboundInvite func(req *sipgosip.Request, tx sipgosip.ServerTransaction)
	inboundState

	ctx    context.Context // cancelled on Close; parent of every leg
	cancel context.CancelFunc

	mu     sync.Mutex
	legs   map[*Leg]struct{}
	byDlg  map[string]*Leg // established dialogs by sipgo dialog ID
	closed bool

	legWG   sync.WaitGroup // leg goroutines
	serveWG sync.WaitGroup // listener goroutines

	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, opens the UDP and TCP listeners and starts serving.
func New(cfg Config, opts ...Option) (*UA, error) {
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "0.0.0.0:5060"
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	lap, err := netip.ParseAddrPort(cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("sip: listen address %q: %w", cfg.ListenAddr, err)
	}
	if !cfg.AdvertiseIP.IsValid() {
		if lap.Addr().IsUnspecified() {
			return nil, fmt.Errorf("sip: listen address %s is unspecified: set an advertise IP", lap)
		}
		cfg.AdvertiseIP = lap.Addr()
	}
	if cfg.AdvertiseIP.IsUnspecified() {
		return nil, errors.New("sip: advertise IP must not be unspecified")
	}
	u := &UA{
		cfg:     cfg,
		log:     zerolog.Nop(),
		legs:    make(map[*Leg]struct{}),
		byDlg:   make(map[string]*Leg),
		dialogs: make(map[string]*sipgo.DialogUA),
	}
	for _, o := range opts {
		if err := o(u); err != nil {
			return nil, err
		}
	}
	u.log = u.log.With().Str("component", "sip").Logger()

	if err := u.listen(lap); err != nil {
		return nil, err
	}
	u.contact = netip.AddrPortFrom(cfg.AdvertiseIP.Unmap(), u.laddr.Port())

	// sipgo logs through slog; route it to our logger, warnings and up only
	// (its debug output can include whole messages).
	slogger := slog.New(zerolog.NewSlogHandler(u.log.With().Str("lib", "sipgo").Logger().Level(zerolog.WarnLevel)))
	u.ua, err = sipgo.NewUA(
		sipgo.WithUserAgent(cfg.UserAgent),
		sipgo.WithUserAgentHostname(cfg.AdvertiseIP.String()),
		sipgo.WithUserAgentTransportLayerOptions(sipgosip.WithTransportLayerLogger(slogger)),
		sipgo.WithUserAgentTransactionLayerOptions(sipgosip.WithTransactionLayerLogger(slogger)),
	)
	if err != nil {
		u.closeListeners()
		return nil, fmt.Errorf("sip: user agent: %w", err)
	}
	u.srv, err = sipgo.NewServer(u.ua, sipgo.WithServerLogger(slogger))
	if err != nil {
		u.closeListeners()
		_ = u.ua.Close()
		return nil, fmt.Errorf("sip: server: %w", err)
	}
	for _, tr := range []string{"udp", "tcp"} {
		copts := []sipgo.ClientOption{
			sipgo.WithClientLogger(slogger),
			sipgo.WithClientHostname(cfg.AdvertiseIP.String()),
			sipgo.WithClientPort(int(u.laddr.Port())),
		}
		if tr == "udp" {
			// Send from the listening socket so that responses and
			// in-dialog requests come back to it.
			copts = append(copts, sipgo.WithClientConnectionAddr(u.udpConn.LocalAddr().String()))
		}
		cli, err := sipgo.NewClient(u.ua, copts...)
		if err != nil {
			u.closeListeners()
			_ = u.ua.Close()
			return nil, fmt.Errorf("sip: client: %w", err)
		}
		u.dialogs[tr] = &sipgo.DialogUA{Client: cli, ContactHDR: u.contactHeader(tr)}
	}
	u.routes()

	u.ctx, u.cancel = context.WithCancel(context.Background())
	u.serveWG.Add(2)
	go func() {
		defer u.serveWG.Done()
		_ = u.srv.ServeUDP(u.udpConn)
	}()
	go func() {
		defer u.serveWG.Done()
		_ = u.srv.ServeTCP(u.tcpLn)
	}()
	// Requests on UDP are sent from the listening socket, which sipgo only
	// knows once ServeUDP has registered it: wait for that (bounded).
	for i := 0; i < 2000 && u.ua.TransportLayer().Pool("udp").Size() == 0; i++ {
		time.Sleep(time.Millisecond)
	}
	u.log.Info().Str("listen", u.laddr.String()).Str("contact", u.contact.String()).Msg("SIP user agent listening on UDP and TCP")
	return u, nil
}

// listen opens UDP and TCP on the same port; port 0 picks a free one.
func (u *UA) listen(lap netip.AddrPort) error {
	const tries = 20
	var lastErr error
	for i := 0; i < tries; i++ {
		pc, err := net.ListenPacket("udp", lap.String())
		if err != nil {
			return fmt.Errorf("sip: listen udp %s: %w", lap, err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", netip.AddrPortFrom(lap.Addr(), uint16(port)).String())
		if err != nil {
			_ = pc.Close()
			lastErr = err
			if lap.Port() != 0 {
				break
			}
			continue
		}
		u.udpConn, u.tcpLn = pc, ln
		u.laddr = netip.AddrPortFrom(lap.Addr(), uint16(port))
		return nil
	}
	return fmt.Errorf("sip: listen tcp: %w", lastErr)
}

func (u *UA) closeListeners() {
	if u.udpConn != nil {
		_ = u.udpConn.Close()
	}
	if u.tcpLn != nil {
		_ = u.tcpLn.Close()
	}
}

func (u *UA) contactHeader(transport string) sipgosip.ContactHeader {
	uri := sipgosip.Uri{
		Scheme: "sip",
		User:   "gateway",
		Host:   hostForURI(u.contact.Addr().String()),
		Port:   int(u.contact.Port()),
	}
	if transport == "tcp" {
		uri.UriParams = sipgosip.NewParams()
		uri.UriParams.Add("transport", "tcp")
	}
	return sipgosip.ContactHeader{Address: uri}
}

// ListenAddr returns the address the UA listens on for UDP and TCP.
func (u *UA) ListenAddr() netip.AddrPort { return u.laddr }

// Close ends every leg (BYE or CANCEL, EventHangup with CauseShutdown),
// stops listening and waits for the UA's goroutines. It is idempotent.
func (u *UA) Close() error {
	u.closeOnce.Do(func() {
		u.mu.Lock()
		u.closed = true
		u.mu.Unlock()
		u.cancel()

		// Give legs a moment to tell their peers, then pull the stack away
		// from under any that are still waiting for a response.
		legsDone := make(chan struct{})
		go func() {
			u.legWG.Wait()
			close(legsDone)
		}()
		select {
		case <-legsDone:
		case <-time.After(shutdownGrace):
		}
		u.closeListeners()
		u.closeErr = u.ua.Close()
		<-legsDone
		u.serveWG.Wait()
		u.log.Info().Msg("SIP user agent closed")
	})
	return u.closeErr
}

// shutdownGrace bounds how long Close lets legs send BYE/CANCEL.
const shutdownGrace = 3 * time.Second

// addLeg registers a new leg; it fails once the UA is closed.
func (u *UA) addLeg(l *Leg) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return ErrClosed
	}
	u.legs[l] = struct{}{}
	u.legWG.Add(1)
	return nil
}

func (u *UA) removeLeg(l *Leg) {
	u.mu.Lock()
	delete(u.legs, l)
	for id, x := range u.byDlg {
		if x == l {
			delete(u.byDlg, id)
		}
	}
	u.mu.Unlock()
}

func (u *UA) setDialog(id string, l *Leg) {
	u.mu.Lock()
	u.byDlg[id] = l
	u.mu.Unlock()
}

func (u *UA) legForRequest(req *sipgosip.Request) *Leg {
	id, err := sipgosip.DialogIDFromRequestUAC(req)
	if err != nil {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.byDlg[id]
}

// ErrClosed is returned when dialling on a closed UA.
var ErrClosed = errors.New("sip: user agent closed")

// routes installs the server-side request handlers.
func (u *UA) routes() {
	u.srv.OnOptions(func(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
		res := sipgosip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sipgosip.NewHeader("Allow", allowMethods))
		res.AppendHeader(sipgosip.NewHeader("Accept", "application/sdp"))
		_ = tx.Respond(res)
	})
	u.srv.OnBye(func(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
		if l := u.legForRequest(req); l != nil {
			l.onBye(req, tx)
			return
		}
		if l := u.inboundForRequest(req); l != nil {
			l.onInDialog(req, tx)
			return
		}
		_ = tx.Respond(sipgosip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	})
	u.srv.OnInvite(func(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
		if to := req.To(); to != nil && to.Params.Has("tag") {
			if l := u.legForRequest(req); l != nil {
				l.onReinvite(req, tx)
				return
			}
			if l := u.inboundForRequest(req); l != nil {
				l.onInDialog(req, tx)
				return
			}
			_ = tx.Respond(sipgosip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
			return
		}
		u.onInvite(req, tx)
	})
	u.srv.OnAck(func(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
		// ACK for our 2xx to an inbound INVITE; for a re-INVITE nothing to do.
		if l := u.inboundForRequest(req); l != nil {
			l.onInDialog(req, tx)
		}
	})
	u.srv.OnInfo(u.onInfo)
	u.srv.OnCancel(func(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
		_ = tx.Respond(sipgosip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	})
}

const allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"

// userAgentHeader returns the User-Agent header.
func (u *UA) userAgentHeader() sipgosip.Header {
	return sipgosip.NewHeader("User-Agent", u.cfg.UserAgent)
}
