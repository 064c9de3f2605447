// Package fakeat is a fake 27.007 AT voice modem for tests: it listens on an
// abstract unix socket that ModemManager's test profile connects to, answers
// the generic plugin's probe and the voice commands (ATD, ATA, ATH, AT+CHUP,
// AT+CHLD, AT+VTS, AT+CLCC) and emits unsolicited results (RING, +CLIP,
// NO CARRIER, BUSY, +RXDTMF) when the test asks for them.
package fakeat

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Call status values of +CLCC (27.007 section 7.18).
const (
	StatActive   = 0
	StatHeld     = 1
	StatDialing  = 2
	StatAlerting = 3
	StatIncoming = 4
	StatWaiting  = 5
)

// Call is one call the fake modem knows about.
type Call struct {
	Index    int
	Incoming bool
	Stat     int
	Number   string
}

// Modem is a fake AT modem. Its methods are safe for concurrent use.
type Modem struct {
	ln   net.Listener
	name string

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	last    net.Conn
	calls   []*Call
	next    int
	dialled []string
	dtmf    strings.Builder
	cmds    []string
	changed chan struct{} // closed and replaced on every change
	mute    bool
	noSIM   bool
	reject  string
	closed  bool
	wg      sync.WaitGroup
}

// Option configures a fake modem.
type Option func(*Modem)

// WithoutSIM makes the modem report no SIM (+CME ERROR: 10 to AT+CPIN?).
func WithoutSIM() Option { return func(m *Modem) { m.noSIM = true } }

// RejectingPrefix makes the modem refuse to dial numbers starting with
// prefix (+CME ERROR: 3, operation not allowed).
func RejectingPrefix(prefix string) Option { return func(m *Modem) { m.reject = prefix } }

// New starts a fake modem on the abstract unix socket "@"+name. Give
// ModemManager's Test.SetProfile the port name name (e.g. "abstract:fake0").
func New(name string, opts ...Option) (*Modem, error) {
	ln, err := net.Listen("unix", "@"+name)
	if err != nil {
		return nil, fmt.Errorf("fakeat: listen: %w", err)
	}
	m := &Modem{ln: ln, name: name, conns: map[net.Conn]struct{}{}, next: 1, changed: make(chan struct{})}
	for _, o := range opts {
		o(m)
	}
	m.wg.Add(1)
	go m.accept()
	return m, nil
}

// Name returns the port name to hand to ModemManager.
func (m *Modem) Name() string { return m.name }

// Close stops listening and drops every connection (the modem "disappears").
func (m *Modem) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	for c := range m.conns {
		_ = c.Close()
	}
	m.mu.Unlock()
	err := m.ln.Close()
	m.wg.Wait()
	return err
}

func (m *Modem) accept() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			_ = c.Close()
			return
		}
		m.conns[c] = struct{}{}
		m.last = c
		m.mu.Unlock()
		m.wg.Add(1)
		go m.serve(c)
	}
}

func (m *Modem) serve(c net.Conn) {
	defer m.wg.Done()
	defer func() {
		m.mu.Lock()
		delete(m.conns, c)
		if m.last == c {
			m.last = nil
		}
		m.mu.Unlock()
		_ = c.Close()
	}()
	r := bufio.NewReader(c)
	var line []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			return
		}
		if b != '\r' && b != '\n' {
			line = append(line, b)
			continue
		}
		cmd := strings.TrimSpace(string(line))
		line = line[:0]
		if cmd == "" {
			continue
		}
		resp := m.handle(cmd)
		m.mu.Lock()
		m.last = c
		if m.mute {
			resp = ""
		}
		_, err = c.Write([]byte(resp))
		m.mu.Unlock()
		if err != nil {
			return
		}
	}
}

const (
	ok    = "\r\nOK\r\n"
	errAT = "\r\nERROR\r\n"
)

func info(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("\r\n" + l + "\r\n")
	}
	b.WriteString(ok)
	return b.String()
}

// handle answers one command line.
func (m *Modem) handle(cmd string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cmds = append(m.cmds, cmd)
	u := strings.ToUpper(cmd)
	if !strings.HasPrefix(u, "AT") {
		return errAT
	}
	body := cmd[2:]
	ub := u[2:]
	switch {
	case ub == "" || ub == "E0" || ub == "V1" || ub == "Z" || ub == "&F" || ub == "X4" || ub == "&C1" || ub == "Q0" || ub == "S0=0":
		return ok
	case ub == "I":
		return info("FakeCo FakeModem 1")
	case ub == "+GCAP":
		return info("+GCAP: +CGSM,+DS,+ES")
	case ub == "+CGMI" || ub == "+GMI":
		return info("FakeCo")
	case ub == "+CGMM" || ub == "+GMM":
		return info("FakeModem 1")
	case ub == "+CGMR" || ub == "+GMR":
		return info("1.0")
	case ub == "+CGSN" || ub == "+GSN":
		return info("490154203237518")
	case ub == "+CIMI":
		return info("001010123456789")
	case strings.HasPrefix(ub, "+CRSM=176,12258"):
		return info(`+CRSM: 144,0,"98101430121181157002"`)
	case ub == "+CPIN?":
		if m.noSIM {
			return "\r\n+CME ERROR: 10\r\n"
		}
		return info("+CPIN: READY")
	case ub == "+CFUN?":
		return info("+CFUN: 1")
	case strings.HasPrefix(ub, "+CFUN="):
		return ok
	case ub == "+CREG?":
		return info("+CREG: 0,1")
	case ub == "+CGREG?":
		return info("+CGREG: 0,1")
	case ub == "+CEREG?":
		return info("+CEREG: 0,1")
	case strings.HasPrefix(ub, "+CREG=") || strings.HasPrefix(ub, "+CGREG=") || strings.HasPrefix(ub, "+CEREG="):
		return ok
	case ub == "+COPS?":
		return info(`+COPS: 0,0,"FakeNet",0`)
	case strings.HasPrefix(ub, "+COPS=3"):
		return ok
	case ub == "+CSQ":
		return info("+CSQ: 20,99")
	case ub == "+CMEE=1" || ub == "+CLIP=1" || ub == "+CLIP=0" || ub == "+CRC=1" || ub == "+CRC=0" ||
		strings.HasPrefix(ub, "+CCWA=") || ub == "+CVHU=0" || ub == "+CSCS=\"IRA\"" || strings.HasPrefix(ub, "+CSCS="):
		return ok
	case ub == "+CLCC=?" || ub == "+VTS=?" || ub == "+CHUP=?":
		return ok
	case ub == "+CLCC":
		return m.clccLocked()
	case strings.HasPrefix(ub, "D") && strings.HasSuffix(ub, ";"):
		num := strings.TrimSuffix(body[1:], ";")
		if m.reject != "" && strings.HasPrefix(num, m.reject) {
			return "\r\n+CME ERROR: 3\r\n"
		}
		m.dialled = append(m.dialled, num)
		m.calls = append(m.calls, &Call{Index: m.nextIndexLocked(), Stat: StatDialing, Number: num})
		m.notifyLocked()
		return ok
	case ub == "A":
		for _, c := range m.calls {
			if c.Incoming && (c.Stat == StatIncoming || c.Stat == StatWaiting) {
				c.Stat = StatActive
				m.notifyLocked()
				return ok
			}
		}
		return "\r\nNO CARRIER\r\n"
	case ub == "H" || ub == "+CHUP" || ub == "H0":
		m.calls = nil
		m.notifyLocked()
		return ok
	case strings.HasPrefix(ub, "+CHLD=1") && len(ub) > len("+CHLD=1"):
		idx, err := strconv.Atoi(ub[len("+CHLD=1"):])
		if err != nil {
			return errAT
		}
		m.removeLocked(idx)
		return ok
	case strings.HasPrefix(ub, "+VTS="):
		d := strings.Trim(body[len("+VTS="):], `"`)
		if d == "" {
			return errAT
		}
		m.dtmf.WriteString(d[:1])
		m.notifyLocked()
		return ok
	}
	return errAT
}

func (m *Modem) nextIndexLocked() int {
	i := m.next
	m.next++
	return i
}

func (m *Modem) removeLocked(idx int) {
	out := m.calls[:0]
	for _, c := range m.calls {
		if c.Index != idx {
			out = append(out, c)
		}
	}
	m.calls = out
	m.notifyLocked()
}

func (m *Modem) clccLocked() string {
	var lines []string
	for _, c := range m.calls {
		dir := 0
		if c.Incoming {
			dir = 1
		}
		typ := 129
		if strings.HasPrefix(c.Number, "+") {
			typ = 145
		}
		lines = append(lines, fmt.Sprintf(`+CLCC: %d,%d,%d,0,0,"%s",%d`, c.Index, dir, c.Stat, c.Number, typ))
	}
	return info(lines...)
}

func (m *Modem) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// unsolicited writes an unsolicited result to the connection ModemManager
// last used.
func (m *Modem) unsolicitedLocked(lines ...string) error {
	if m.last == nil {
		return errors.New("fakeat: no connection")
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("\r\n" + l + "\r\n")
	}
	_, err := m.last.Write([]byte(b.String()))
	return err
}

// Ring starts an incoming call from number: the call is listed by +CLCC as
// incoming and RING and +CLIP are sent.
func (m *Modem) Ring(number string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	typ := 129
	if strings.HasPrefix(number, "+") {
		typ = 145
	}
	m.calls = append(m.calls, &Call{Index: m.nextIndexLocked(), Incoming: true, Stat: StatIncoming, Number: number})
	m.notifyLocked()
	return m.unsolicitedLocked("RING", fmt.Sprintf(`+CLIP: "%s",%d,,,,0`, number, typ))
}

// Alert makes the outgoing call ring at the far end (+CLCC stat 3).
func (m *Modem) Alert() error { return m.setOutgoing(StatAlerting) }

// RemoteAnswer makes the far end answer the outgoing call (+CLCC stat 0).
func (m *Modem) RemoteAnswer() error { return m.setOutgoing(StatActive) }

func (m *Modem) setOutgoing(stat int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.calls {
		if !c.Incoming {
			c.Stat = stat
			m.notifyLocked()
			return nil
		}
	}
	return errors.New("fakeat: no outgoing call")
}

// RemoteHangup ends every call from the far end: NO CARRIER.
func (m *Modem) RemoteHangup() error { return m.end("NO CARRIER") }

// Busy ends every call with BUSY, as a network reports a busy callee.
func (m *Modem) Busy() error { return m.end("BUSY") }

func (m *Modem) end(result string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = nil
	m.notifyLocked()
	return m.unsolicitedLocked(result)
}

// ReceiveDTMF reports a DTMF digit detected on the line (+RXDTMF, the
// SIMCom URC that ModemManager's simtech plugin turns into DtmfReceived).
func (m *Modem) ReceiveDTMF(digit rune) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.unsolicitedLocked("+RXDTMF: " + string(digit))
}

// Mute makes the modem stop answering commands while keeping its port open,
// as a crashed or unplugged modem does behind a USB serial port. ModemManager
// marks the modem invalid and removes it after consecutive timeouts.
func (m *Modem) Mute() {
	m.mu.Lock()
	m.mute = true
	m.mu.Unlock()
}

// Dialled returns the numbers dialled with ATD, in order.
func (m *Modem) Dialled() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.dialled...)
}

// DTMFSent returns the digits ModemManager sent with AT+VTS, in order.
func (m *Modem) DTMFSent() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dtmf.String()
}

// Calls returns a copy of the current call list.
func (m *Modem) Calls() []Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Call, len(m.calls))
	for i, c := range m.calls {
		out[i] = *c
	}
	return out
}

// Commands returns every command line received so far.
func (m *Modem) Commands() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.cmds...)
}

// WaitFor waits until cond (called under the modem's lock with a snapshot)
// holds or timeout passes; it reports whether cond held.
func (m *Modem) WaitFor(timeout time.Duration, cond func(m *Modem) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		ch := m.changed
		m.mu.Unlock()
		if cond(m) {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return cond(m)
		}
	}
}
