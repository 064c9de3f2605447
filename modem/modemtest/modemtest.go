// Package modemtest runs the real ModemManager in test mode on a private
// dbus-daemon, driving a fake AT modem, for the tests of the modem backend
// and of the gateway command.
package modemtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// ModemManagerPath is where Debian's modemmanager package installs the daemon.
const ModemManagerPath = "/usr/sbin/ModemManager"

// Skip skips t when dbus-daemon or ModemManager is missing and
// GATEWAY_SKIP_PEERS is set; otherwise a missing binary fails the test.
func Skip(t testing.TB) {
	t.Helper()
	var missing []string
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		missing = append(missing, "dbus-daemon")
	}
	if _, err := os.Stat(ModemManagerPath); err != nil {
		missing = append(missing, ModemManagerPath)
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("GATEWAY_SKIP_PEERS") != "" {
		t.Skipf("missing %v (GATEWAY_SKIP_PEERS set)", missing)
	}
	t.Fatalf("missing %v: run scripts/install-deps.sh (Debian packages modemmanager, dbus-daemon) or set GATEWAY_SKIP_PEERS=1", missing)
}

// Bus is a private dbus-daemon.
type Bus struct {
	Address string
	cmd     *exec.Cmd
}

// StartBus starts a private session dbus-daemon listening on a unix socket
// in a temporary directory; it is stopped when the test ends.
func StartBus(t testing.TB) *Bus {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "bus.conf")
	sock := filepath.Join(dir, "bus")
	err := os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=`+sock+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--print-address=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("modemtest: dbus-daemon: %v", err)
	}
	b := &Bus{cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("modemtest: dbus-daemon address: %v", err)
	}
	b.Address = strings.TrimSpace(line)
	return b
}

// Conn opens a new connection to the bus, closed when the test ends.
func (b *Bus) Conn(t testing.TB) *dbus.Conn {
	t.Helper()
	c, err := dbus.Connect(b.Address)
	if err != nil {
		t.Fatalf("modemtest: connect %s: %v", b.Address, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// MM is a running ModemManager in test mode.
type MM struct {
	bus  *Bus
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StartMM starts ModemManager on bus (no udev, no auto scan, no polkit) and
// waits until it owns its name. It is stopped when the test ends; its debug
// log is printed when the test failed.
func StartMM(t testing.TB, bus *Bus) *MM {
	t.Helper()
	cmd := exec.Command(ModemManagerPath, "--test-session", "--test-enable", "--test-no-udev",
		"--no-auto-scan", "--debug")
	cmd.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+bus.Address)
	m := &MM{bus: bus, cmd: cmd, log: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = m.log
	cmd.Stderr = m.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("modemtest: ModemManager: %v", err)
	}
	go func() { _ = cmd.Wait(); close(m.done) }()
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			if dir := os.Getenv("MODEMTEST_LOGDIR"); dir != "" {
				name := filepath.Join(dir, strings.NewReplacer("/", "_").Replace(t.Name())+".mm.log")
				_ = os.WriteFile(name, []byte(m.log.String()), 0o644)
				t.Logf("ModemManager log written to %s", name)
			}
			t.Logf("ModemManager log (tail):\n%s", tail(m.log.String(), 60))
		}
	})
	c := bus.Conn(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var has bool
		err := c.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, "org.freedesktop.ModemManager1").Store(&has)
		if err == nil && has {
			return m
		}
		select {
		case <-m.done:
			t.Fatalf("modemtest: ModemManager exited:\n%s", tail(m.log.String(), 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("modemtest: ModemManager did not take its bus name in 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop terminates ModemManager and waits (bounded) for it to exit.
func (m *MM) Stop() {
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
}

// Log returns what ModemManager logged so far.
func (m *MM) Log() string { return m.log.String() }

// AddModem asks ModemManager's test interface to probe port (an abstract
// socket name such as "abstract:fake0") with plugin ("generic", "simtech").
func (m *MM) AddModem(t testing.TB, id, plugin, port string) {
	t.Helper()
	c := m.bus.Conn(t)
	obj := c.Object("org.freedesktop.ModemManager1", "/org/freedesktop/ModemManager1")
	call := obj.Call("org.freedesktop.ModemManager1.Test.SetProfile", 0, id, plugin, []string{port})
	if call.Err != nil {
		t.Fatalf("modemtest: SetProfile: %v", call.Err)
	}
}

// RemoveModem makes ModemManager unexport the modem at path, as when the
// device is unplugged: it inhibits the modem's device through a connection
// kept open until the test ends (ModemManager lifts the inhibition when the
// caller leaves the bus).
func (m *MM) RemoveModem(t testing.TB, path dbus.ObjectPath) {
	t.Helper()
	c := m.bus.Conn(t)
	v, err := c.Object("org.freedesktop.ModemManager1", path).GetProperty("org.freedesktop.ModemManager1.Modem.Device")
	if err != nil {
		t.Fatalf("modemtest: modem device: %v", err)
	}
	uid, _ := v.Value().(string)
	obj := c.Object("org.freedesktop.ModemManager1", "/org/freedesktop/ModemManager1")
	if err := obj.Call("org.freedesktop.ModemManager1.InhibitDevice", 0, uid, true).Err; err != nil {
		t.Fatalf("modemtest: InhibitDevice %q: %v", uid, err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// String describes the bus for logs.
func (b *Bus) String() string { return fmt.Sprintf("dbus-daemon at %s", b.Address) }
