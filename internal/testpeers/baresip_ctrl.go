package testpeers

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// BaresipEvent is one event baresip's ctrl_tcp module reported, such as CALL_INCOMING,
// CALL_RINGING, CALL_ESTABLISHED or CALL_CLOSED.
type BaresipEvent struct {
	// Type is the event type, e.g. "CALL_ESTABLISHED".
	Type string `json:"type"`
	// Class is the event class, e.g. "call".
	Class string `json:"class"`
	// Direction is "incoming" or "outgoing".
	Direction string `json:"direction"`
	// AccountAOR is the local account, e.g. "sip:phone@127.0.0.1:5060".
	AccountAOR string `json:"accountaor"`
	// PeerURI is the remote party's URI.
	PeerURI string `json:"peeruri"`
	// ID is baresip's call ID (the SIP Call-ID).
	ID string `json:"id"`
	// Param carries details: for CALL_CLOSED the reason, e.g. "486 Busy Here" or "Connection reset by user".
	Param string `json:"param"`
}

// ctrlMsg is a ctrl_tcp message: an event or a response to a command.
type ctrlMsg struct {
	Event    bool   `json:"event"`
	Response bool   `json:"response"`
	OK       bool   `json:"ok"`
	Data     string `json:"data"`
	Token    string `json:"token"`
	BaresipEvent
}

// ctrlConn is a ctrl_tcp connection: it sends commands and collects events in order.
type ctrlConn struct {
	conn net.Conn

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	events  []BaresipEvent
	cursor  int // WaitEvent consumes events[:cursor]
	changed chan struct{}
	pending map[string]chan ctrlMsg
	nextTok int
	err     error
	onEvent func(BaresipEvent)
	ch      chan BaresipEvent
}

// dialCtrl connects to ctrl_tcp, retrying until baresip listens or timeout passes.
func dialCtrl(addr string, timeout time.Duration, alive func() bool) (*ctrlConn, error) {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			cc := &ctrlConn{conn: c, changed: make(chan struct{}), pending: map[string]chan ctrlMsg{}, ch: make(chan BaresipEvent, 1024)}
			go cc.readLoop()
			return cc, nil
		}
		if time.Now().After(deadline) || !alive() {
			return nil, fmt.Errorf("testpeers: baresip ctrl_tcp %s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readNetstring reads one "<len>:<data>," frame.
func readNetstring(r *bufio.Reader) ([]byte, error) {
	lenStr, err := r.ReadString(':')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(lenStr[:len(lenStr)-1])
	if err != nil || n < 0 || n > 1<<20 {
		return nil, fmt.Errorf("testpeers: bad netstring length %q", lenStr)
	}
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	if buf[n] != ',' {
		return nil, fmt.Errorf("testpeers: netstring not terminated by ','")
	}
	return buf[:n], nil
}

func (c *ctrlConn) readLoop() {
	r := bufio.NewReader(c.conn)
	for {
		data, err := readNetstring(r)
		if err != nil {
			c.mu.Lock()
			c.err = err
			close(c.changed)
			c.changed = make(chan struct{})
			for tok, ch := range c.pending {
				close(ch)
				delete(c.pending, tok)
			}
			c.mu.Unlock()
			close(c.ch)
			return
		}
		var m ctrlMsg
		if err := json.Unmarshal(data, &m); err != nil {
			continue
		}
		c.mu.Lock()
		if m.Response {
			if ch, ok := c.pending[m.Token]; ok {
				ch <- m
				delete(c.pending, m.Token)
			}
			c.mu.Unlock()
			continue
		}
		if !m.Event {
			c.mu.Unlock()
			continue
		}
		c.events = append(c.events, m.BaresipEvent)
		close(c.changed)
		c.changed = make(chan struct{})
		hook := c.onEvent
		c.mu.Unlock()
		select {
		case c.ch <- m.BaresipEvent:
		default: // nobody reads Events(); WaitEvent still sees everything
		}
		if hook != nil {
			hook(m.BaresipEvent)
		}
	}
}

// command sends a command and waits for its response.
func (c *ctrlConn) command(ctx context.Context, cmd, params string) (string, error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return "", fmt.Errorf("testpeers: baresip ctrl_tcp closed: %w", c.err)
	}
	c.nextTok++
	tok := "t" + strconv.Itoa(c.nextTok)
	ch := make(chan ctrlMsg, 1)
	c.pending[tok] = ch
	c.mu.Unlock()

	body, _ := json.Marshal(map[string]string{"command": cmd, "params": params, "token": tok})
	c.wmu.Lock()
	_, err := fmt.Fprintf(c.conn, "%d:%s,", len(body), body)
	c.wmu.Unlock()
	if err != nil {
		return "", fmt.Errorf("testpeers: baresip %s: %w", cmd, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return "", fmt.Errorf("testpeers: baresip %s: connection closed", cmd)
		}
		if !m.OK {
			return m.Data, fmt.Errorf("testpeers: baresip %s %q: %s", cmd, params, m.Data)
		}
		return m.Data, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, tok)
		c.mu.Unlock()
		return "", fmt.Errorf("testpeers: baresip %s: %w", cmd, ctx.Err())
	}
}

// waitEvent returns the first not yet consumed event of one of the types, consuming it and all
// events before it.
func (c *ctrlConn) waitEvent(ctx context.Context, types ...string) (BaresipEvent, error) {
	for {
		c.mu.Lock()
		for i := c.cursor; i < len(c.events); i++ {
			for _, typ := range types {
				if c.events[i].Type == typ {
					c.cursor = i + 1
					ev := c.events[i]
					c.mu.Unlock()
					return ev, nil
				}
			}
		}
		changed, err := c.changed, c.err
		c.mu.Unlock()
		if err != nil {
			return BaresipEvent{}, fmt.Errorf("testpeers: baresip ctrl_tcp closed while waiting for %v: %w", types, err)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return BaresipEvent{}, fmt.Errorf("testpeers: waiting for baresip %v: %w", types, ctx.Err())
		}
	}
}

// all returns a copy of every event so far.
func (c *ctrlConn) all() []BaresipEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]BaresipEvent(nil), c.events...)
}

func (c *ctrlConn) close() error { return c.conn.Close() }
