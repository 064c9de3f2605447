package testpeers

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// proc is a child process whose output goes to a log file and which is stopped on cleanup.
type proc struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// startProc starts cmd with stdout and stderr appended to logPath and registers a cleanup that
// sends SIGTERM, waits up to grace, then kills. On test failure the log's tail is printed.
func startProc(t testing.TB, name string, cmd *exec.Cmd, logPath string, grace time.Duration) *proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("testpeers: %s log: %v", name, err)
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("testpeers: start %s: %v", name, err)
	}
	p := &proc{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(grace)
		if t.Failed() {
			t.Logf("testpeers: tail of %s log %s:\n%s", name, logPath, tailFile(logPath, 4000))
		}
	})
	return p
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then kills and waits up to 5 s more. Idempotent.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// exitError describes how the process ended, for error messages.
func (p *proc) exitError() error {
	if !p.exited() {
		return nil
	}
	if p.err == nil {
		return fmt.Errorf("exited with status 0")
	}
	return p.err
}
