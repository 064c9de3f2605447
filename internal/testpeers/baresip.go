package testpeers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// AnswerMode is how a baresip phone treats incoming calls.
type AnswerMode int

const (
	// AnswerAuto answers every incoming call at once (after a 180 Ringing).
	AnswerAuto AnswerMode = iota
	// AnswerBusy rejects every incoming call with "486 Rejected" after a 180 Ringing.
	AnswerBusy
	// AnswerManual lets the call ring until Accept, Hangup or the caller's CANCEL.
	AnswerManual
)

// BaresipOptions configures StartBaresip; the zero value is an auto-answering phone "phone"
// that plays a 1000 Hz tone for 10 s over PCMU/PCMA.
type BaresipOptions struct {
	// Users are the user parts the phone answers to (baresip 1.0 has no catch-all: a request URI
	// whose user is not listed gets 404). Default ["phone"]. The first is used for dialling out.
	Users []string
	// Answer is the answer mode; default AnswerAuto.
	Answer AnswerMode
	// WAV is the 16-bit WAV file the phone plays; the call ends when it ends. Default: a tone
	// of ToneHz for ToneSeconds at 8 kHz, generated in the phone's directory.
	WAV string
	// ToneHz is the tone frequency when WAV is empty; default 1000.
	ToneHz float64
	// ToneSeconds is the tone length when WAV is empty; default 10.
	ToneSeconds float64
	// Codecs lists the audio codecs in order, as baresip names them ("PCMU", "PCMA",
	// "opus/48000/2", "G722"); default ["PCMU", "PCMA"].
	Codecs []string
	// SIPPort is the SIP port on 127.0.0.1 (UDP and TCP; baresip also takes port+1 for TLS);
	// 0 picks a free one.
	SIPPort int
	// SampleRate is ausrc_srate/auplay_srate; default 8000.
	SampleRate int
}

// Baresip is a running headless baresip phone on 127.0.0.1.
type Baresip struct {
	// SIPPort is the SIP listening port on 127.0.0.1.
	SIPPort int
	// Addr is "127.0.0.1:<SIPPort>".
	Addr string
	// URI is the SIP URI of the first user, e.g. "sip:phone@127.0.0.1:5060".
	URI string
	// Dir is the config directory; RecordDir holds the sndfile recordings; LogPath the output.
	Dir, RecordDir, LogPath string
	// WAV is the file the phone plays.
	WAV string

	opts BaresipOptions
	proc *proc
	ctrl *ctrlConn
}

// StartBaresip writes a config (aufile source, aubridge sink, sndfile recorder, ctrl_tcp on a
// free port), starts baresip and connects to its control socket. t.Cleanup stops it.
func StartBaresip(t testing.TB, opts BaresipOptions) *Baresip {
	t.Helper()
	bin := requireCommand(t, "baresip")
	mods := "/usr/lib/baresip/modules"
	requireFile(t, filepath.Join(mods, "ctrl_tcp.so"))
	if len(opts.Users) == 0 {
		opts.Users = []string{"phone"}
	}
	if opts.ToneHz == 0 {
		opts.ToneHz = 1000
	}
	if opts.ToneSeconds == 0 {
		opts.ToneSeconds = 10
	}
	if len(opts.Codecs) == 0 {
		opts.Codecs = []string{"PCMU", "PCMA"}
	}
	if opts.SampleRate == 0 {
		opts.SampleRate = 8000
	}
	if opts.SIPPort == 0 {
		opts.SIPPort = freeSIPPort(t)
	}
	dir := t.TempDir()
	b := &Baresip{
		SIPPort:   opts.SIPPort,
		Addr:      fmt.Sprintf("127.0.0.1:%d", opts.SIPPort),
		Dir:       dir,
		RecordDir: filepath.Join(dir, "rec"),
		LogPath:   filepath.Join(dir, "baresip.log"),
		WAV:       opts.WAV,
		opts:      opts,
	}
	b.URI = fmt.Sprintf("sip:%s@%s", opts.Users[0], b.Addr)
	if err := os.MkdirAll(b.RecordDir, 0o755); err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	if b.WAV == "" {
		b.WAV = filepath.Join(dir, fmt.Sprintf("tone-%g.wav", opts.ToneHz))
		if err := WriteToneWAV(b.WAV, opts.SampleRate, opts.ToneHz, 0.5, opts.ToneSeconds); err != nil {
			t.Fatal(err)
		}
	}
	ctrlPort := FreeTCPPort(t)
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(b.config(mods, ctrlPort)), 0o644); err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "accounts"), []byte(b.accounts()), 0o644); err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	cmd := exec.Command(bin, "-f", dir)
	cmd.Dir = dir
	b.proc = startProc(t, "baresip", cmd, b.LogPath, 3*time.Second)
	ctrl, err := dialCtrl(fmt.Sprintf("127.0.0.1:%d", ctrlPort), 10*time.Second, func() bool { return !b.proc.exited() })
	if err != nil {
		t.Fatalf("%v (baresip %v)\n%s", err, b.proc.exitError(), tailFile(b.LogPath, 3000))
	}
	b.ctrl = ctrl
	if opts.Answer == AnswerBusy {
		ctrl.mu.Lock()
		ctrl.onEvent = b.rejectIncoming
		ctrl.mu.Unlock()
	}
	t.Cleanup(func() { _ = ctrl.close() })
	return b
}

// rejectIncoming hangs up incoming calls while they ring: baresip answers "486 Rejected".
func (b *Baresip) rejectIncoming(ev BaresipEvent) {
	if ev.Type != "CALL_INCOMING" {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = b.ctrl.command(ctx, "hangup", "")
	}()
}

func (b *Baresip) config(mods string, ctrlPort int) string {
	lines := []string{
		"poll_method epoll",
		"sip_listen " + b.Addr,
		"net_interface 127.0.0.1",
		"audio_player aubridge,x",
		"audio_alert aubridge,x",
		"audio_source aufile," + b.WAV,
		fmt.Sprintf("ausrc_srate %d", b.opts.SampleRate),
		fmt.Sprintf("auplay_srate %d", b.opts.SampleRate),
		"ausrc_channels 1",
		"auplay_channels 1",
		"module_path " + mods,
		"module g711.so",
		"module g722.so",
		"module opus.so",
		"module aufile.so",
		"module aubridge.so",
		"module sndfile.so",
		"module account.so",
		"module menu.so",
		"module ctrl_tcp.so",
		fmt.Sprintf("ctrl_tcp_listen 127.0.0.1:%d", ctrlPort),
		"snd_path " + b.RecordDir,
		"rtp_ports 30000-32766",
	}
	return strings.Join(lines, "\n") + "\n"
}

func (b *Baresip) accounts() string {
	mode := "auto"
	if b.opts.Answer != AnswerAuto {
		mode = "manual"
	}
	var sb strings.Builder
	for _, u := range b.opts.Users {
		fmt.Fprintf(&sb, "<sip:%s@%s>;regint=0;answermode=%s;audio_codecs=%s\n",
			u, b.Addr, mode, strings.Join(b.opts.Codecs, ","))
	}
	return sb.String()
}

// UserURI returns the SIP URI for one of the phone's users, or any user part in the URI form.
func (b *Baresip) UserURI(user string) string { return fmt.Sprintf("sip:%s@%s", user, b.Addr) }

// Command sends a ctrl_tcp command (menu commands such as "dial", "hangup", "accept") and
// returns baresip's response text.
func (b *Baresip) Command(ctx context.Context, cmd, params string) (string, error) {
	return b.ctrl.command(ctx, cmd, params)
}

// Dial places a call to uri from the phone's first user.
func (b *Baresip) Dial(ctx context.Context, uri string) error {
	_, err := b.ctrl.command(ctx, "dial", uri)
	return err
}

// Accept answers the ringing incoming call (AnswerManual).
func (b *Baresip) Accept(ctx context.Context) error {
	_, err := b.ctrl.command(ctx, "accept", "")
	return err
}

// Hangup ends the current call (a ringing incoming call is rejected with 486).
func (b *Baresip) Hangup(ctx context.Context) error {
	_, err := b.ctrl.command(ctx, "hangup", "")
	return err
}

// Events returns a channel of every event in order (buffered 1024; events beyond that are
// dropped from the channel but still seen by WaitEvent). It is closed when baresip goes away.
func (b *Baresip) Events() <-chan BaresipEvent { return b.ctrl.ch }

// WaitEvent returns the next event of one of the given types not yet returned by WaitEvent,
// skipping earlier events of other types.
func (b *Baresip) WaitEvent(ctx context.Context, types ...string) (BaresipEvent, error) {
	return b.ctrl.waitEvent(ctx, types...)
}

// AllEvents returns every event received so far.
func (b *Baresip) AllEvents() []BaresipEvent { return b.ctrl.all() }

// RecordedWAVs returns the recordings of what the phone heard (sndfile "*-dec.wav"), oldest
// first. A recording is complete once its call is closed.
func (b *Baresip) RecordedWAVs() []string {
	files, _ := filepath.Glob(filepath.Join(b.RecordDir, "*-dec.wav"))
	sort.Strings(files)
	return files
}

// SentWAVs returns the recordings of what the phone sent (sndfile "*-enc.wav"), oldest first.
func (b *Baresip) SentWAVs() []string {
	files, _ := filepath.Glob(filepath.Join(b.RecordDir, "*-enc.wav"))
	sort.Strings(files)
	return files
}

// LastRecording reads the newest recording of what the phone heard.
func (b *Baresip) LastRecording() (samples []int16, rate int, err error) {
	files := b.RecordedWAVs()
	if len(files) == 0 {
		return nil, 0, fmt.Errorf("testpeers: baresip recorded nothing in %s", b.RecordDir)
	}
	return ReadWAV(files[len(files)-1])
}

// Stop stops baresip (SIGTERM, then kill). Cleanup calls it too; it is idempotent.
func (b *Baresip) Stop() { b.proc.stop(3 * time.Second) }

// Freeze stops the baresip process (SIGSTOP): it sends no more RTP or SIP, as a phone whose network
// died would. Thaw resumes it.
func (b *Baresip) Freeze() error { return b.proc.cmd.Process.Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen baresip (SIGCONT).
func (b *Baresip) Thaw() error { return b.proc.cmd.Process.Signal(syscall.SIGCONT) }
