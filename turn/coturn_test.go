package turn

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// These tests drive the server with coturn's own test client
// (turnutils_uclient, Debian package coturn) and its echo peer
// (turnutils_peer).

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := name + " not found: install the Debian package coturn (scripts/install-deps.sh) or set GATEWAY_SKIP_PEERS=1"
		if os.Getenv("GATEWAY_SKIP_PEERS") == "1" {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	return p
}

// startEchoPeer runs turnutils_peer on a free loopback port.
func startEchoPeer(t *testing.T) int {
	t.Helper()
	bin := requireTool(t, "turnutils_peer")
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	cmd := exec.Command(bin, "-L", "127.0.0.1", "-p", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return port
}

// uclient runs turnutils_uclient against port with args and returns its output.
func uclient(t *testing.T, port int, args ...string) string {
	t.Helper()
	bin := requireTool(t, "turnutils_uclient")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	all := append([]string{"-p", strconv.Itoa(port), "-X", "127.0.0.1"}, args...)
	all = append(all, "127.0.0.1")
	out, _ := exec.CommandContext(ctx, bin, all...).CombinedOutput()
	return string(out)
}

var (
	lostRe = regexp.MustCompile(`Total lost packets (\d+)`)
	sentRe = regexp.MustCompile(`tot_send_msgs=(\d+), tot_recv_msgs=(\d+)`)
)

// codeProxy forwards UDP between clients and the server and records the
// STUN error codes of the server's answers, as "Method:code".
type codeProxy struct {
	ln     *net.UDPConn
	server *net.UDPAddr
	mu     sync.Mutex
	codes  map[string]int
	ups    map[string]*net.UDPConn
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, server netip.AddrPort) *codeProxy {
	t.Helper()
	ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &codeProxy{ln: ln, server: net.UDPAddrFromAddrPort(server), codes: map[string]int{}, ups: map[string]*net.UDPConn{}}
	p.wg.Add(1)
	go p.run()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, u := range p.ups {
			u.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *codeProxy) port() int { return p.ln.LocalAddr().(*net.UDPAddr).Port }

func (p *codeProxy) run() {
	defer p.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := p.ln.ReadFromUDP(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		up := p.ups[from.String()]
		if up == nil {
			up, err = net.DialUDP("udp4", nil, p.server)
			if err != nil {
				p.mu.Unlock()
				continue
			}
			p.ups[from.String()] = up
			p.wg.Add(1)
			go p.back(up, from)
		}
		p.mu.Unlock()
		_, _ = up.Write(buf[:n])
	}
}

func (p *codeProxy) back(up *net.UDPConn, client *net.UDPAddr) {
	defer p.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, err := up.Read(buf)
		if err != nil {
			return
		}
		m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if stun.IsMessage(buf[:n]) && m.Decode() == nil && m.Type.Class == stun.ClassErrorResponse {
			var ec stun.ErrorCodeAttribute
			if ec.GetFrom(m) == nil {
				p.mu.Lock()
				p.codes[fmt.Sprintf("%s:%d", m.Type.Method, ec.Code)]++
				p.mu.Unlock()
			}
		}
		_, _ = p.ln.WriteToUDP(buf[:n], client)
	}
}

func (p *codeProxy) count(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.codes[key]
}

func (p *codeProxy) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprint(p.codes)
}

func TestCoturnClientRelaysWithRESTCredentialsWithoutLoss(t *testing.T) {
	peer := startEchoPeer(t)
	s := startServer(t, testConfig())
	const clients, msgs = 8, 200
	out := uclient(t, int(s.UDPAddr().Port()), "-W", "s3cret", "-u", "@alice:gw.test",
		"-e", "127.0.0.1", "-r", strconv.Itoa(peer), "-m", strconv.Itoa(clients), "-n", strconv.Itoa(msgs), "-l", "172", "-z", "5")
	lost := lostRe.FindStringSubmatch(out)
	sent := sentRe.FindAllStringSubmatch(out, -1)
	if lost == nil || len(sent) == 0 {
		t.Fatalf("uclient gave no summary:\n%s", out)
	}
	last := sent[len(sent)-1]
	t.Logf("uclient: sent %s, received %s, lost %s", last[1], last[2], lost[1])
	if lost[1] != "0" || last[1] != last[2] || last[1] != strconv.Itoa(clients*msgs) {
		t.Errorf("loss through the relay: %s\n%s", last[0], out)
	}
	st := s.Stats()
	if st.ToPeerPackets < clients*msgs || st.ToClientPackets < clients*msgs || st.AllocationsTotal < clients {
		t.Errorf("server stats %+v", st)
	}
}

func TestCoturnClientRefusedForWrongSecretAndExpiredName(t *testing.T) {
	peer := startEchoPeer(t)
	s := startServer(t, testConfig())
	proxy := startProxy(t, s.UDPAddr())
	out := uclient(t, proxy.port(), "-W", "not-the-secret", "-u", "@alice:gw.test", "-e", "127.0.0.1", "-r", strconv.Itoa(peer), "-n", "5")
	if !regexp.MustCompile(`Cannot complete Allocation`).MatchString(out) {
		t.Errorf("uclient with a wrong secret did not fail to allocate:\n%s", out)
	}
	if proxy.count("Allocate:401") < 2 { // the nonce challenge, then the refusal
		t.Errorf("wrong secret: answers %v, want 401s", proxy)
	}
	expiredName := strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10) + ":@alice:gw.test"
	out = uclient(t, proxy.port(), "-u", expiredName, "-w", RESTPassword("s3cret", expiredName), "-e", "127.0.0.1", "-r", strconv.Itoa(peer), "-n", "5")
	if !regexp.MustCompile(`Cannot complete Allocation`).MatchString(out) {
		t.Errorf("uclient with an expired name did not fail to allocate:\n%s", out)
	}
	st := s.Stats()
	if st.AuthFailures["bad_password"] == 0 || st.AuthFailures["expired"] == 0 || st.AllocationsTotal != 0 {
		t.Errorf("stats %+v (answers %v)", st, proxy)
	}
}

func TestCoturnClientDeniedLoopbackPeerByDefault(t *testing.T) {
	peer := startEchoPeer(t)
	cfg := testConfig()
	cfg.AllowedPeers = nil
	s := startServer(t, cfg)
	proxy := startProxy(t, s.UDPAddr())
	out := uclient(t, proxy.port(), "-W", "s3cret", "-u", "@alice:gw.test", "-e", "127.0.0.1", "-r", strconv.Itoa(peer), "-n", "20")
	st := s.Stats()
	if proxy.count("CreatePermission:403")+proxy.count("ChannelBind:403") == 0 || st.PeerRefusals == 0 {
		t.Errorf("no 403 for a loopback peer: answers %v, stats %+v\n%s", proxy, st, out)
	}
	if st.ToPeerPackets != 0 {
		t.Errorf("%d packets relayed to a denied peer", st.ToPeerPackets)
	}
}
