package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/configs"
	"github.com/matrix-gateway/gateway/internal/testpeers"
	"github.com/matrix-gateway/gateway/modem/modemtest"
	"github.com/matrix-gateway/gateway/modem/modemtest/fakeat"
)

// runGatewayBin runs the gateway binary with args and returns its stdout.
func runGatewayBin(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatewayBinary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("gateway %v: %w: %s", args, err, errb.String())
	}
	return out.String(), err
}

// modemEnv is `gateway run` with the modem backend, its peers and buses.
type modemEnv struct {
	fake    *fakeat.Modem
	phone   *testpeers.Baresip
	mmBus   *modemtest.Bus
	session *modemtest.Bus
	proc    *gwProc
}

const ipNumber, gsmNumber = "+15550103000", "+15550103001"

// startModemEnv starts the real ModemManager on a fake AT modem, a baresip
// phone behind a trunk, Dendrite and `gateway run` with the modem backend
// (link probes every probeInterval) and the dialler API on a private bus.
func startModemEnv(t *testing.T, probeInterval string) *modemEnv {
	modemtest.Skip(t)
	dir := t.TempDir()
	mmBus := modemtest.StartBus(t)
	session := modemtest.StartBus(t)
	port := fmt.Sprintf("abstract:gw-e2e-%d", time.Now().UnixNano()%1e9)
	fake, err := fakeat.New(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })
	mm := modemtest.StartMM(t, mmBus)
	mm.AddModem(t, "fake1", "simtech", port)

	phone := testpeers.StartBaresip(t, testpeers.BaresipOptions{Users: []string{ipNumber[1:], gsmNumber[1:]}, ToneSeconds: 60})
	hsPort, asPort := freeHSAndASPorts(t)
	sipPort := testpeers.FreeUDPPort(t)
	cfgText := fmt.Sprintf(`
homeserver:
  url: http://127.0.0.1:%d
  domain: localhost
appservice:
  registration: registration.yaml
  listen: 127.0.0.1:%d
authorization:
  users: ["@alice:localhost"]
  numbers: ["+1*"]
sip:
  listen: 127.0.0.1:%d
  trunks:
    - name: phone
      host: 127.0.0.1
      port: %d
      number_format: e164_no_plus
      setup_timeout: 2s
media:
  rtp_listen_ip: 127.0.0.1
  rtp_port_min: 41000
  rtp_port_max: 41999
logging:
  level: debug
modem:
  enabled: true
  bus: %s
  ip_setup_timeout: 2s
  links:
    probe_interval: %s
    probe_timeout: 250ms
  routes:
    - numbers: ["+1555*"]
      via: ["sip:phone", "modem"]
  dialler:
    bus: %s
`, hsPort, asPort, sipPort, phone.SIPPort, mmBus.Address, probeInterval, session.Address)
	cfgPath, regPath := writeEnvConfig(t, dir, cfgText, asPort)
	if _, err := configs.Load(cfgPath); err != nil {
		t.Fatalf("config with a modem section: %v", err)
	}
	testpeers.StartDendrite(t, testpeers.DendriteOptions{Port: hsPort, Registrations: []string{regPath}})
	logPath := filepath.Join(dir, "gateway.log")
	proc := startGatewayProcess(t, cfgPath, logPath)
	// Wait until ModemManager reports the modem registered (the gateway enables it).
	mmConn := mmBus.Conn(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st int32
		v, err := mmConn.Object("org.freedesktop.ModemManager1", "/org/freedesktop/ModemManager1/Modem/0").
			GetProperty("org.freedesktop.ModemManager1.Modem.State")
		if err == nil {
			st, _ = v.Value().(int32)
		}
		if st >= 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("modem not registered (state %d, %v)", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return &modemEnv{fake: fake, phone: phone, mmBus: mmBus, session: session, proc: proc}
}

// TestModemE2E runs `gateway run` with the modem backend against the real
// ModemManager (test mode, fake AT modem) and a baresip phone behind a SIP
// trunk, and drives it with `gateway dial`, `gateway calls` and `gateway
// hangup`: IP first while the trunk answers, GSM once the trunk is stopped.
func TestModemE2E(t *testing.T) {
	e := startModemEnv(t, "300ms")
	fake, phone := e.fake, e.phone
	bus := "-bus=" + e.session.Address

	// IP path healthy: the call goes over the SIP trunk.
	out, err := runGatewayBin(t, "dial", bus, ipNumber)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(out)
	if len(f) != 2 || f[1] != "sip:phone" {
		t.Fatalf("gateway dial: %q, want \"<id> sip:phone\"", out)
	}
	id := f[0]
	waitCalls(t, bus, func(s string) bool { return strings.Contains(s, id) && strings.Contains(s, "active") }, "IP call active")
	if out, err := runGatewayBin(t, "hangup", bus, id); err != nil || !strings.Contains(out, "hung up "+id) {
		t.Fatalf("gateway hangup: %q %v", out, err)
	}
	waitCalls(t, bus, func(s string) bool { return !strings.Contains(s, id) }, "IP call gone")
	if d := fake.Dialled(); len(d) != 0 {
		t.Fatalf("modem dialled %v while the IP path was healthy", d)
	}

	// The trunk stops: after a few probe intervals the same request goes over GSM.
	phone.Stop()
	time.Sleep(2 * time.Second) // over 6 probe intervals of 300 ms
	done := make(chan string, 1)
	go func() {
		out, err := runGatewayBin(t, "dial", bus, "-follow=60s", gsmNumber)
		if err != nil {
			out += err.Error()
		}
		done <- out
	}()
	if !fake.WaitFor(30*time.Second, func(m *fakeat.Modem) bool { d := m.Dialled(); return len(d) == 1 && d[0] == gsmNumber }) {
		t.Fatalf("modem did not dial %s: %v", gsmNumber, fake.Dialled())
	}
	if err := fake.RemoteAnswer(); err != nil {
		t.Fatal(err)
	}
	calls := waitCalls(t, bus, func(s string) bool { return strings.Contains(s, gsmNumber) && strings.Contains(s, "active") }, "GSM call active")
	if !strings.Contains(calls, "modem") || !strings.HasPrefix(calls, "ID") {
		t.Fatalf("gateway calls:\n%s", calls)
	}
	time.Sleep(300 * time.Millisecond) // ModemManager's in-call URC handlers follow the state change
	if err := fake.RemoteHangup(); err != nil {
		t.Fatal(err)
	}
	var follow string
	select {
	case follow = <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("gateway dial -follow did not return")
	}
	lines := strings.Split(strings.TrimSpace(follow), "\n")
	if len(lines) < 3 || !strings.HasSuffix(lines[0], "\tmodem") && !strings.HasSuffix(lines[0], "\tsip:phone") ||
		!strings.Contains(follow, "CallStateChanged [active ]") || lines[len(lines)-1] != "CallStateChanged [ended normal]" {
		t.Fatalf("gateway dial -follow output:\n%s", follow)
	}
	if !strings.HasSuffix(lines[0], "\tmodem") {
		t.Errorf("route after the trunk stopped: %q, want modem first", lines[0])
	}
	t.Logf("gateway dial -follow:\n%s", follow)
}

// waitCalls polls `gateway calls` until cond holds (bounded) and returns its output.
func waitCalls(t *testing.T, bus string, cond func(string) bool, what string) string {
	t.Helper()
	var out string
	for i := 0; i < 150; i++ {
		var err error
		if out, err = runGatewayBin(t, "calls", bus); err != nil {
			t.Fatal(err)
		}
		if cond(out) {
			return out
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not seen in `gateway calls`:\n%s", what, out)
	return ""
}

// TestModemIdleFootprint measures the RSS and CPU of an idle `gateway run`
// with the modem backend on (default 5 s link probes). It only reports:
// GATEWAY_MEASURE=1 go test -run TestModemIdleFootprint -v ./cmd/gateway
func TestModemIdleFootprint(t *testing.T) {
	if os.Getenv("GATEWAY_MEASURE") == "" {
		t.Skip("set GATEWAY_MEASURE=1 to measure")
	}
	e := startModemEnv(t, "5s")
	pid := e.proc.cmd.Process.Pid
	time.Sleep(5 * time.Second) // settle after start
	cpu0, t0 := procCPU(t, pid), time.Now()
	time.Sleep(60 * time.Second)
	cpu1, t1 := procCPU(t, pid), time.Now()
	t.Logf("idle gateway with the modem backend: RSS %s, CPU %.2f%% of one core over %s",
		procRSS(t, pid), 100*(cpu1-cpu0).Seconds()/t1.Sub(t0).Seconds(), t1.Sub(t0).Round(time.Second))
}

// procCPU returns the process's user+system CPU time (Linux /proc, 100 Hz ticks).
func procCPU(t *testing.T, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	var u, s int64
	fmt.Sscan(f[11], &u)
	fmt.Sscan(f[12], &s)
	return time.Duration(u+s) * 10 * time.Millisecond
}

func procRSS(t *testing.T, pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.Join(strings.Fields(l)[1:], " ")
		}
	}
	return "?"
}
