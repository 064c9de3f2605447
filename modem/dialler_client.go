package modem

import (
	"context"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"
)

// DiallerClient calls the dialler API over D-Bus (used by `gateway dial`,
// `gateway calls` and `gateway hangup`).
type DiallerClient struct {
	conn *dbus.Conn
	obj  dbus.BusObject
}

// DiallerSignal is a signal of the dialler API.
type DiallerSignal struct {
	Name string // "CallAdded", "CallStateChanged", "RouteChosen", "DtmfReceived"
	Args []string
}

// ConnectBus opens a connection to bus: "session", "system" or an address.
func ConnectBus(bus string) (*dbus.Conn, error) {
	var c *dbus.Conn
	var err error
	switch bus {
	case "", "session":
		c, err = dbus.ConnectSessionBus()
	case "system":
		c, err = dbus.ConnectSystemBus()
	default:
		c, err = dbus.Connect(bus)
	}
	if err != nil {
		return nil, fmt.Errorf("modem: connect to D-Bus %q: %w", bus, err)
	}
	return c, nil
}

// NewDiallerClient returns a client of the dialler API on conn.
func NewDiallerClient(conn *dbus.Conn) *DiallerClient {
	return &DiallerClient{conn: conn, obj: conn.Object(DiallerName, DiallerPath)}
}

func (c *DiallerClient) call(ctx context.Context, method string, args ...any) *dbus.Call {
	return c.obj.CallWithContext(ctx, DiallerIface+"."+method, 0, args...)
}

// Dial places a call and returns its id and first route.
func (c *DiallerClient) Dial(ctx context.Context, number string) (id, route string, err error) {
	err = c.call(ctx, "Dial", number).Store(&id, &route)
	return id, route, err
}

// Answer answers an incoming call.
func (c *DiallerClient) Answer(ctx context.Context, id string) error {
	return c.call(ctx, "Answer", id).Err
}

// Hangup ends a call.
func (c *DiallerClient) Hangup(ctx context.Context, id string) error {
	return c.call(ctx, "Hangup", id).Err
}

// SendDtmf sends digits on a call.
func (c *DiallerClient) SendDtmf(ctx context.Context, id, digits string) error {
	return c.call(ctx, "SendDtmf", id, digits).Err
}

// ListCalls returns the live calls.
func (c *DiallerClient) ListCalls(ctx context.Context) ([]CallInfo, error) {
	var out []CallInfo
	err := c.call(ctx, "ListCalls").Store(&out)
	return out, err
}

// Introspect returns the service's introspection XML.
func (c *DiallerClient) Introspect(ctx context.Context) (string, error) {
	var xml string
	err := c.obj.CallWithContext(ctx, "org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&xml)
	return xml, err
}

// Subscribe delivers the API's signals to the returned channel until ctx
// ends; signals that do not fit its buffer are dropped.
func (c *DiallerClient) Subscribe(ctx context.Context) (<-chan DiallerSignal, error) {
	opts := []dbus.MatchOption{dbus.WithMatchInterface(DiallerIface), dbus.WithMatchObjectPath(DiallerPath)}
	if err := c.conn.AddMatchSignalContext(ctx, opts...); err != nil {
		return nil, err
	}
	raw := make(chan *dbus.Signal, 64)
	c.conn.Signal(raw)
	out := make(chan DiallerSignal, 64)
	go func() {
		defer close(out)
		defer c.conn.RemoveSignal(raw)
		for {
			select {
			case <-ctx.Done():
				rctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = c.conn.RemoveMatchSignalContext(rctx, opts...)
				cancel()
				return
			case s, ok := <-raw:
				if !ok {
					return
				}
				if s.Path != DiallerPath || len(s.Name) <= len(DiallerIface)+1 || s.Name[:len(DiallerIface)] != DiallerIface {
					continue
				}
				ds := DiallerSignal{Name: s.Name[len(DiallerIface)+1:]}
				for _, a := range s.Body {
					if str, ok := a.(string); ok {
						ds.Args = append(ds.Args, str)
					}
				}
				select {
				case out <- ds:
				default:
				}
			}
		}
	}()
	return out, nil
}
