package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/internal/matrixclient"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// gatewayBinary builds the gateway command once per test binary.
func gatewayBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gateway-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "gateway")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = err
			t.Logf("%s", out)
		}
	})
	if binErr != nil {
		t.Fatalf("building gateway: %v", binErr)
	}
	return binPath
}

// startGatewayProcess runs `gateway run -c cfgPath` with its output in logPath.
// gwProc is a running gateway process.
type gwProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	code   int
}

func (p *gwProc) signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

func (p *gwProc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func startGatewayProcess(t *testing.T, cfgPath, logPath string) *gwProc {
	t.Helper()
	bin := gatewayBinary(t)
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-c", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &gwProc{cmd: cmd, exited: make(chan struct{})}
	exited := p.exited
	go func() {
		_ = cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		_ = logf.Close()
		if t.Failed() {
			dumpLog(t, logPath)
		}
	})
	// Wait until the appservice answers: the bot is registered by then.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(logPath)
		if strings.Contains(string(data), "gateway running") {
			return p
		}
		select {
		case <-exited:
			t.Fatalf("gateway exited at start with code %d", p.code)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("gateway did not start within 30s")
	return nil
}

// waitExit waits for the process to exit and returns its exit code.
func waitExit(t *testing.T, p *gwProc, d time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.code
	case <-time.After(d):
		t.Fatalf("gateway did not exit within %v", d)
		return -1
	}
}

func TestSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real peers; not run with -short")
	}
	t.Run("SIGTERM drains: the call goes on until hung up, then the gateway exits", func(t *testing.T) {
		e := startEnv(t, true)
		ghost, room := e.dmWith(e.alice, numAnswer)
		call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: ghost, ToneHz: userToneHz})
		if err != nil {
			t.Fatal(err)
		}
		waitClosed(t, call.Answered(), 20*time.Second, "m.call.answer")
		if err := e.proc.signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		select {
		case <-call.Ended():
			t.Fatalf("SIGTERM ended a live call (reason %q) instead of draining", call.HangupReason())
		default:
		}
		if !e.proc.running() {
			t.Fatal("the gateway exited with a call still up")
		}
		before := len(call.Received())
		time.Sleep(time.Second)
		if len(call.Received()) <= before {
			t.Error("audio stopped flowing during the drain")
		}
		if err := call.Hangup(ctxT(t, 10*time.Second), "user_hangup"); err != nil {
			t.Fatal(err)
		}
		if code := waitExit(t, e.proc, 15*time.Second); code != 0 {
			t.Errorf("exit code %d after drain", code)
		}
	})
	t.Run("SIGINT hangs up every call at once", func(t *testing.T) {
		e := startEnv(t, true)
		ghost, room := e.dmWith(e.alice, numAnswer)
		call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: ghost, ToneHz: userToneHz})
		if err != nil {
			t.Fatal(err)
		}
		waitClosed(t, call.Answered(), 20*time.Second, "m.call.answer")
		if _, err := e.answer.WaitEvent(ctxT(t, 10*time.Second), "CALL_ESTABLISHED"); err != nil {
			t.Fatal(err)
		}
		if err := e.proc.signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, call.Ended(), 10*time.Second, "m.call.hangup on SIGINT")
		if _, err := e.answer.WaitEvent(ctxT(t, 10*time.Second), "CALL_CLOSED"); err != nil {
			t.Fatalf("the phone got no BYE on SIGINT: %v", err)
		}
		if code := waitExit(t, e.proc, 15*time.Second); code != 0 {
			t.Errorf("exit code %d", code)
		}
	})
}
