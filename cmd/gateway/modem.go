package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/modem"
	"github.com/matrix-gateway/gateway/signalling"
)

// modemBackend is the GSM modem, the link estimator, the IP-first/GSM
// fallback router and the dialler D-Bus API of `gateway run`. A nil
// *modemBackend (modem.enabled false) is valid: its methods do nothing.
type modemBackend struct {
	log     zerolog.Logger
	cfg     *configs.Config
	client  *modem.Client
	links   *signalling.LinkEstimator
	router  *signalling.FallbackRouter // calls from Matrix users: GSM legs carry audio per modem.audio
	phone   *signalling.FallbackRouter // the dialler API: GSM legs stay control-only (the phone routes their audio)
	dialler *modem.Dialler
	bus     *dbus.Conn
	audio   *modem.AudioConfig // GSM audio for calls bridged to Matrix; nil: control-only
	inbound func(*modem.Call)  // incoming GSM calls to a Matrix user; nil: to the dialler API
	matrix  signalling.Dialer  // calls to Matrix users (routes \"matrix:<user>\"), set once the connector exists
}

// newModemBackend builds the backend when the configuration enables it;
// trunks maps trunk names to their SIP dialers.
func newModemBackend(cfg *configs.Config, log zerolog.Logger, trunks map[string]signalling.Dialer) (*modemBackend, error) {
	mc := cfg.Modem
	if !mc.Enabled {
		return nil, nil
	}
	log = log.With().Str("leg", "modem").Logger()
	m := &modemBackend{log: log, cfg: cfg}
	var err error
	m.client, err = modem.New(modem.Config{Bus: mc.Bus, Modem: mc.Device, Enable: mc.EnableModem, Log: log})
	if err != nil {
		return nil, err
	}
	probes := []signalling.LinkProbe{{Name: "homeserver", Probe: httpProbe(strings.TrimRight(cfg.Homeserver.URL, "/") + "/_matrix/client/versions")}}
	for _, t := range cfg.SIP.Trunks {
		probes = append(probes, signalling.LinkProbe{Name: "trunk:" + t.Name, Probe: sipProbe(t.Transport, net.JoinHostPort(t.Host, strconv.Itoa(t.Port)))})
	}
	m.links, err = signalling.NewLinkEstimator(signalling.LinkConfig{Probes: probes, Interval: mc.Links.ProbeInterval, Timeout: mc.Links.ProbeTimeout, Log: log})
	if err != nil {
		m.close()
		return nil, err
	}
	var audio *modem.AudioConfig
	if mc.Audio.Device != "" {
		audio = &modem.AudioConfig{Device: mc.Audio.Device, Rate: mc.Audio.Rate, Log: log}
		log.Info().Str("device", mc.Audio.Device).Int("rate", mc.Audio.Rate).Msg("GSM calls from Matrix carry audio")
	}
	m.audio = audio
	if m.router, err = m.newRouter(trunks, audio); err != nil {
		m.close()
		return nil, err
	}
	if m.phone, err = m.newRouter(trunks, nil); err != nil {
		m.close()
		return nil, err
	}
	return m, nil
}

// newRouter builds the IP-first/GSM-fallback router; audio configures the
// GSM legs' audio (nil: control-only).
func (m *modemBackend) newRouter(trunks map[string]signalling.Dialer, audio *modem.AudioConfig) (*signalling.FallbackRouter, error) {
	mc := m.cfg.Modem
	emergency := mc.IsEmergency
	gsm := signalling.RouteCandidate{Name: "modem", Dialer: &modem.Dialer{Client: m.client, Audio: audio},
		Available: func() bool { return m.client.Status().Registered() }}
	sos := signalling.RouteCandidate{Name: "modem", Dialer: &modem.Dialer{Client: m.client, Emergency: emergency, Audio: audio}}
	cand := func(via string) signalling.RouteCandidate {
		if user, ok := strings.CutPrefix(via, "matrix:"); ok {
			return signalling.RouteCandidate{Name: via, Dialer: &matrixUserDialer{m: m, user: user}, IP: true,
				Links: []string{"homeserver"}, MaxRTT: mc.Links.MaxRTT, MaxLoss: float64(mc.Links.MaxLossPercent) / 100}
		}
		if name, ok := strings.CutPrefix(via, "sip:"); ok {
			return signalling.RouteCandidate{Name: via, Dialer: trunks[name], IP: true,
				Links: []string{"homeserver", "trunk:" + name}, MaxRTT: mc.Links.MaxRTT, MaxLoss: float64(mc.Links.MaxLossPercent) / 100}
		}
		return gsm
	}
	var routes []signalling.PatternRoute
	if len(mc.Routes) > 0 {
		for i, r := range mc.Routes {
			pr := signalling.PatternRoute{Name: fmt.Sprintf("modem.routes[%d]", i), Match: matcher(r.Numbers)}
			for _, via := range r.Via {
				pr.Candidates = append(pr.Candidates, cand(via))
			}
			routes = append(routes, pr)
		}
	} else {
		// Each trunk for the numbers it serves, then the modem; the modem alone for the rest.
		for _, t := range m.cfg.SIP.Trunks {
			routes = append(routes, signalling.PatternRoute{Name: "sip:" + t.Name, Match: matcher(t.Numbers),
				Candidates: []signalling.RouteCandidate{cand("sip:" + t.Name), gsm}})
		}
		routes = append(routes, signalling.PatternRoute{Name: "modem", Candidates: []signalling.RouteCandidate{gsm}})
	}
	return signalling.NewFallbackRouter(signalling.FallbackConfig{
		Routes: routes, Links: m.links, Emergency: emergency, EmergencyRoute: &sos,
		SetupTimeout: mc.IPSetupTimeout, OnRoute: m.onRoute, Log: m.log,
	})
}

// matcher matches numbers against configuration patterns; none matches all.
func matcher(patterns []string) func(string) bool {
	if len(patterns) == 0 {
		return nil
	}
	return func(n string) bool {
		for _, p := range patterns {
			if pat, err := signalling.CompilePattern(p); err == nil && pat.Match(n) {
				return true
			}
		}
		return false
	}
}

func (m *modemBackend) onRoute(id signalling.CallID, route, reason string) {
	if d := m.dialler; d != nil {
		d.OnRoute(id, route, reason)
	}
}

// routerOr returns the fallback router, or r when the backend is off.
func (m *modemBackend) routerOr(r signalling.Router) signalling.Router {
	if m == nil {
		return r
	}
	return m.router
}

// start probes the links once and keeps probing, and exports the dialler API.
func (m *modemBackend) start(ctx context.Context) error {
	if m == nil {
		return nil
	}
	m.links.Start(ctx)
	for _, s := range m.links.Statuses() {
		m.log.Info().Str("link", s.Name).Bool("up", s.Up).Dur("rtt", s.RTT).Str("error", s.Err).Msg("link measured")
	}
	st := m.client.Status()
	m.log.Info().Bool("present", st.Present).Bool("registered", st.Registered()).Str("modem", string(st.Path)).
		Stringer("access", st.AccessTech).Uint32("signal", st.Signal).Msg("modem backend started")
	dc := m.cfg.Modem.Dialler
	// Incoming GSM calls ring a Matrix user when modem.incoming_user says so;
	// set after the dialler, which would otherwise take them.
	defer func() {
		if m.inbound != nil {
			m.client.OnIncoming(m.inbound)
			m.log.Info().Str("user", m.cfg.Modem.IncomingUser).Msg("incoming GSM calls ring a Matrix user")
		}
	}()
	if !dc.Enabled {
		return nil
	}
	var err error
	if m.bus, err = modem.ConnectBus(dc.Bus); err != nil {
		return fmt.Errorf("modem.dialler.bus: %w", err)
	}
	cc := m.cfg.Phone.DefaultCountryCode
	m.dialler, err = modem.NewDialler(modem.DiallerConfig{
		Conn: m.bus, Router: m.phone, Client: m.client, Emergency: m.cfg.Modem.IsEmergency,
		Normalize: func(n string) (string, error) { return signalling.Normalize(n, cc) },
		From:      signalling.Party{Number: m.cfg.Authorization.DefaultCallerID, DisplayName: "phone"},
		Log:       m.log,
		LocalAudio: func() *modem.AudioConfig {
			if dc.AudioDevice == "" {
				return nil
			}
			return &modem.AudioConfig{Device: dc.AudioDevice, Rate: dc.AudioRate, Log: m.log}
		}(),
	})
	if err != nil {
		return err
	}
	m.log.Info().Str("bus", dc.Bus).Str("name", modem.DiallerName).Msg("dialler API exported")
	return nil
}

// close stops the dialler, the prober and the modem client.
func (m *modemBackend) close() {
	if m == nil {
		return
	}
	if m.dialler != nil {
		m.dialler.Close()
	}
	if m.bus != nil {
		_ = m.bus.Close()
	}
	if m.links != nil {
		m.links.Close()
	}
	if m.client != nil {
		_ = m.client.Close()
	}
}

// httpProbe checks the homeserver: any HTTP response means reachable.
func httpProbe(url string) func(context.Context) error {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode >= 500 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
}

// sipProbe checks a trunk with a SIP OPTIONS request: any response means
// reachable (RFC 3261 section 11).
func sipProbe(transport, addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		network := "udp"
		if transport == "tcp" {
			network = "tcp"
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		var rnd [8]byte
		_, _ = rand.Read(rnd[:])
		tag := hex.EncodeToString(rnd[:])
		local := conn.LocalAddr().String()
		proto := strings.ToUpper(network)
		msg := "OPTIONS sip:" + addr + " SIP/2.0\r\n" +
			"Via: SIP/2.0/" + proto + " " + local + ";branch=z9hG4bK" + tag + ";rport\r\n" +
			"Max-Forwards: 70\r\nFrom: <sip:probe@" + local + ">;tag=" + tag + "\r\nTo: <sip:" + addr + ">\r\n" +
			"Call-ID: " + tag + "@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
		if _, err := conn.Write([]byte(msg)); err != nil {
			return err
		}
		buf := make([]byte, 2048)
		n, err := conn.Read(buf)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(string(buf[:n]), "SIP/2.0 ") {
			return errors.New("not a SIP response")
		}
		return nil
	}
}

// routeIncoming makes incoming GSM calls ring modem.incoming_user's Matrix
// clients through toMatrix (from the caller's ghost, in their DM), with the
// modem's audio bridged once the user answers. No-op when the backend is off
// or no incoming user is configured.
func (m *modemBackend) routeIncoming(mgr *signalling.Manager, toMatrix signalling.Dialer) {
	if m == nil {
		return
	}
	m.matrix = toMatrix
	if m.cfg.Modem.IncomingUser == "" {
		return
	}
	user, cc, ring := m.cfg.Modem.IncomingUser, m.cfg.Phone.DefaultCountryCode, m.cfg.Inbound.RingTimeout
	m.inbound = func(k *modem.Call) {
		go func() {
			from := signalling.Party{Number: k.Number()}
			if n, err := signalling.Normalize(k.Number(), cc); err == nil {
				from.Number = n
			}
			log := m.log.With().Str("from", from.Number).Str("to_user", user).Logger()
			_, err := mgr.Originate(context.Background(), signalling.OriginateRequest{
				From:      from,
				To:        signalling.Party{MatrixUser: user},
				Direction: signalling.DirectionToMatrix,
				Deadline:  time.Now().Add(ring),
				Inbound:   true,
				Dialer:    toMatrix,
				Log:       &log,
				NewInbound: func(c *signalling.Call) (signalling.Leg, error) {
					return modem.NewLeg(k, c, modem.WithAudio(m.audio)), nil
				},
			})
			if err != nil {
				log.Warn().Err(err).Msg("incoming GSM call refused")
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = k.Hangup(ctx)
			}
		}()
	}
}

// matrixUserDialer is the route "matrix:<user>": a Matrix call to that user
// (from the caller's ghost) for a number the routes send to them.
type matrixUserDialer struct {
	m    *modemBackend
	user string
}

// Dial implements signalling.Dialer.
func (d *matrixUserDialer) Dial(ctx context.Context, req signalling.DialRequest, p signalling.Poster) (signalling.Leg, error) {
	if d.m.matrix == nil {
		return nil, signalling.NewCauseError(signalling.CauseUnreachable, "the Matrix connector is not running", nil)
	}
	req.To.MatrixUser = d.user
	return d.m.matrix.Dial(ctx, req, p)
}
