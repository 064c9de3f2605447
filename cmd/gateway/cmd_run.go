package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/internal/pionlog"
	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
	"github.com/matrix-gateway/gateway/signalling/conference"
	"github.com/matrix-gateway/gateway/signalling/matrix"
	"github.com/matrix-gateway/gateway/signalling/store"
	"github.com/matrix-gateway/gateway/sip"
)

// drainTimeout bounds how long SIGTERM waits for calls to end by themselves.
const drainTimeout = 5 * time.Minute

// runCmd runs the gateway until SIGTERM (drain calls, then stop) or SIGINT
// (hang up every call at once, then stop).
func runCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("c", "gateway.yaml", "configuration file")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	cfg, err := configs.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "gateway run: %v\n", err)
		return 1
	}
	log := newLogger(cfg.Logging, stderr)
	gw, err := build(cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("cannot start the gateway")
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = gw.start(ctx)
	cancel()
	if err != nil {
		log.Error().Err(err).Msg("cannot start the gateway")
		gw.close()
		return 1
	}
	log.Info().Str("version", version).Str("appservice", cfg.AppService.Listen).Str("sip", cfg.SIP.Listen).
		Msg("gateway running")

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	sig := <-sigs
	if sig == syscall.SIGTERM {
		log.Info().Msg("SIGTERM: draining calls (send SIGINT to stop at once)")
		dctx, dcancel := context.WithTimeout(context.Background(), drainTimeout)
		go func() {
			select {
			case <-sigs:
				dcancel()
			case <-dctx.Done():
			}
		}()
		gw.manager.Drain(dctx)
		dcancel()
	} else {
		log.Info().Msg("SIGINT: hanging up every call")
		gw.manager.HangupAll()
	}
	gw.close()
	log.Info().Msg("gateway stopped")
	return 0
}

// newLogger makes the one structured logger the gateway passes around.
func newLogger(c configs.LoggingConfig, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	out := w
	if c.Format != "json" {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger()
}

// gateway holds the running parts, for start and shutdown.
type gateway struct {
	log       zerolog.Logger
	cfg       *configs.Config
	manager   *signalling.Manager
	ua        *sip.UA
	connector *matrix.Connector
	metrics   *http.Server
	registry  *prometheus.Registry
	store     *store.Store // call records, DM rooms
	turn      *embeddedTURN
	modem     *modemBackend // nil unless modem.enabled
	regs      []*sip.Registration
	health    *healthMetrics       // per-call media health at call end
	confs     *conference.Registry // nil unless conferences.enabled
	rtc       *media.WebRTC        // the WebRTC peer factory (owns the shared UDP port)
	hsToken   string               // the homeserver's token, for tests that speak as the homeserver
	closeOnce sync.Once
}

// build wires the gateway from its configuration. Nothing listens yet but the
// SIP UA.
func build(cfg *configs.Config, log zerolog.Logger) (*gateway, error) {
	reg, err := cfg.LoadRegistration()
	if err != nil {
		return nil, err
	}
	if problems := cfg.CheckRegistration(reg); len(problems) > 0 {
		return nil, &configs.ValidationError{Problems: problems}
	}
	g := &gateway{log: log, cfg: cfg, registry: prometheus.NewRegistry(), hsToken: reg.ServerToken}
	g.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	policy, err := signalling.NewPolicy(signalling.PolicyConfig{
		Users:           cfg.Authorization.Users,
		Numbers:         cfg.Authorization.Numbers,
		DenyNumbers:     cfg.Authorization.DenyNumbers,
		MaxCallsPerUser: cfg.Authorization.MaxCallsPerUser,
		MaxCalls:        cfg.Authorization.MaxCalls,
	})
	if err != nil {
		return nil, err
	}

	// Media toward trunks and toward Matrix.
	ports, err := media.NewPortAllocator(cfg.Media.RTPPortMin, cfg.Media.RTPPortMax)
	if err != nil {
		return nil, err
	}
	advertise, _ := cfg.RTPAdvertiseAddr()
	listenIP, err := parseIP(cfg.Media.RTPListenIP)
	if err != nil {
		return nil, fmt.Errorf("media.rtp_listen_ip: %w", err)
	}
	opusOpts := opusOptions(cfg.Media)
	rtpFactory := &rtpMediaFactory{udp: media.UDPConfig{ListenIP: listenIP, AdvertiseIP: advertise, Ports: ports, ReadBuffer: 256 << 10},
		deadMedia: cfg.Media.DeadMediaTimeout, opus: opusOpts}
	var ice []webrtc.ICEServer
	for _, s := range cfg.WebRTC.ICEServers {
		ice = append(ice, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential.Reveal()})
	}
	if g.turn, err = newEmbeddedTURN(cfg, log, g.registry); err != nil {
		return nil, err
	}
	ice = g.turn.iceServers(ice) // the embedded TURN when no ice_servers are configured
	rtc, err := media.NewWebRTC(media.WebRTCConfig{
		ICEServers:       ice,
		UDPPortMin:       uint16(cfg.WebRTC.UDPPortMin),
		UDPPortMax:       uint16(cfg.WebRTC.UDPPortMax),
		NAT1To1IPs:       cfg.WebRTC.NAT1To1IPs,
		IncludeLoopback:  cfg.WebRTC.IncludeLoopbackCandidates,
		ICEGatherTimeout: cfg.WebRTC.ICEGatherTimeout,
		UDPPort:          cfg.WebRTC.UDPPort,
		Loggers:          pionlog.Zerolog(log),
	})
	if err != nil {
		return nil, err
	}
	g.rtc = rtc

	// SIP.
	sipAdvertise, _ := sipAdvertiseIP(cfg)
	g.ua, err = sip.New(sip.Config{ListenAddr: cfg.SIP.Listen, AdvertiseIP: sipAdvertise, UserAgent: cfg.SIP.UserAgent},
		sip.WithLogger(log.With().Str("leg", "sip").Logger()))
	if err != nil {
		return nil, fmt.Errorf("sip: %w", err)
	}
	router := &trunkRouter{cfg: cfg, dialers: map[string]signalling.Dialer{}}
	for i := range cfg.SIP.Trunks {
		t := &cfg.SIP.Trunks[i]
		st := sipTrunk(t, cfg)
		if err := st.Validate(); err != nil {
			g.close()
			return nil, fmt.Errorf("sip.trunks[%d]: %w", i, err)
		}
		router.dialers[t.Name] = g.ua.Dialer(st, rtpFactory)
	}
	if g.modem, err = newModemBackend(cfg, log, router.dialers); err != nil {
		g.close()
		return nil, err
	}

	if g.store, err = openStore(cfg.Database, log, false); err != nil {
		g.close()
		return nil, err
	}
	g.health = newHealthMetrics(g.registry)
	g.manager, err = signalling.NewManager(signalling.ManagerConfig{
		Log: log, Authorizer: policy, Router: g.modem.routerOr(router), Metrics: signalling.NewMetrics(g.registry),
		Recorder: signalling.Recorders{g.store, g.health},
	})
	if err != nil {
		g.close()
		return nil, err
	}

	// Matrix.
	host, portStr, err := net.SplitHostPort(cfg.AppService.Listen)
	if err != nil {
		g.close()
		return nil, fmt.Errorf("appservice.listen: %w", err)
	}
	port, _ := strconv.ParseUint(portStr, 10, 16)
	as, err := appservice.CreateFull(appservice.CreateOpts{
		Registration:     reg,
		HomeserverDomain: cfg.Homeserver.Domain,
		HomeserverURL:    cfg.Homeserver.URL,
		HostConfig:       appservice.HostConfig{Hostname: host, Port: uint16(port)},
	})
	if err != nil {
		g.close()
		return nil, err
	}
	as.Log = log.With().Str("component", "appservice").Logger()
	tp, err := matrix.NewThirdParty(matrix.ThirdPartyConfig{
		HSToken:          reg.ServerToken,
		DefaultCC:        cfg.Phone.DefaultCountryCode,
		GhostUserID:      func(n string) string { return string(cfg.GhostUserID(n)) },
		NumberFromUserID: func(u string) (string, bool) { return cfg.NumberFromGhost(id.UserID(u)) },
	})
	if err != nil {
		g.close()
		return nil, err
	}
	tp.Register(as.Router)
	g.connector, err = matrix.New(matrix.Config{
		Log:     log,
		AS:      as,
		Manager: g.manager,
		WebRTC:  rtc,
		NewAudio: func(p *media.Peer) (matrix.AudioEndpoint, error) {
			return media.NewRTPEndpoint(media.RTPConfig{Codec: opusCodec(opusOpts), PayloadType: media.OpusPayloadType,
				EventPayloadType: media.WebRTCEventPayloadType, Reader: p, Writer: p, DeadMediaTimeout: cfg.Media.DeadMediaTimeout})
		},
		GhostUserID:      cfg.GhostUserID,
		NumberFromUserID: cfg.NumberFromGhost,
		GhostDisplayName: cfg.GhostDisplayname,
		MayUseGateway:    func(u id.UserID) bool { return policy.UserAllowed(string(u)) },
		CallerID:         func(u id.UserID) string { return cfg.CallerIDFor(string(u)) },
		BotDisplayName:   cfg.AppService.BotDisplayname,
		Rooms:            g.store,
	})
	if err != nil {
		g.close()
		return nil, err
	}
	g.modem.routeIncoming(g.manager, g.connector.Dialer(cfg.Inbound.RingTimeout))
	if cfg.Conferences.Enabled {
		if g.confs, err = newConferences(cfg, log, g.manager, g.store, g.connector, g.registry); err != nil {
			g.close()
			return nil, err
		}
		g.connector.SetConferences(g.confs, cfg.Conferences.CommandPowerLevel, cfg.Phone.DefaultCountryCode)
	}
	if err := g.ua.HandleInbound(inboundConfig(cfg, rtpFactory, g.manager, g.connector, g.confs)); err != nil {
		g.close()
		return nil, err
	}
	g.regs, err = startRegistrations(cfg, g.ua, g.registry)
	if err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

// start opens the listeners and registers the bot with the homeserver.
func (g *gateway) start(ctx context.Context) error {
	if err := g.turn.start(); err != nil {
		return err
	}
	if err := g.modem.start(ctx); err != nil {
		return err
	}
	if err := g.connector.Start(ctx); err != nil {
		return err
	}
	if addr := g.cfg.Metrics.Listen; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(g.registry, promhttp.HandlerOpts{}))
		g.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := g.metrics.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Error().Err(err).Msg("metrics server failed")
			}
		}()
	}
	return nil
}

// close stops everything that was started; calls must be over by then.
// It is idempotent.
func (g *gateway) close() { g.closeOnce.Do(g.doClose) }

func (g *gateway) doClose() {
	for _, r := range g.regs {
		r.Close()
	}
	g.turn.close()
	g.modem.close()
	if g.connector != nil {
		g.connector.Close()
	}
	if g.confs != nil {
		g.confs.Close()
	}
	if err := g.rtc.Close(); err != nil {
		g.log.Warn().Err(err).Msg("closing the WebRTC port")
	}
	if g.ua != nil {
		_ = g.ua.Close()
	}
	if g.metrics != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = g.metrics.Shutdown(ctx)
		cancel()
	}
	if g.store != nil {
		if err := g.store.Close(); err != nil {
			g.log.Warn().Err(err).Msg("closing the database")
		}
	}
}

// trunkRouter sends each number to the first trunk whose patterns match it.
type trunkRouter struct {
	cfg     *configs.Config
	dialers map[string]signalling.Dialer
}

func (r *trunkRouter) Route(_ context.Context, _, to signalling.Party) (signalling.Dialer, error) {
	t := r.cfg.TrunkFor(to.Number)
	if t == nil {
		return nil, signalling.NewCauseError(signalling.CauseNotFound, "no trunk serves "+to.Number, nil)
	}
	return r.dialers[t.Name], nil
}
