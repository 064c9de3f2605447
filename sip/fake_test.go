package sip

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipgosip "github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/media"
	"github.com/matrix-gateway/gateway/signalling"
)

// ---- fake media ----

type startArgs struct {
	remote netip.AddrPort
	codec  string
	pt     uint8
	dtmfPT uint8
}

type fakeSession struct {
	addr    netip.AddrPort
	started chan startArgs
	closed  atomic.Int32
}

func (s *fakeSession) LocalAddr() netip.AddrPort { return s.addr }
func (s *fakeSession) Start(remote netip.AddrPort, codec string, pt, dtmfPT uint8) error {
	s.started <- startArgs{remote, codec, pt, dtmfPT}
	return nil
}
func (s *fakeSession) Endpoint() media.Endpoint { return fakeEndpoint{} }
func (s *fakeSession) Close() error {
	s.closed.Add(1)
	return nil
}

type fakeEndpoint struct{}

func (fakeEndpoint) Rates() []int                        { return []int{8000} }
func (fakeEndpoint) Writer(int) (media.PCMWriter, error) { return nil, nil }
func (fakeEndpoint) SetSink(int, media.PCMWriter) error  { return nil }
func (fakeEndpoint) String() string                      { return "fake/8000" }
func (fakeEndpoint) WritePCM([]int16) error              { return nil }
func (f *fakeMedia) last() *fakeSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sessions[len(f.sessions)-1]
}
func (f *fakeMedia) count() int      { f.mu.Lock(); defer f.mu.Unlock(); return len(f.sessions) }
func (f *fakeMedia) allClosed() bool { return f.closedCount() == f.count() }
func (f *fakeMedia) closedCount() (n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sessions {
		if s.closed.Load() > 0 {
			n++
		}
	}
	return n
}

type fakeMedia struct {
	mu       sync.Mutex
	sessions []*fakeSession
	nextPort uint16
}

func (f *fakeMedia) NewSession() (MediaSession, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextPort += 2
	s := &fakeSession{
		addr:    netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 30000+f.nextPort),
		started: make(chan startArgs, 1),
	}
	f.sessions = append(f.sessions, s)
	return s, nil
}

// ---- event recorder ----

type recorder struct{ ch chan signalling.Event }

func newRecorder() *recorder { return &recorder{ch: make(chan signalling.Event, 32)} }

func (r *recorder) Post(ev signalling.Event) { r.ch <- ev }

// next waits (bounded) for the next event.
func (r *recorder) next(t *testing.T, within time.Duration) signalling.Event {
	t.Helper()
	select {
	case ev := <-r.ch:
		return ev
	case <-time.After(within):
		t.Fatalf("no event within %s", within)
	}
	return signalling.Event{}
}

// expect waits for the next event and checks its type.
func (r *recorder) expect(t *testing.T, typ signalling.EventType, within time.Duration) signalling.Event {
	t.Helper()
	ev := r.next(t, within)
	if ev.Type != typ {
		t.Fatalf("event %s (cause %s, %q), want %s", ev.Type, ev.Cause, ev.Detail, typ)
	}
	return ev
}

// quiet checks that no event arrives for d.
func (r *recorder) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case ev := <-r.ch:
		t.Fatalf("unexpected event %s (cause %s, %q)", ev.Type, ev.Cause, ev.Detail)
	case <-time.After(d):
	}
}

// ---- fake trunk: a sipgo UAS on 127.0.0.1 ----

type inviteHandler func(ft *fakeTrunk, d *sipgo.DialogServerSession, req *sipgosip.Request, tx sipgosip.ServerTransaction)

type fakeTrunk struct {
	t       *testing.T
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	dc      *sipgo.DialogServerCache
	port    int
	invites chan *sipgosip.Request
	cancels chan *sipgosip.Request
	acks    chan *sipgosip.Request
	byes    chan *sipgosip.Request
	dialogs chan *sipgo.DialogServerSession
	handle  inviteHandler
	stop    chan struct{}
	// handlers counts running INVITE handlers; cleanup waits for them so
	// that none reports after its test has ended.
	handlers sync.WaitGroup
	mu       sync.Mutex
	closed   bool // set by cleanup; handlers arriving later do nothing
}

func newFakeTrunk(t *testing.T, handle inviteHandler) *fakeTrunk {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("fake-trunk"), sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransportLayerOptions(sipgosip.WithTransportLayerLogger(quiet)),
		sipgo.WithUserAgentTransactionLayerOptions(sipgosip.WithTransactionLayerLogger(quiet)))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	pc, ln := listenBoth(t)
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ft := &fakeTrunk{
		t: t, ua: ua, srv: srv, port: port,
		dc: sipgo.NewDialogServerCache(cli, sipgosip.ContactHeader{
			Address: sipgosip.Uri{Scheme: "sip", User: "trunk", Host: "127.0.0.1", Port: port},
		}),
		invites: make(chan *sipgosip.Request, 8),
		cancels: make(chan *sipgosip.Request, 8),
		acks:    make(chan *sipgosip.Request, 8),
		byes:    make(chan *sipgosip.Request, 8),
		dialogs: make(chan *sipgo.DialogServerSession, 8),
		handle:  handle,
		stop:    make(chan struct{}),
	}
	srv.OnInvite(func(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
		if !ft.enter() {
			return
		}
		defer ft.handlers.Done()
		ft.invites <- req.Clone()
		tx.OnCancel(func(r *sipgosip.Request) { ft.cancels <- r.Clone() })
		d, err := ft.dc.ReadInvite(req, tx)
		if err != nil {
			t.Errorf("fake trunk: ReadInvite: %v", err)
			return
		}
		ft.dialogs <- d
		ft.handle(ft, d, req, tx)
	})
	srv.OnAck(func(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
		if !ft.enter() {
			return
		}
		defer ft.handlers.Done()
		ft.acks <- req.Clone()
		_ = ft.dc.ReadAck(req, tx)
	})
	srv.OnBye(func(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
		if !ft.enter() {
			return
		}
		defer ft.handlers.Done()
		ft.byes <- req.Clone()
		if err := ft.dc.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sipgosip.NewResponseFromRequest(req, 481, "No Dialog", nil))
		}
	})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = srv.ServeUDP(pc) }()
	go func() { defer wg.Done(); _ = srv.ServeTCP(ln) }()
	t.Cleanup(func() {
		ft.mu.Lock()
		ft.closed = true // no handler starts after this: WaitGroup.Add must not race with Wait
		ft.mu.Unlock()
		close(ft.stop)
		_ = pc.Close()
		_ = ln.Close()
		_ = ua.Close()
		wg.Wait()
		ft.handlers.Wait()
	})
	return ft
}

// listenBoth opens UDP and TCP on the same free port of 127.0.0.1.
func listenBoth(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	for i := 0; i < 20; i++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		_ = pc.Close()
	}
	t.Fatal("no free port for UDP and TCP")
	return nil, nil
}

// waitStop blocks a handler until the test ends or the transaction ends.
func (ft *fakeTrunk) waitStop(tx sipgosip.ServerTransaction) {
	select {
	case <-ft.stop:
	case <-tx.Done():
	}
}

// recv waits (bounded) for a request on ch.
func recv(t *testing.T, ch chan *sipgosip.Request, what string) *sipgosip.Request {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("fake trunk: no %s received", what)
	}
	return nil
}

const answerSDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n" +
	"a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"

// ---- the UA under test ----

func newTestUA(t *testing.T) *UA {
	t.Helper()
	u, err := New(Config{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })
	return u
}

func testTrunk(port int, transport string) Trunk {
	return Trunk{
		Name:         "test",
		Host:         "127.0.0.1",
		Port:         port,
		Transport:    transport,
		FromDomain:   "gw.example.org",
		SetupTimeout: 2 * time.Second,
		RingTimeout:  10 * time.Second,
	}
}

func testRequest() signalling.DialRequest {
	return signalling.DialRequest{
		CallID: signalling.NewCallID(),
		From:   signalling.Party{Number: "+4930111111", DisplayName: "Alice \"A\"", MatrixUser: "@alice:example.org"},
		To:     signalling.Party{Number: "+4930222222"},
	}
}

// waitDone waits (bounded) for a leg's goroutine to finish.
func waitDone(t *testing.T, l signalling.Leg) {
	t.Helper()
	select {
	case <-l.(*Leg).Done():
	case <-time.After(15 * time.Second):
		t.Fatal("leg did not finish")
	}
}

var _ = context.Background

// lockedWriter lets a logger write from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  interface{ Write([]byte) (int, error) }
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func newTestLogger(w interface{ Write([]byte) (int, error) }) zerolog.Logger {
	return zerolog.New(&lockedWriter{w: w}).Level(zerolog.DebugLevel)
}

// enter counts a handler in, unless the trunk is shutting down.
func (ft *fakeTrunk) enter() bool {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if ft.closed {
		return false
	}
	ft.handlers.Add(1)
	return true
}
