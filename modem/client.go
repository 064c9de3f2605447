package modem

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/signalling"
)

// Config configures a Client.
type Config struct {
	// Bus is the D-Bus address of ModemManager's bus: "system" (default),
	// "session", or an address such as "unix:path=/run/dbus/x".
	Bus string
	// Modem picks one modem by equipment identifier (IMEI) or object path;
	// empty takes the first voice-capable modem.
	Modem string
	// Enable asks ModemManager to enable a modem found disabled.
	Enable bool
	// CallTimeout bounds each D-Bus method call; default 20 s (Start can wait
	// for the network).
	CallTimeout time.Duration
	// Log receives the client's logs.
	Log zerolog.Logger
}

// Status is what the client knows about the modem it uses.
type Status struct {
	Present       bool            // a voice-capable modem is exported by ModemManager
	Path          dbus.ObjectPath // its object path
	Equipment     string          // IMEI
	State         int32           // MMModemState (8 registered, 9 searching... 11 connected)
	Registration  uint32          // MMModem3gppRegistrationState (1 home, 5 roaming)
	AccessTech    AccessTech      // current access technologies
	Signal        uint32          // signal quality, percent
	EmergencyOnly bool            // only emergency calls are possible
	Operator      string
	Updated       time.Time
}

// Registered reports whether the modem can place ordinary calls.
func (s Status) Registered() bool {
	return s.Present && !s.EmergencyOnly && (s.Registration == 1 || s.Registration == 5 || s.State >= modemStateRegd)
}

// CanDial reports whether a call to an emergency number (emergency true) or
// any number could be placed now.
func (s Status) CanDial(emergency bool) bool {
	if emergency {
		return s.Present
	}
	return s.Registered()
}

type modemInfo struct {
	path   dbus.ObjectPath
	voice  bool
	status Status
}

// Client tracks ModemManager's modems and calls over D-Bus. Create it with
// New; Close releases it.
type Client struct {
	cfg  Config
	log  zerolog.Logger
	conn *dbus.Conn
	sigs chan *dbus.Signal

	mu       sync.Mutex
	modems   map[dbus.ObjectPath]*modemInfo
	calls    map[dbus.ObjectPath]*Call
	incoming func(*Call)
	watchers map[int]func(Status)
	nextW    int
	closed   bool

	done chan struct{}
	wg   sync.WaitGroup
}

// New connects to the bus, subscribes to ModemManager's signals and loads
// the modems present. A missing ModemManager is not an error: the client
// finds it when it appears.
func New(cfg Config) (*Client, error) {
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 20 * time.Second
	}
	var conn *dbus.Conn
	var err error
	switch cfg.Bus {
	case "", "system":
		conn, err = dbus.ConnectSystemBus()
	case "session":
		conn, err = dbus.ConnectSessionBus()
	default:
		conn, err = dbus.Connect(cfg.Bus)
	}
	if err != nil {
		return nil, fmt.Errorf("modem: connect to D-Bus %q: %w", cfg.Bus, err)
	}
	c := &Client{
		cfg: cfg, log: cfg.Log, conn: conn, sigs: make(chan *dbus.Signal, 256),
		modems: map[dbus.ObjectPath]*modemInfo{}, calls: map[dbus.ObjectPath]*Call{},
		watchers: map[int]func(Status){}, done: make(chan struct{}),
	}
	matches := [][]dbus.MatchOption{
		{dbus.WithMatchPathNamespace(mmPath)},
		{dbus.WithMatchSender(ifDBus), dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, mmService)},
	}
	for _, m := range matches {
		if err := conn.AddMatchSignal(m...); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("modem: add match: %w", err)
		}
	}
	conn.Signal(c.sigs)
	c.wg.Add(1)
	go c.loop()
	if err := c.rescan(); err != nil {
		c.log.Info().Err(err).Msg("modem: ModemManager not available yet")
	}
	return c, nil
}

// Close stops tracking, ends the calls' event streams and closes the bus
// connection. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	calls := c.callList()
	c.calls = map[dbus.ObjectPath]*Call{}
	c.mu.Unlock()
	for _, call := range calls {
		call.gone(ErrClosed.Error())
	}
	close(c.done)
	c.conn.RemoveSignal(c.sigs)
	err := c.conn.Close()
	c.wg.Wait()
	return err
}

// OnIncoming sets the function called (from the client's signal goroutine;
// it must not block) for each new incoming call.
func (c *Client) OnIncoming(f func(*Call)) {
	c.mu.Lock()
	c.incoming = f
	c.mu.Unlock()
}

// Watch calls f (from the client's signal goroutine; it must not block) on
// every status change; the returned function stops it.
func (c *Client) Watch(f func(Status)) (stop func()) {
	c.mu.Lock()
	id := c.nextW
	c.nextW++
	c.watchers[id] = f
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.watchers, id)
		c.mu.Unlock()
	}
}

// Status returns the status of the modem the client uses.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.currentLocked(); m != nil {
		return m.status
	}
	return Status{}
}

// currentLocked picks the modem in use: the configured one, else the voice
// modem with the lowest path.
func (c *Client) currentLocked() *modemInfo {
	paths := make([]string, 0, len(c.modems))
	for p, m := range c.modems {
		if m.voice {
			paths = append(paths, string(p))
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		m := c.modems[dbus.ObjectPath(p)]
		if c.cfg.Modem == "" || c.cfg.Modem == p || c.cfg.Modem == m.status.Equipment {
			return m
		}
	}
	return nil
}

func (c *Client) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.cfg.CallTimeout)
}

// rescan loads every modem ModemManager exports.
func (c *Client) rescan() error {
	ctx, cancel := c.ctx()
	defer cancel()
	var objs map[dbus.ObjectPath]map[string]map[string]dbus.Variant
	err := c.conn.Object(mmService, mmPath).CallWithContext(ctx, ifObjectMgr+".GetManagedObjects", 0).Store(&objs)
	if err != nil {
		return err
	}
	for p, ifs := range objs {
		c.addInterfaces(p, ifs)
	}
	return nil
}

// loop dispatches ModemManager's signals.
func (c *Client) loop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case s, ok := <-c.sigs:
			if !ok {
				return
			}
			c.dispatch(s)
		}
	}
}

func (c *Client) dispatch(s *dbus.Signal) {
	switch s.Name {
	case ifDBus + ".NameOwnerChanged":
		if len(s.Body) == 3 {
			if newOwner, _ := s.Body[2].(string); newOwner == "" {
				c.mmVanished()
			} else {
				c.log.Info().Msg("modem: ModemManager appeared")
				if err := c.rescan(); err != nil {
					c.log.Warn().Err(err).Msg("modem: loading modems failed")
				}
			}
		}
	case ifObjectMgr + ".InterfacesAdded":
		var p dbus.ObjectPath
		var ifs map[string]map[string]dbus.Variant
		if dbus.Store(s.Body, &p, &ifs) == nil {
			c.addInterfaces(p, ifs)
		}
	case ifObjectMgr + ".InterfacesRemoved":
		var p dbus.ObjectPath
		var ifs []string
		if dbus.Store(s.Body, &p, &ifs) == nil {
			c.removeInterfaces(p, ifs)
		}
	case ifProps + ".PropertiesChanged":
		var iface string
		var changed map[string]dbus.Variant
		var inval []string
		if dbus.Store(s.Body, &iface, &changed, &inval) == nil {
			c.propertiesChanged(s.Path, iface, changed)
		}
	case ifVoice + ".CallAdded":
		var p dbus.ObjectPath
		if dbus.Store(s.Body, &p) == nil {
			c.callAdded(s.Path, p)
		}
	case ifVoice + ".CallDeleted":
		var p dbus.ObjectPath
		if dbus.Store(s.Body, &p) == nil {
			c.mu.Lock()
			call := c.calls[p]
			delete(c.calls, p)
			c.mu.Unlock()
			if call != nil {
				call.gone("call deleted")
			}
		}
	case ifCall + ".StateChanged":
		var old, nw int32
		var reason uint32
		if dbus.Store(s.Body, &old, &nw, &reason) == nil {
			if call := c.call(s.Path); call != nil {
				call.stateChanged(CallState(nw), CallStateReason(reason))
			}
		}
	case ifCall + ".DtmfReceived":
		var d string
		if dbus.Store(s.Body, &d) == nil {
			if call := c.call(s.Path); call != nil {
				call.dtmf(d)
			}
		}
	}
}

func (c *Client) call(p dbus.ObjectPath) *Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[p]
}

func (c *Client) callList() []*Call {
	out := make([]*Call, 0, len(c.calls))
	for _, call := range c.calls {
		out = append(out, call)
	}
	return out
}

// mmVanished forgets every modem and ends every call: ModemManager stopped.
func (c *Client) mmVanished() {
	c.log.Warn().Msg("modem: ModemManager went away; calls over the modem end")
	c.mu.Lock()
	c.modems = map[dbus.ObjectPath]*modemInfo{}
	calls := c.callList()
	c.calls = map[dbus.ObjectPath]*Call{}
	c.mu.Unlock()
	for _, call := range calls {
		call.gone("ModemManager stopped")
	}
	c.notify()
}

func (c *Client) addInterfaces(p dbus.ObjectPath, ifs map[string]map[string]dbus.Variant) {
	if _, ok := ifs[ifModem]; !ok {
		return
	}
	c.mu.Lock()
	m := c.modems[p]
	if m == nil {
		m = &modemInfo{path: p, status: Status{Present: true, Path: p}}
		c.modems[p] = m
	}
	if _, ok := ifs[ifVoice]; ok {
		m.voice = true
	}
	for iface, props := range ifs {
		applyProps(&m.status, iface, props)
	}
	st := m.status
	c.mu.Unlock()
	c.log.Info().Str("modem", string(p)).Bool("voice", m.voice).Int32("state", st.State).Msg("modem: modem found")
	if c.cfg.Enable && st.State == 3 { // disabled
		go c.enable(p)
	}
	c.notify()
}

func (c *Client) enable(p dbus.ObjectPath) {
	ctx, cancel := c.ctx()
	defer cancel()
	if err := c.conn.Object(mmService, p).CallWithContext(ctx, ifModem+".Enable", 0, true).Err; err != nil {
		c.log.Warn().Err(err).Str("modem", string(p)).Msg("modem: enabling the modem failed")
	}
}

func (c *Client) removeInterfaces(p dbus.ObjectPath, ifs []string) {
	c.mu.Lock()
	m := c.modems[p]
	if m == nil {
		c.mu.Unlock()
		return
	}
	var gone []*Call
	for _, i := range ifs {
		switch i {
		case ifModem:
			delete(c.modems, p)
			for cp, call := range c.calls {
				if call.modem == p {
					gone = append(gone, call)
					delete(c.calls, cp)
				}
			}
		case ifVoice:
			m.voice = false
		}
	}
	c.mu.Unlock()
	for _, call := range gone {
		call.gone("modem removed")
	}
	c.log.Warn().Str("modem", string(p)).Strs("interfaces", ifs).Msg("modem: interfaces removed")
	c.notify()
}

func (c *Client) propertiesChanged(p dbus.ObjectPath, iface string, changed map[string]dbus.Variant) {
	c.mu.Lock()
	m := c.modems[p]
	if m != nil {
		applyProps(&m.status, iface, changed)
	}
	c.mu.Unlock()
	if m != nil {
		c.notify()
	}
}

// applyProps copies the properties the client tracks into st.
func applyProps(st *Status, iface string, props map[string]dbus.Variant) {
	st.Updated = time.Now()
	for k, v := range props {
		switch iface + "." + k {
		case ifModem + ".State":
			st.State, _ = v.Value().(int32)
		case ifModem + ".AccessTechnologies":
			u, _ := v.Value().(uint32)
			st.AccessTech = AccessTech(u)
		case ifModem + ".SignalQuality":
			if vals, ok := v.Value().([]any); ok && len(vals) == 2 {
				st.Signal, _ = vals[0].(uint32)
			}
		case ifModem + ".EquipmentIdentifier":
			st.Equipment, _ = v.Value().(string)
		case if3GPP + ".RegistrationState":
			st.Registration, _ = v.Value().(uint32)
		case if3GPP + ".OperatorName":
			st.Operator, _ = v.Value().(string)
		case ifVoice + ".EmergencyOnly":
			st.EmergencyOnly, _ = v.Value().(bool)
		}
	}
}

func (c *Client) notify() {
	st := c.Status()
	c.mu.Lock()
	ws := make([]func(Status), 0, len(c.watchers))
	for _, w := range c.watchers {
		ws = append(ws, w)
	}
	c.mu.Unlock()
	for _, w := range ws {
		w(st)
	}
}

// WaitReady waits until a modem can place ordinary calls or ctx ends.
func (c *Client) WaitReady(ctx context.Context) error {
	ch := make(chan struct{}, 1)
	stop := c.Watch(func(Status) {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	defer stop()
	t := time.NewTicker(500 * time.Millisecond) // also re-check: a property may be missed during a restart
	defer t.Stop()
	for {
		if c.Status().Registered() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("modem: waiting for a registered modem: %w (status %+v)", ctx.Err(), c.Status())
		case <-ch:
		case <-t.C:
		}
	}
}

// callAdded handles a new call on a modem: incoming calls arrive already
// ringing-in, so their state and number are read here.
func (c *Client) callAdded(modem, p dbus.ObjectPath) {
	c.mu.Lock()
	known := c.calls[p] != nil
	c.mu.Unlock()
	if known {
		return
	}
	ctx, cancel := c.ctx()
	defer cancel()
	var props map[string]dbus.Variant
	if err := c.conn.Object(mmService, p).CallWithContext(ctx, ifProps+".GetAll", 0, ifCall).Store(&props); err != nil {
		c.log.Warn().Err(err).Str("call", string(p)).Msg("modem: reading a new call failed")
		return
	}
	dir, _ := props["Direction"].Value().(int32)
	if CallDirection(dir) != DirectionIncoming {
		return // an outgoing call: ours is registered by Dial, others are not ours
	}
	state, _ := props["State"].Value().(int32)
	num, _ := props["Number"].Value().(string)
	call := newCall(c, modem, p, DirectionIncoming, num, CallState(state))
	c.mu.Lock()
	if c.closed || c.calls[p] != nil {
		c.mu.Unlock()
		return
	}
	c.calls[p] = call
	f := c.incoming
	c.mu.Unlock()
	c.log.Info().Str("call", string(p)).Str("from", num).Stringer("state", call.State()).Msg("modem: incoming call")
	if f != nil {
		f(call)
	}
}

// Dial creates and starts an outgoing call to number on the modem in use.
// emergency lets the call go out on a modem that is not registered or is
// in emergency-only mode. The returned call reports its progress on Events.
func (c *Client) Dial(ctx context.Context, number string, emergency bool) (*Call, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	m := c.currentLocked()
	var st Status
	if m != nil {
		st = m.status
	}
	c.mu.Unlock()
	if m == nil {
		return nil, causeError(signalling.CauseUnreachable, "no modem", ErrNoModem)
	}
	if !st.CanDial(emergency) {
		return nil, causeError(signalling.CauseUnreachable, "modem cannot call", ErrNotRegistered)
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	var p dbus.ObjectPath
	err := c.conn.Object(mmService, m.path).CallWithContext(cctx, ifVoice+".CreateCall", 0,
		map[string]dbus.Variant{"number": dbus.MakeVariant(number)}).Store(&p)
	if err != nil {
		return nil, dbusErr("CreateCall", err)
	}
	call := newCall(c, m.path, p, DirectionOutgoing, number, CallUnknown)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.calls[p] = call
	c.mu.Unlock()
	if err := c.conn.Object(mmService, p).CallWithContext(cctx, ifCall+".Start", 0).Err; err != nil {
		c.forget(call)
		c.deleteCall(call)
		return nil, dbusErr("Start", err)
	}
	return call, nil
}

func (c *Client) forget(call *Call) {
	c.mu.Lock()
	if c.calls[call.path] == call {
		delete(c.calls, call.path)
	}
	c.mu.Unlock()
}

// deleteCall removes a terminated call from ModemManager (ignoring errors:
// the call or the modem may already be gone).
func (c *Client) deleteCall(call *Call) {
	ctx, cancel := c.ctx()
	defer cancel()
	err := c.conn.Object(mmService, call.modem).CallWithContext(ctx, ifVoice+".DeleteCall", 0, call.path).Err
	if err != nil && !errors.Is(err, context.Canceled) {
		c.log.Debug().Err(err).Str("call", string(call.path)).Msg("modem: DeleteCall failed")
	}
}

// Calls returns the calls the client tracks.
func (c *Client) Calls() []*Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.callList()
}
