package modem

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
)

// The dialler API's bus name, object path and interface.
const (
	DiallerName  = "org.matrixgateway.Dialler1"
	DiallerPath  = dbus.ObjectPath("/org/matrixgateway/Dialler1")
	DiallerIface = "org.matrixgateway.Dialler1"
)

// DiallerIntrospection is the introspection XML of the dialler API
// (docs/dialler-api.md documents it).
const DiallerIntrospection = `<node>
  <interface name="org.matrixgateway.Dialler1">
    <!-- Place a call to number (E.164, national, or an emergency number).
         Returns the call id and the route chosen first ("sip:main", "modem"). -->
    <method name="Dial">
      <arg name="number" type="s" direction="in"/>
      <arg name="id" type="s" direction="out"/>
      <arg name="route" type="s" direction="out"/>
    </method>
    <!-- Answer an incoming call (state "ringing-in"). -->
    <method name="Answer">
      <arg name="id" type="s" direction="in"/>
    </method>
    <!-- Hang up or reject a call. -->
    <method name="Hangup">
      <arg name="id" type="s" direction="in"/>
    </method>
    <!-- Send DTMF digits (0-9 A-D * #) on an active call. -->
    <method name="SendDtmf">
      <arg name="id" type="s" direction="in"/>
      <arg name="digits" type="s" direction="in"/>
    </method>
    <!-- The live calls: id, number, direction (outgoing|incoming), state, route. -->
    <method name="ListCalls">
      <arg name="calls" type="a(sssss)" direction="out"/>
    </method>
    <!-- A call appeared (Dial, or an incoming GSM call). -->
    <signal name="CallAdded">
      <arg name="id" type="s"/>
      <arg name="number" type="s"/>
      <arg name="direction" type="s"/>
    </signal>
    <!-- state: dialing, ringing, ringing-in, active, ended; cause is the
         neutral hangup cause ("busy", "normal", ...) when state is ended. -->
    <signal name="CallStateChanged">
      <arg name="id" type="s"/>
      <arg name="state" type="s"/>
      <arg name="cause" type="s"/>
    </signal>
    <!-- The route carrying the call: the first choice, then each fallback. -->
    <signal name="RouteChosen">
      <arg name="id" type="s"/>
      <arg name="route" type="s"/>
      <arg name="reason" type="s"/>
    </signal>
    <!-- A DTMF digit was received from the far end. -->
    <signal name="DtmfReceived">
      <arg name="id" type="s"/>
      <arg name="digit" type="s"/>
    </signal>
  </interface>` + introspect.IntrospectDeclarationString + `</node>`

// Dialler states.
const (
	StateDialing   = "dialing"
	StateRinging   = "ringing"
	StateRingingIn = "ringing-in"
	StateActive    = "active"
	StateEnded     = "ended"
)

// DiallerConfig configures a Dialler.
type DiallerConfig struct {
	// Conn is the bus the API is exported on (the session bus on a phone).
	Conn *dbus.Conn
	// Router routes Dial requests (a signalling.FallbackRouter).
	Router signalling.Router
	// Client, when set, delivers incoming GSM calls to the API.
	Client *Client
	// Normalize turns a dialled number into the form routes match (E.164);
	// nil keeps it as is. Emergency numbers are never normalised.
	Normalize func(number string) (string, error)
	// Emergency reports emergency numbers.
	Emergency func(number string) bool
	// From is the calling party of Dial requests.
	From signalling.Party
	// LocalAudio is the phone's own microphone and speaker (e.g.
	// "alsa:default"): calls that go over IP (SIP or Matrix) are bridged to
	// it once answered. GSM calls never use it (the phone's audio stack
	// carries them). nil: IP calls are control-only.
	LocalAudio *AudioConfig
	Log        zerolog.Logger
}

// Dialler is the dialler D-Bus service: it places calls through the router
// (IP first, GSM fallback), hands incoming GSM calls to the phone's UI and
// reports call state and routes as signals.
type Dialler struct {
	cfg DiallerConfig

	mu     sync.Mutex
	calls  map[string]*dcall
	closed bool
}

type dcall struct {
	d         *Dialler
	id        string
	number    string
	direction string

	mu    sync.Mutex
	leg   signalling.Leg
	state string
	route string
	ended bool
	local *callAudio     // the phone's microphone/speaker, bridged to an IP leg
	media media.Endpoint // the leg's endpoint bridged to local
}

// NewDialler exports the API on cfg.Conn and takes the bus name.
func NewDialler(cfg DiallerConfig) (*Dialler, error) {
	if cfg.Conn == nil || cfg.Router == nil {
		return nil, errors.New("modem: the dialler needs a bus connection and a router")
	}
	d := &Dialler{cfg: cfg, calls: map[string]*dcall{}}
	if err := cfg.Conn.Export(diallerAPI{d}, DiallerPath, DiallerIface); err != nil {
		return nil, fmt.Errorf("modem: export dialler: %w", err)
	}
	if err := cfg.Conn.Export(introspect.Introspectable(DiallerIntrospection), DiallerPath, "org.freedesktop.DBus.Introspectable"); err != nil {
		return nil, fmt.Errorf("modem: export introspection: %w", err)
	}
	reply, err := cfg.Conn.RequestName(DiallerName, dbus.NameFlagDoNotQueue)
	if err != nil {
		return nil, fmt.Errorf("modem: request name %s: %w", DiallerName, err)
	}
	if reply != dbus.RequestNameReplyPrimaryOwner {
		return nil, fmt.Errorf("modem: bus name %s is taken (another gateway running?)", DiallerName)
	}
	if cfg.Client != nil {
		cfg.Client.OnIncoming(d.incoming)
	}
	return d, nil
}

// Close hangs up the dialler's calls, releases the bus name and unexports
// the API. It is idempotent; the bus connection stays open.
func (d *Dialler) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	calls := make([]*dcall, 0, len(d.calls))
	for _, c := range d.calls {
		calls = append(calls, c)
	}
	d.mu.Unlock()
	if d.cfg.Client != nil {
		d.cfg.Client.OnIncoming(nil)
	}
	for _, c := range calls {
		c.hangup(signalling.CauseShutdown)
	}
	_, _ = d.cfg.Conn.ReleaseName(DiallerName)
	_ = d.cfg.Conn.Export(nil, DiallerPath, DiallerIface)
	_ = d.cfg.Conn.Export(nil, DiallerPath, "org.freedesktop.DBus.Introspectable")
}

// OnRoute is the FallbackConfig.OnRoute hook: it emits RouteChosen for the
// dialler's own calls.
func (d *Dialler) OnRoute(id signalling.CallID, route, reason string) {
	c := d.call(string(id))
	if c == nil {
		return
	}
	c.mu.Lock()
	c.route = route
	c.mu.Unlock()
	d.emit("RouteChosen", string(id), route, reason)
}

func (d *Dialler) emit(name string, args ...any) {
	if err := d.cfg.Conn.Emit(DiallerPath, DiallerIface+"."+name, args...); err != nil {
		d.cfg.Log.Debug().Err(err).Str("signal", name).Msg("dialler: emit failed")
	}
}

func (d *Dialler) call(id string) *dcall {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[id]
}

func (d *Dialler) add(c *dcall) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	d.calls[c.id] = c
	return nil
}

func (d *Dialler) remove(c *dcall) {
	d.mu.Lock()
	delete(d.calls, c.id)
	d.mu.Unlock()
}

// Dial places a call; it returns the call id and the first route.
func (d *Dialler) Dial(ctx context.Context, number string) (id, route string, err error) {
	to := number
	emergency := d.cfg.Emergency != nil && d.cfg.Emergency(number)
	if !emergency && d.cfg.Normalize != nil {
		if to, err = d.cfg.Normalize(number); err != nil {
			return "", "", err
		}
	}
	dialer, err := d.cfg.Router.Route(ctx, d.cfg.From, signalling.Party{Number: to})
	if err != nil {
		return "", "", err
	}
	c := &dcall{d: d, id: string(signalling.NewCallID()), number: to, direction: "outgoing", state: StateDialing}
	if err := d.add(c); err != nil {
		return "", "", err
	}
	d.emit("CallAdded", c.id, to, c.direction)
	d.emit("CallStateChanged", c.id, StateDialing, "")
	leg, err := dialer.Dial(ctx, signalling.DialRequest{CallID: signalling.CallID(c.id), From: d.cfg.From, To: signalling.Party{Number: to}}, c)
	if err != nil {
		d.remove(c)
		d.emit("CallStateChanged", c.id, StateEnded, signalling.CauseOf(err).String())
		return "", "", err
	}
	c.mu.Lock()
	c.leg = leg
	if c.route == "" {
		c.route = signalling.RouteOf(leg)
		if c.route == "" {
			c.route = leg.Kind()
		}
	}
	route, ended := c.route, c.ended
	c.mu.Unlock()
	if ended { // the call ended before Dial returned: release the leg
		c.release(leg, signalling.CauseNormal)
		return c.id, route, nil
	}
	d.cfg.Log.Info().Str("call", c.id).Str("to", to).Str("route", route).Msg("dialler: call placed")
	return c.id, route, nil
}

// incoming takes a new incoming GSM call (from the Client's signal goroutine).
func (d *Dialler) incoming(k *Call) {
	c := &dcall{d: d, id: k.ID(), number: k.Number(), direction: "incoming", state: StateRingingIn, route: Kind}
	if err := d.add(c); err != nil {
		go func() { _ = k.Hangup(context.Background()) }()
		return
	}
	c.mu.Lock()
	c.leg = NewLeg(k, c)
	c.mu.Unlock()
	d.emit("CallAdded", c.id, c.number, c.direction)
	d.emit("CallStateChanged", c.id, StateRingingIn, "")
}

// Post implements signalling.Poster for the call's leg.
func (c *dcall) Post(ev signalling.Event) {
	switch ev.Type {
	case signalling.EventRinging, signalling.EventProgress:
		c.setState(StateRinging, "")
	case signalling.EventAnswered:
		c.setState(StateActive, "")
		if c.d.cfg.LocalAudio.Enabled() && ev.Leg != nil {
			go c.bridgeLocal(ev.Leg)
		}
	case signalling.EventDTMF:
		c.d.emit("DtmfReceived", c.id, string(ev.Digit))
	case signalling.EventHangup:
		c.mu.Lock()
		leg := c.leg
		already := c.ended
		c.ended = true
		c.mu.Unlock()
		if already {
			return
		}
		c.d.cfg.Log.Info().Str("call", c.id).Stringer("cause", ev.Cause).Str("detail", ev.Detail).Msg("dialler: call ended")
		c.d.remove(c)
		c.d.emit("CallStateChanged", c.id, StateEnded, ev.Cause.String())
		if leg != nil {
			go c.release(leg, ev.Cause)
		}
	}
}

func (c *dcall) release(leg signalling.Leg, cause signalling.Cause) {
	c.unbridgeLocal()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leg.Hangup(ctx, cause)
}

// bridgeLocal connects an answered IP call (leg, the one that posted the
// answer: the call's leg, or the fallback router's leg standing for it) to the phone's microphone and
// speaker. A GSM call is left alone: the phone's audio stack carries it. A
// device that cannot be opened ends the call (media_failed) rather than
// leaving the user in silence.
func (c *dcall) bridgeLocal(leg signalling.Leg) {
	c.mu.Lock()
	ended := c.ended
	c.mu.Unlock()
	if ended {
		return
	}
	cur := signalling.CurrentLeg(leg)
	if cur.Kind() == Kind {
		return
	}
	ep := cur.Audio()
	if ep == nil {
		return
	}
	log := c.d.cfg.Log.With().Str("call", c.id).Str("device", c.d.cfg.LocalAudio.Device).Logger()
	ctx, cancel := context.WithTimeout(context.Background(), c.d.cfg.LocalAudio.openTimeout())
	defer cancel()
	local, err := openAudio(ctx, c.d.cfg.LocalAudio, nil)
	if err == nil && local == nil {
		err = fmt.Errorf("modem: local audio %q: nothing to open", c.d.cfg.LocalAudio.Device)
	}
	if err != nil {
		log.Error().Err(err).Msg("dialler: opening the phone's audio failed")
		c.Post(signalling.Event{Leg: leg, Type: signalling.EventHangup, Cause: signalling.CauseMediaFailed, Detail: "phone audio: " + err.Error()})
		return
	}
	rate, err := media.Bridge(local.ep, ep)
	if err != nil {
		_ = local.ep.Close()
		log.Error().Err(err).Msg("dialler: bridging the phone's audio failed")
		c.Post(signalling.Event{Leg: leg, Type: signalling.EventHangup, Cause: signalling.CauseIncompatible, Detail: "phone audio: " + err.Error()})
		return
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		media.Unbridge(local.ep, ep)
		_ = local.ep.Close()
		return
	}
	c.local, c.media = local, ep
	c.mu.Unlock()
	log.Info().Int("rate", rate).Str("far", ep.String()).Msg("dialler: phone audio bridged")
}

// unbridgeLocal releases the phone's microphone and speaker.
func (c *dcall) unbridgeLocal() {
	c.mu.Lock()
	local, ep := c.local, c.media
	c.local, c.media = nil, nil
	c.mu.Unlock()
	if local == nil {
		return
	}
	media.Unbridge(local.ep, ep)
	st := local.ep.Stats()
	_ = local.ep.Close()
	c.d.cfg.Log.Info().Str("call", c.id).Uint64("frames_in", st.FramesIn).Uint64("frames_out", st.FramesOut).Msg("dialler: phone audio closed")
}

func (c *dcall) setState(s, cause string) {
	c.mu.Lock()
	if c.ended || c.state == s {
		c.mu.Unlock()
		return
	}
	c.state = s
	c.mu.Unlock()
	c.d.emit("CallStateChanged", c.id, s, cause)
}

// hangup ends the call at the user's request.
func (c *dcall) hangup(cause signalling.Cause) {
	c.mu.Lock()
	leg := c.leg
	already := c.ended
	c.ended = true
	c.mu.Unlock()
	if already {
		return
	}
	c.d.remove(c)
	if leg != nil {
		c.release(leg, cause)
	}
	c.d.emit("CallStateChanged", c.id, StateEnded, cause.String())
}

// diallerAPI is the object exported on the bus; its methods are the D-Bus
// methods.
type diallerAPI struct{ d *Dialler }

func dbusError(err error) *dbus.Error {
	if err == nil {
		return nil
	}
	return dbus.NewError(DiallerIface+".Error."+camel(signalling.CauseOf(err).String()), []any{err.Error()})
}

func camel(s string) string {
	out := make([]byte, 0, len(s))
	up := true
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch == '_' {
			up = true
			continue
		}
		if up && ch >= 'a' && ch <= 'z' {
			ch -= 'a' - 'A'
		}
		up = false
		out = append(out, ch)
	}
	return string(out)
}

var errNoCall = signalling.NewCauseError(signalling.CauseNotFound, "dialler: no such call", nil)

func (a diallerAPI) Dial(number string) (string, string, *dbus.Error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, route, err := a.d.Dial(ctx, number)
	return id, route, dbusError(err)
}

func (a diallerAPI) Answer(id string) *dbus.Error {
	c := a.d.call(id)
	if c == nil {
		return dbusError(errNoCall)
	}
	c.mu.Lock()
	leg, state := c.leg, c.state
	c.mu.Unlock()
	if state != StateRingingIn || leg == nil {
		return dbusError(signalling.NewCauseError(signalling.CauseProtocolError, "dialler: call is "+state+", not ringing-in", nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := leg.Answer(ctx); err != nil {
		return dbusError(err)
	}
	c.setState(StateActive, "")
	return nil
}

func (a diallerAPI) Hangup(id string) *dbus.Error {
	c := a.d.call(id)
	if c == nil {
		return dbusError(errNoCall)
	}
	c.hangup(signalling.CauseNormal)
	return nil
}

func (a diallerAPI) SendDtmf(id, digits string) *dbus.Error {
	c := a.d.call(id)
	if c == nil {
		return dbusError(errNoCall)
	}
	c.mu.Lock()
	leg := c.leg
	c.mu.Unlock()
	s, ok := signalling.CurrentLeg(leg).(signalling.DTMFSender)
	if !ok {
		return dbusError(signalling.NewCauseError(signalling.CauseIncompatible, "dialler: this route cannot send DTMF", nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, d := range digits {
		if err := s.SendDTMF(ctx, d, 0); err != nil {
			return dbusError(err)
		}
	}
	return nil
}

// CallInfo is one entry of ListCalls.
type CallInfo struct {
	ID, Number, Direction, State, Route string
}

func (a diallerAPI) ListCalls() ([]CallInfo, *dbus.Error) {
	return a.d.Calls(), nil
}

// Calls returns the live calls, sorted by id.
func (d *Dialler) Calls() []CallInfo {
	d.mu.Lock()
	out := make([]CallInfo, 0, len(d.calls))
	for _, c := range d.calls {
		c.mu.Lock()
		out = append(out, CallInfo{ID: c.id, Number: c.number, Direction: c.direction, State: c.state, Route: c.route})
		c.mu.Unlock()
	}
	d.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
