package testpeers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SippBusy is a UAS scenario that answers INVITE with 100 Trying and 486 Busy Here.
const SippBusy = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="busy">
  <recv request="INVITE" />
  <send><![CDATA[

SIP/2.0 100 Trying
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

  ]]></send>
  <send><![CDATA[

SIP/2.0 486 Busy Here
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

  ]]></send>
  <recv request="ACK" />
</scenario>
`

// SippNeverAnswer is a UAS scenario that rings (180) until the caller's CANCEL, then answers
// 200 to the CANCEL and 487 Request Terminated to the INVITE.
const SippNeverAnswer = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="never-answer">
  <recv request="INVITE">
    <action>
      <ereg regexp="([0-9]+) INVITE" search_in="hdr" header="CSeq:" assign_to="dummy,cseqnum" />
    </action>
  </recv>
  <send><![CDATA[

SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

  ]]></send>
  <recv request="CANCEL" />
  <send><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

  ]]></send>
  <send><![CDATA[

SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
CSeq: [$cseqnum] INVITE
Content-Length: 0

  ]]></send>
  <recv request="ACK" />
  <Reference variables="dummy" />
</scenario>
`

// SippOptions configures StartSippUAS.
type SippOptions struct {
	// Port is the UDP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Calls is how many calls the scenario handles before sipp exits (-m); default 1.
	Calls int
	// Timeout is sipp's global timeout (-timeout); default 60 s.
	Timeout time.Duration
	// Args are extra sipp arguments.
	Args []string
}

// Sipp is a running sipp process.
type Sipp struct {
	// Port is the SIP UDP port on 127.0.0.1.
	Port int
	// Addr is "127.0.0.1:<Port>".
	Addr string
	// Dir holds the scenario, logs and traces; LogPath is sipp's output.
	Dir, LogPath string

	proc *proc
}

// StartSippUAS runs sipp as a UAS on 127.0.0.1 with scenario, which is either XML text (such as
// SippBusy or SippNeverAnswer) or the name of a built-in sipp scenario such as "uas".
// t.Cleanup stops it.
func StartSippUAS(t testing.TB, scenario string, opts SippOptions) *Sipp {
	t.Helper()
	bin := requireCommand(t, "sipp")
	if opts.Port == 0 {
		opts.Port = FreeUDPPort(t)
	}
	if opts.Calls == 0 {
		opts.Calls = 1
	}
	if opts.Timeout == 0 {
		opts.Timeout = 60 * time.Second
	}
	dir := t.TempDir()
	s := &Sipp{Port: opts.Port, Addr: fmt.Sprintf("127.0.0.1:%d", opts.Port), Dir: dir, LogPath: filepath.Join(dir, "sipp.log")}
	args := []string{}
	if strings.HasPrefix(strings.TrimSpace(scenario), "<") {
		path := filepath.Join(dir, "scenario.xml")
		if err := os.WriteFile(path, []byte(scenario), 0o644); err != nil {
			t.Fatalf("testpeers: %v", err)
		}
		args = append(args, "-sf", path)
	} else {
		args = append(args, "-sn", scenario)
	}
	args = append(args,
		"-i", "127.0.0.1", "-p", strconv.Itoa(opts.Port), "-t", "u1",
		"-m", strconv.Itoa(opts.Calls),
		"-timeout", fmt.Sprintf("%ds", int(opts.Timeout.Seconds())), "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		"-trace_msg", "-message_file", filepath.Join(dir, "messages.log"),
		"-nostdin",
	)
	args = append(args, opts.Args...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	s.proc = startProc(t, "sipp", cmd, s.LogPath, 2*time.Second)
	if err := waitUDPBound(opts.Port, 5*time.Second, func() bool { return !s.proc.exited() }); err != nil {
		t.Fatalf("testpeers: sipp: %v (%v)\n%s", err, s.proc.exitError(), tailFile(s.LogPath, 2000))
	}
	return s
}

// URI returns a SIP URI with user at this sipp.
func (s *Sipp) URI(user string) string { return fmt.Sprintf("sip:%s@%s", user, s.Addr) }

// Wait waits until sipp exits and returns nil if every call followed the scenario (exit 0).
func (s *Sipp) Wait(timeout time.Duration) error {
	select {
	case <-s.proc.done:
	case <-time.After(timeout):
		return fmt.Errorf("testpeers: sipp still running after %v", timeout)
	}
	if s.proc.err != nil {
		return fmt.Errorf("testpeers: sipp: %w\n%s\n%s", s.proc.err, tailFile(filepath.Join(s.Dir, "errors.log"), 2000), tailFile(s.LogPath, 2000))
	}
	return nil
}

// Messages returns sipp's trace of sent and received SIP messages so far.
func (s *Sipp) Messages() string {
	data, _ := os.ReadFile(filepath.Join(s.Dir, "messages.log"))
	return string(data)
}

// Stop stops sipp. Cleanup calls it too; it is idempotent.
func (s *Sipp) Stop() { s.proc.stop(2 * time.Second) }

// waitUDPBound waits until something listens on UDP port of 127.0.0.1 (binding it fails).
func waitUDPBound(port int, timeout time.Duration, alive func() bool) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !alive() {
			return fmt.Errorf("process ended")
		}
		if udpPortInUse(port) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("port %d not bound within %v", port, timeout)
}
