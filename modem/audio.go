package modem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/media"
)

// AudioConfig says whether and how a modem leg carries its call's audio
// (configuration modem.audio).
type AudioConfig struct {
	// Device is where the call audio is, as raw S16LE mono PCM:
	//   ""                           control-only (the phone routes GSM audio)
	//   "auto"                       the tty ModemManager names in the call's
	//                                AudioPort, at its AudioFormat rate;
	//                                control-only when it names none
	//   "alsa:<PCM name>"            arecord (capture) and aplay (playback)
	//                                on that ALSA PCM, as child processes
	//   "files:<capture>,<playback>" two paths (an audio tty, FIFOs), opened
	//                                read-only and write-only; one path
	//                                twice is opened once, read-write
	Device string
	// Rate is the PCM sample rate, 8000 (default) or 16000.
	Rate int
	// OpenTimeout bounds opening a files: stream (a FIFO waits for its
	// other end); default 5 s.
	OpenTimeout time.Duration
	// Log receives the audio tools' stderr and the audio's life.
	Log zerolog.Logger
}

// Enabled reports whether the configuration carries audio at all.
func (a *AudioConfig) Enabled() bool { return a != nil && a.Device != "" }

func (a *AudioConfig) rate() int {
	if a.Rate == 0 {
		return 8000
	}
	return a.Rate
}

func (a *AudioConfig) openTimeout() time.Duration {
	if a.OpenTimeout <= 0 {
		return 5 * time.Second
	}
	return a.OpenTimeout
}

// callAudio is a call's opened audio device.
type callAudio struct {
	ep      *media.StreamEndpoint
	capture io.ReadCloser
	device  string // e.g. "alsa:plughw:Modem", "files:/dev/ttyUSB4"
}

// openAudio opens the audio of call k as configured. It returns nil and no
// error when "auto" finds no audio port (the call stays control-only).
func openAudio(ctx context.Context, a *AudioConfig, k *Call) (*callAudio, error) {
	kind, arg, _ := strings.Cut(a.Device, ":")
	rate := a.rate()
	var capture io.ReadCloser
	var playback io.WriteCloser
	var err error
	switch {
	case a.Device == "auto":
		var port string
		port, rate, err = autoPort(ctx, k, rate)
		if err != nil || port == "" {
			return nil, err
		}
		capture, playback, err = openFiles(ctx, port, port, a.openTimeout())
		arg = port
	case kind == "alsa" && arg != "":
		capture, playback, err = openALSA(arg, rate, a.Log)
	case kind == "files":
		c, p, ok := strings.Cut(arg, ",")
		if !ok || c == "" || p == "" {
			return nil, fmt.Errorf("modem: audio device %q: want files:<capture>,<playback>", a.Device)
		}
		capture, playback, err = openFiles(ctx, c, p, a.openTimeout())
	default:
		return nil, fmt.Errorf("modem: audio device %q: want auto, alsa:<PCM> or files:<capture>,<playback>", a.Device)
	}
	if err != nil {
		return nil, err
	}
	device := kind + ":" + arg
	ep, err := media.NewStreamEndpoint(media.StreamConfig{Capture: capture, Playback: playback, Rate: rate, Name: device})
	if err != nil {
		_ = capture.Close()
		_ = playback.Close()
		return nil, fmt.Errorf("modem: audio: %w", err)
	}
	return &callAudio{ep: ep, capture: capture, device: device}, nil
}

// autoPort reads the call's AudioPort and AudioFormat. ModemManager sets
// them while it sets the call's audio channel up, just after the call turns
// active, so an empty port is read again a few times within a second.
func autoPort(ctx context.Context, k *Call, rate int) (string, int, error) {
	var port string
	var format map[string]dbus.Variant
	for i := 0; i < 5; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return "", 0, fmt.Errorf("modem: audio: reading AudioPort: %w", ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
		var props map[string]dbus.Variant
		if err := k.obj().CallWithContext(ctx, ifProps+".GetAll", 0, ifCall).Store(&props); err != nil {
			return "", 0, fmt.Errorf("modem: audio: reading the call's AudioPort: %w", err)
		}
		port, _ = props["AudioPort"].Value().(string)
		format, _ = props["AudioFormat"].Value().(map[string]dbus.Variant)
		if port != "" {
			break
		}
	}
	if port == "" {
		return "", 0, nil
	}
	if r, ok := format["rate"].Value().(uint32); ok && r != 0 {
		rate = int(r)
	}
	if rate != 8000 && rate != 16000 {
		return "", 0, fmt.Errorf("modem: audio: the modem's audio port %s runs at %d Hz; only 8000 and 16000 are supported", port, rate)
	}
	if res, _ := format["resolution"].Value().(string); res != "" && !strings.EqualFold(res, "s16le") {
		return "", 0, fmt.Errorf("modem: audio: the modem's audio port %s carries %q, not s16le", port, res)
	}
	if !strings.HasPrefix(port, "/") {
		port = "/dev/" + port
	}
	return port, rate, nil
}

// openFiles opens a capture and a playback stream by path. A FIFO's open
// waits for its other end, bounded by timeout and ctx; a tty is switched to
// raw mode. The same path twice is opened once, read-write.
func openFiles(ctx context.Context, capture, playback string, timeout time.Duration) (io.ReadCloser, io.WriteCloser, error) {
	if capture == playback {
		f, err := openWait(ctx, capture, os.O_RDWR, timeout)
		if err != nil {
			return nil, nil, err
		}
		if err := makeRaw(f); err != nil {
			_ = f.Close()
			return nil, nil, fmt.Errorf("modem: audio: %s: raw mode: %w", capture, err)
		}
		s := &sharedFile{File: f}
		return s, s, nil
	}
	c, err := openWait(ctx, capture, os.O_RDONLY, timeout)
	if err != nil {
		return nil, nil, err
	}
	p, err := openWait(ctx, playback, os.O_WRONLY, timeout)
	if err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	for _, f := range []*os.File{c, p} {
		if err := makeRaw(f); err != nil {
			_ = c.Close()
			_ = p.Close()
			return nil, nil, fmt.Errorf("modem: audio: %s: raw mode: %w", f.Name(), err)
		}
	}
	return c, p, nil
}

// openWait opens path with flag, giving up after timeout or when ctx ends.
// An open that is still blocked then (a FIFO without its other end) is
// released by briefly opening the other end ourselves.
func openWait(ctx context.Context, path string, flag int, timeout time.Duration) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		f, err := os.OpenFile(path, flag|syscall.O_NOCTTY, 0)
		ch <- result{f, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	var why error
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("modem: audio: %w", r.err)
		}
		return r.f, nil
	case <-t.C:
		why = fmt.Errorf("modem: audio: open %s: nothing at its other end within %s", path, timeout)
	case <-ctx.Done():
		why = fmt.Errorf("modem: audio: open %s: %w", path, ctx.Err())
	}
	peer := os.O_WRONLY
	if flag == os.O_WRONLY {
		peer = os.O_RDONLY
	}
	if f, err := os.OpenFile(path, peer|syscall.O_NONBLOCK, 0); err == nil {
		r := <-ch
		_ = f.Close()
		if r.f != nil {
			_ = r.f.Close()
		}
	}
	return nil, why
}

// sharedFile is one read-write file used as both capture and playback:
// the endpoint closes both, the file is closed once.
type sharedFile struct {
	*os.File
	once sync.Once
	err  error
}

func (s *sharedFile) Close() error {
	s.once.Do(func() { s.err = s.File.Close() })
	return s.err
}

// openALSA starts arecord and aplay on the ALSA PCM pcm; their stdout and
// stdin are the streams, their stderr goes to the log. Closing a stream
// kills its process.
func openALSA(pcm string, rate int, log zerolog.Logger) (io.ReadCloser, io.WriteCloser, error) {
	args := []string{"-D", pcm, "-t", "raw", "-f", "S16_LE", "-c", "1", "-r", strconv.Itoa(rate), "-q"}
	cr, cw, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("modem: audio: %w", err)
	}
	rec, err := startTool("arecord", args, nil, cw, log)
	_ = cw.Close()
	if err != nil {
		_ = cr.Close()
		return nil, nil, err
	}
	capture := &toolStream{File: cr, tool: rec}
	pr, pw, err := os.Pipe()
	if err != nil {
		_ = capture.Close()
		return nil, nil, fmt.Errorf("modem: audio: %w", err)
	}
	play, err := startTool("aplay", args, pr, nil, log)
	_ = pr.Close()
	if err != nil {
		_ = pw.Close()
		_ = capture.Close()
		return nil, nil, err
	}
	return capture, &toolStream{File: pw, tool: play}, nil
}

// tool is a running arecord or aplay.
type tool struct {
	name   string
	cmd    *exec.Cmd
	stderr *lineLog
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

func startTool(name string, args []string, stdin, stdout *os.File, log zerolog.Logger) (*tool, error) {
	cmd := exec.Command(name, args...)
	t := &tool{name: name, cmd: cmd, stderr: &lineLog{log: log, tool: name}, exited: make(chan struct{})}
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Stderr = t.stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("modem: audio: start %s: %w", name, err)
	}
	log.Debug().Str("tool", name).Strs("args", args).Int("pid", cmd.Process.Pid).Msg("modem: audio tool started")
	go func() {
		t.err = cmd.Wait()
		close(t.exited)
	}()
	return t, nil
}

// kill ends the tool and waits (bounded) for it.
func (t *tool) kill() {
	_ = t.cmd.Process.Kill()
	select {
	case <-t.exited:
	case <-time.After(3 * time.Second):
	}
}

// exitDetail describes how the tool ended, waiting up to d for it to exit.
func (t *tool) exitDetail(d time.Duration) string {
	select {
	case <-t.exited:
	case <-time.After(d):
		return t.name + " still running"
	}
	s := t.name + " exited"
	if t.err != nil {
		s += " (" + t.err.Error() + ")"
	}
	if l := t.stderr.last(); l != "" {
		s += ": " + l
	}
	return s
}

// toolStream is a pipe to or from a tool; closing it kills the tool.
type toolStream struct {
	*os.File
	tool *tool
	once sync.Once
	err  error
}

func (s *toolStream) Close() error {
	s.once.Do(func() {
		s.err = s.File.Close()
		s.tool.kill()
	})
	return s.err
}

// lineLog logs a tool's stderr line by line and keeps the last line.
type lineLog struct {
	log  zerolog.Logger
	tool string
	mu   sync.Mutex
	buf  []byte
	prev string
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSpace(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
		if line != "" {
			l.prev = line
			l.log.Warn().Str("tool", l.tool).Str("stderr", line).Msg("modem: audio tool")
		}
	}
	if len(l.buf) > 4096 {
		l.buf = l.buf[:0]
	}
	return len(p), nil
}

func (l *lineLog) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := strings.TrimSpace(string(l.buf)); s != "" {
		return s
	}
	return l.prev
}

// endDetail explains why the call's capture stream ended by itself.
func (c *callAudio) endDetail() string {
	d := "modem: audio capture from " + c.device + " ended"
	if err := c.ep.Err(); err != nil && !errors.Is(err, io.EOF) {
		d += ": " + err.Error()
	}
	if ts, ok := c.capture.(*toolStream); ok {
		d += ": " + ts.tool.exitDetail(time.Second)
	}
	return d
}
