package sip

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/signalling"
)

// sippPath returns the sipp binary. Tests against it must run: a missing
// sipp fails them, unless GATEWAY_SKIP_PEERS=1 says the machine has no peers.
func sippPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("GATEWAY_SKIP_PEERS") == "1" {
			t.Skip("sipp not installed and GATEWAY_SKIP_PEERS=1")
		}
		t.Fatalf("sipp not installed (apt-get install sip-tester), or set GATEWAY_SKIP_PEERS=1: %v", err)
	}
	return p
}

// freeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

type sippRun struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
	port int
	mp   int
}

// startSipp runs a one-call sipp UAS on 127.0.0.1 with the given scenario
// arguments (e.g. "-sn", "uas") and waits until it listens.
func startSipp(t *testing.T, scenario ...string) *sippRun {
	t.Helper()
	bin := sippPath(t)
	r := &sippRun{port: freeUDPPort(t), mp: freeUDPPort(t), done: make(chan error, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	args := append(append([]string{}, scenario...),
		"-i", "127.0.0.1", "-p", strconv.Itoa(r.port), "-mp", strconv.Itoa(r.mp),
		"-m", "1", "-timeout", "30s", "-timeout_error", "-nostdin")
	r.cmd = exec.CommandContext(ctx, bin, args...)
	r.cmd.Stdout = &r.out
	r.cmd.Stderr = &r.out
	r.cmd.Dir = t.TempDir() // sipp may write logs into its working directory
	if err := r.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting sipp: %v", err)
	}
	go func() { r.done <- r.cmd.Wait(); cancel() }()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
	// Wait (bounded) until sipp's SIP port is bound.
	for i := 0; i < 200; i++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(r.port))
		if err != nil {
			return r // in use: sipp is listening
		}
		_ = pc.Close()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("sipp did not bind port %d:\n%s", r.port, r.out.String())
	return r
}

// wait waits (bounded) for sipp to exit and fails if its scenario failed.
func (r *sippRun) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("sipp failed: %v\n%s", err, tail(r.out.String(), 3000))
		}
	case <-time.After(40 * time.Second):
		t.Errorf("sipp did not finish:\n%s", tail(r.out.String(), 3000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestSippUASAnswers(t *testing.T) {
	sp := startSipp(t, "-sn", "uas")
	u := newTestUA(t)
	fm := &fakeMedia{}
	rec := newRecorder()
	leg, err := u.Dialer(testTrunk(sp.port, "udp"), fm).Dial(context.Background(), testRequest(), rec)
	if err != nil {
		t.Fatal(err)
	}
	// sipp sends 180 and 200 back to back; sipgo hands each received
	// message to its own goroutine, so the 180 may lose the race and be
	// dropped after the 200. Ringing is optional here, the answer is not.
	if ev := rec.next(t, evWait); ev.Type == signalling.EventRinging {
		rec.expect(t, signalling.EventAnswered, evWait)
	} else if ev.Type != signalling.EventAnswered {
		t.Fatalf("event %s (%s, %q), want answered", ev.Type, ev.Cause, ev.Detail)
	}
	st := <-fm.last().started
	want := startArgs{remote: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sp.mp)), codec: "PCMU", pt: 0}
	if st != want {
		t.Errorf("media started with %+v, want %+v", st, want)
	}
	leg.Hangup(context.Background(), signalling.CauseNormal)
	waitDone(t, leg)
	sp.wait(t) // sipp's uas scenario succeeds only if it got ACK and BYE
	rec.quiet(t, 100*time.Millisecond)
	if !fm.allClosed() {
		t.Error("media session not closed")
	}
}

func TestSippUASBusy(t *testing.T) {
	scen, err := filepath.Abs("testdata/uas_486.xml")
	if err != nil {
		t.Fatal(err)
	}
	sp := startSipp(t, "-sf", scen)
	u := newTestUA(t)
	fm := &fakeMedia{}
	rec := newRecorder()
	leg, err := u.Dialer(testTrunk(sp.port, "udp"), fm).Dial(context.Background(), testRequest(), rec)
	if err != nil {
		t.Fatal(err)
	}
	ev := rec.expect(t, signalling.EventHangup, evWait)
	if ev.Cause != signalling.CauseBusy || ev.Detail != "SIP 486 Busy Here" {
		t.Errorf("hangup %s %q", ev.Cause, ev.Detail)
	}
	waitDone(t, leg)
	sp.wait(t) // the scenario succeeds only if sipp got the ACK for the 486
	if !fm.allClosed() {
		t.Error("media session not closed")
	}
}
