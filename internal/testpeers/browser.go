package testpeers

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// BrowserOptions configures a matrix-js-sdk client in headless Chromium (tools/jsclient).
type BrowserOptions struct {
	// Homeserver is the client-server API base URL, e.g. Dendrite.URL.
	Homeserver string
	// UserID and AccessToken log the client in (from Dendrite.RegisterUser).
	UserID, AccessToken string
	// Mode is "call" (default: look up Number or call Invitee) or "answer" (join invites, answer
	// incoming calls).
	Mode string
	// Number is the phone number to look up via third-party protocols, as Element's dial pad does.
	Number string
	// Invitee skips the lookup and calls this user ID directly.
	Invitee string
	// RoomID skips creating a DM and calls in this room.
	RoomID string
	// HangupAfter hangs up this long after the call connects; 0 waits for the other side or Hangup.
	HangupAfter time.Duration
	// Timeout bounds the whole run (the driver exits with a "timeout" event); default 60 s.
	Timeout time.Duration
	// AudioWAV is the fake microphone (16-bit WAV; Chromium loops it). Default: a 440 Hz tone.
	AudioWAV string
	// Freqs are the frequencies (Hz) whose tone ratio "audio" events report; default [440, 1000].
	Freqs []float64
	// AnswerDelay delays answering in "answer" mode.
	AnswerDelay time.Duration
	// ForceTURN makes the client relay-only (js-sdk forceTURN: iceTransportPolicy "relay") with the
	// TURN servers of the homeserver's /voip/turnServer; it reports them in a "turn" event and the
	// selected candidate pair's types in an "ice" event once connected.
	ForceTURN bool
}

// BrowserEvent is one JSON line from the driver.
type BrowserEvent struct {
	// Event is the event name: browser, login, synced, protocols, lookup, room, joined, call,
	// incoming, placed, state, remote_stream, audio, hangup, done, error, warning, timeout, exit.
	Event string `json:"event"`
	// T is the browser's clock in Unix seconds.
	T float64 `json:"t"`
	// Stage names the failed step for "error" events (login, sync, protocols, lookup, create_room,
	// join, place, call, answer, page, browser).
	Stage string `json:"stage,omitempty"`
	// Message is the error or warning text.
	Message string `json:"message,omitempty"`
	// Code is the js-sdk CallErrorCode of a "call" error.
	Code string `json:"code,omitempty"`
	// State and Old are the new and previous call state of a "state" event (e.g. "connected").
	State string `json:"state,omitempty"`
	Old   string `json:"old,omitempty"`
	// Reason and Party describe a "hangup" (reason e.g. "user_hangup", "user_busy"; party "local"/"remote").
	Reason string `json:"reason,omitempty"`
	Party  string `json:"party,omitempty"`
	// CallID, RoomID and UserID identify the call, room and user an event concerns.
	CallID string `json:"call_id,omitempty"`
	RoomID string `json:"room_id,omitempty"`
	UserID string `json:"user_id,omitempty"`
	// Protocol is the PSTN protocol a "lookup" used; Protocols lists those offered.
	Protocol  string   `json:"protocol,omitempty"`
	Protocols []string `json:"protocols,omitempty"`
	// RMS, RMSDBFS, DominantHz and Tones describe the remote audio once a second ("audio").
	RMS        float64            `json:"rms,omitempty"`
	RMSDBFS    float64            `json:"rms_dbfs,omitempty"`
	DominantHz float64            `json:"dominant_hz,omitempty"`
	Tones      map[string]float64 `json:"tones,omitempty"`
	// ExitCode is the driver's exit status for the final "exit" event (0 done, 1 error, 2 timeout).
	ExitCode int `json:"exit_code,omitempty"`
	// Raw is the whole JSON line.
	Raw json.RawMessage `json:"-"`
}

// Tone returns the tone ratio reported for freq Hz in an "audio" event.
func (e BrowserEvent) Tone(freq float64) float64 { return e.Tones[fmt.Sprintf("%g", freq)] }

// Browser is a running driver (node + headless Chromium) for one js-sdk client.
type Browser struct {
	// LogPath receives the driver's stderr and the page's console.
	LogPath string

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan BrowserEvent
	done   chan struct{}

	mu     sync.Mutex
	seen   []BrowserEvent
	cursor int
	notify chan struct{}
}

var buildOnce sync.Once

// jsclientDir checks node, Chromium and tools/jsclient's node_modules and (re)builds the bundle
// if it is missing or older than src/client.js.
func jsclientDir(t testing.TB) (node, dir string) {
	t.Helper()
	node = requireCommand(t, "node")
	requireCommand(t, "chromium")
	dir = repoPath(t, "tools", "jsclient")
	requireFile(t, filepath.Join(dir, "node_modules", "playwright-core"))
	requireFile(t, filepath.Join(dir, "node_modules", "matrix-js-sdk"))
	var buildErr error
	buildOnce.Do(func() {
		src, err1 := os.Stat(filepath.Join(dir, "src", "client.js"))
		dst, err2 := os.Stat(filepath.Join(dir, "dist", "client.js"))
		if err1 == nil && err2 == nil && !dst.ModTime().Before(src.ModTime()) {
			return
		}
		cmd := exec.Command(node, "build.mjs")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("testpeers: bundling tools/jsclient: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return node, dir
}

// StartBrowser runs tools/jsclient/driver.mjs with opts. Events arrive on Events() until the
// driver exits, which ends with an "exit" event carrying its exit status. t.Cleanup stops it.
func StartBrowser(t testing.TB, opts BrowserOptions) *Browser {
	t.Helper()
	node, dir := jsclientDir(t)
	tmp := t.TempDir()
	if opts.Timeout == 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.Freqs == nil {
		opts.Freqs = []float64{440, 1000}
	}
	if opts.AudioWAV == "" {
		opts.AudioWAV = filepath.Join(tmp, "mic.wav")
		if err := WriteToneWAV(opts.AudioWAV, 48000, 440, 0.5, 5); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := json.Marshal(map[string]any{
		"homeserver":         opts.Homeserver,
		"accessToken":        opts.AccessToken,
		"userId":             opts.UserID,
		"mode":               opts.Mode,
		"number":             opts.Number,
		"invitee":            opts.Invitee,
		"roomId":             opts.RoomID,
		"hangupAfterSeconds": opts.HangupAfter.Seconds(),
		"timeoutSeconds":     opts.Timeout.Seconds(),
		"audioWAV":           opts.AudioWAV,
		"freqs":              opts.Freqs,
		"answerDelayMs":      opts.AnswerDelay.Milliseconds(),
		"forceTURN":          opts.ForceTURN,
	})
	b := &Browser{LogPath: filepath.Join(tmp, "driver.log"), events: make(chan BrowserEvent, 4096), done: make(chan struct{}), notify: make(chan struct{})}
	logf, err := os.Create(b.LogPath)
	if err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	b.cmd = exec.Command(node, filepath.Join(dir, "driver.mjs"), string(cfg))
	b.cmd.Dir = dir
	b.cmd.Stderr = logf
	stdout, err := b.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	if b.stdin, err = b.cmd.StdinPipe(); err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("testpeers: start driver: %v", err)
	}
	go b.read(stdout, logf)
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			t.Logf("testpeers: tail of browser driver log %s:\n%s", b.LogPath, tailFile(b.LogPath, 4000))
		}
	})
	return b
}

// read forwards stdout lines as events, then the "exit" event, and closes the channel.
func (b *Browser) read(stdout io.Reader, logf *os.File) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		var ev BrowserEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			fmt.Fprintf(logf, "stdout: %s\n", line)
			continue
		}
		ev.Raw = line
		b.push(ev)
	}
	err := b.cmd.Wait()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	b.push(BrowserEvent{Event: "exit", ExitCode: code, T: float64(time.Now().UnixMilli()) / 1000})
	logf.Close()
	close(b.events)
	close(b.done)
}

func (b *Browser) push(ev BrowserEvent) {
	b.mu.Lock()
	b.seen = append(b.seen, ev)
	close(b.notify)
	b.notify = make(chan struct{})
	b.mu.Unlock()
	select {
	case b.events <- ev:
	default: // WaitEvent still sees it
	}
}

// Events returns every event in order; it is closed after the final "exit" event. Use either
// Events or WaitEvent for a given Browser, or be aware both see the same events.
func (b *Browser) Events() <-chan BrowserEvent { return b.events }

// WaitEvent returns the next event named one of names that WaitEvent has not returned yet,
// skipping other events. It fails when the driver exits first (unless waiting for "exit").
func (b *Browser) WaitEvent(ctx context.Context, names ...string) (BrowserEvent, error) {
	for {
		b.mu.Lock()
		for i := b.cursor; i < len(b.seen); i++ {
			for _, n := range names {
				if b.seen[i].Event == n {
					b.cursor = i + 1
					ev := b.seen[i]
					b.mu.Unlock()
					return ev, nil
				}
			}
		}
		notify := b.notify
		b.mu.Unlock()
		select {
		case <-notify:
		case <-b.done:
			// One more scan: the final events may have arrived with done.
			b.mu.Lock()
			for i := b.cursor; i < len(b.seen); i++ {
				for _, n := range names {
					if b.seen[i].Event == n {
						b.cursor = i + 1
						ev := b.seen[i]
						b.mu.Unlock()
						return ev, nil
					}
				}
			}
			b.mu.Unlock()
			return BrowserEvent{}, fmt.Errorf("testpeers: browser driver exited before %v (events: %s)", names, b.summary())
		case <-ctx.Done():
			return BrowserEvent{}, fmt.Errorf("testpeers: waiting for browser %v: %w (events: %s)", names, ctx.Err(), b.summary())
		}
	}
}

// AllEvents returns every event so far.
func (b *Browser) AllEvents() []BrowserEvent {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]BrowserEvent(nil), b.seen...)
}

// summary lists the events so far as name[/stage] for error messages.
func (b *Browser) summary() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := ""
	for _, ev := range b.seen {
		if ev.Event == "audio" {
			continue
		}
		s += ev.Event
		if ev.Stage != "" {
			s += "/" + ev.Stage + "(" + ev.Message + ")"
		}
		if ev.State != "" {
			s += "/" + ev.State
		}
		s += " "
	}
	return s
}

// Hangup asks the client to hang up the current call.
func (b *Browser) Hangup() error {
	_, err := io.WriteString(b.stdin, "hangup\n")
	return err
}

// Wait waits for the driver to exit and returns its exit status (0 done, 1 error, 2 timeout).
func (b *Browser) Wait(ctx context.Context) (int, error) {
	select {
	case <-b.done:
	case <-ctx.Done():
		return 0, fmt.Errorf("testpeers: browser driver still running: %w", ctx.Err())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seen[len(b.seen)-1].ExitCode, nil
}

// Stop asks the driver to quit, then kills it after 5 s. Idempotent.
func (b *Browser) Stop() {
	select {
	case <-b.done:
		return
	default:
	}
	_, _ = io.WriteString(b.stdin, "quit\n")
	select {
	case <-b.done:
		return
	case <-time.After(5 * time.Second):
	}
	_ = b.cmd.Process.Kill()
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
	}
}

// RunBrowserCall starts a browser client with opts and returns its event channel (closed after
// the final "exit" event). t.Cleanup stops it.
func RunBrowserCall(t testing.TB, opts BrowserOptions) <-chan BrowserEvent {
	t.Helper()
	return StartBrowser(t, opts).Events()
}
