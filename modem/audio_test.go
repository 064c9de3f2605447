package modem

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/media"
)

// alsaRig writes an ALSA configuration with a PCM "gwtest": the file
// plugin over the null device, so that what aplay plays lands in play.raw
// and what arecord captures is read from in.raw. The null slave does not
// pace capture: arecord reads in.raw as fast as it can, so capture through
// ALSA is only checked for format and plumbing, not timing.
func alsaRig(t *testing.T, in []int16) (playFile string) {
	t.Helper()
	if _, err := exec.LookPath("arecord"); err != nil {
		if os.Getenv("GATEWAY_SKIP_PEERS") != "" {
			t.Skip("arecord missing (GATEWAY_SKIP_PEERS set)")
		}
		t.Fatal("arecord missing: install alsa-utils (scripts/install-deps.sh)")
	}
	dir := t.TempDir()
	playFile = filepath.Join(dir, "play.raw")
	inFile := filepath.Join(dir, "in.raw")
	raw := make([]byte, 2*len(in))
	for i, v := range in {
		binary.LittleEndian.PutUint16(raw[2*i:], uint16(v))
	}
	if err := os.WriteFile(inFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "asound.conf")
	text := fmt.Sprintf("pcm.gwtest {\n\ttype file\n\tslave.pcm \"null\"\n\tfile %q\n\tinfile %q\n\tformat \"raw\"\n}\n", playFile, inFile)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ALSA_CONFIG_PATH", "/usr/share/alsa/alsa.conf:"+conf)
	return playFile
}

func readS16LE(t *testing.T, path string) []int16 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, len(b)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return pcm
}

// TestALSAPlaybackLandsInFile plays a tone through aplay on the file
// plugin and finds it in the file; arecord's capture carries the input
// file's tone in the same format.
func TestALSAPlaybackLandsInFile(t *testing.T) {
	for _, rate := range []int{8000, 16000} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			playFile := alsaRig(t, media.Tone(1000, rate, 2000, 8000))
			capture, playback, err := openALSA("gwtest", rate, zerolog.New(zerolog.NewTestWriter(t)))
			if err != nil {
				t.Fatal(err)
			}
			defer capture.Close()
			defer playback.Close()

			// Capture: half a second in the requested format.
			got := make([]byte, rate) // 0.5 s of S16LE
			done := make(chan error, 1)
			go func() { _, err := io.ReadFull(capture, got); done <- err }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("arecord capture: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("arecord delivered nothing")
			}
			pcm := make([]int16, len(got)/2)
			for i := range pcm {
				pcm[i] = int16(binary.LittleEndian.Uint16(got[2*i:]))
			}
			if lvl := media.Goertzel(pcm, rate, 1000); lvl < 0.9 {
				t.Errorf("captured 1000 Hz level %.3f", lvl)
			}

			// Playback: one second of 440 Hz; end the stream so aplay drains and exits.
			tone := media.Tone(440, rate, 1000, 8000)
			raw := make([]byte, 2*len(tone))
			for i, v := range tone {
				binary.LittleEndian.PutUint16(raw[2*i:], uint16(v))
			}
			if _, err := playback.Write(raw); err != nil {
				t.Fatal(err)
			}
			ts := playback.(*toolStream)
			_ = ts.File.Close()
			select {
			case <-ts.tool.exited:
			case <-time.After(20 * time.Second):
				t.Fatal("aplay did not exit at the end of its input")
			}
			played := readS16LE(t, playFile)
			if len(played) < len(tone) {
				t.Fatalf("play file has %d samples, want >= %d", len(played), len(tone))
			}
			if lvl := media.Goertzel(played[:len(tone)], rate, 440); lvl < 0.9 {
				t.Errorf("played 440 Hz level %.3f in the file", lvl)
			}
		})
	}
}

// TestALSAEndpointAndFailure opens "alsa:gwtest" as a call's audio: the
// endpoint's sink gets the capture tone and closing it kills the tools; an
// unknown PCM ends the capture with arecord's complaint in the detail.
func TestALSAEndpointAndFailure(t *testing.T) {
	alsaRig(t, media.Tone(1000, 8000, 3000, 8000))
	a := &AudioConfig{Device: "alsa:gwtest", Rate: 8000, Log: zerolog.New(zerolog.NewTestWriter(t))}
	ca, err := openAudio(context.Background(), a, nil)
	if err != nil {
		t.Fatal(err)
	}
	det := media.NewToneDetector(1000, 8000)
	if err := ca.ep.SetSink(8000, det); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for det.Hits() < 5 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if det.Hits() < 5 {
		t.Errorf("1000 Hz through alsa:gwtest: %d of %d blocks", det.Hits(), det.Blocks())
	}
	if s := ca.ep.String(); s != "pcm/8000 alsa:gwtest" {
		t.Errorf("endpoint %q", s)
	}
	rec := ca.capture.(*toolStream).tool
	_ = ca.ep.Close()
	select {
	case <-rec.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("arecord still running after Close")
	}

	bad := &AudioConfig{Device: "alsa:gw_no_such_pcm", Rate: 8000, Log: zerolog.New(zerolog.NewTestWriter(t))}
	ca, err = openAudio(context.Background(), bad, nil)
	if err != nil {
		t.Fatal(err) // the tools start; arecord then fails
	}
	defer ca.ep.Close()
	select {
	case <-ca.ep.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("capture from an unknown PCM did not end")
	}
	d := ca.endDetail()
	if !strings.Contains(d, "arecord exited") || !strings.Contains(d, "gw_no_such_pcm") {
		t.Errorf("detail %q does not say arecord failed on the PCM", d)
	}
	t.Logf("detail: %s", d)
}

// TestOpenFilesWaitsBounded: a FIFO with nothing at its other end fails
// after the timeout (and the blocked open is released); a missing file
// fails at once.
func TestOpenFilesWaitsBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "cap.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err := openFiles(context.Background(), fifo, filepath.Join(dir, "play.fifo"), 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "nothing at its other end") {
		t.Fatalf("err %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("open took %v", time.Since(start))
	}
	// The released open left no reader behind: a non-blocking writer finds none.
	if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
		f.Close()
		t.Error("a reader is still open on the FIFO")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := openFiles(ctx, fifo, fifo+"x", time.Minute); err == nil {
		t.Error("open with a cancelled context succeeded")
	}
	if _, _, err := openFiles(context.Background(), filepath.Join(dir, "none"), fifo, time.Second); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing capture: %v", err)
	}
}

// TestAudioTTYIsRaw opens a pseudo-terminal as a files: device (one path
// for both directions) and checks bytes pass unchanged both ways: no echo,
// no CR/LF translation, no line buffering, no signal characters.
func TestAudioTTYIsRaw(t *testing.T) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no /dev/ptmx: %v", err)
	}
	defer master.Close()
	var unlock int32
	var n uint32
	rc, _ := master.SyscallConn()
	var errno syscall.Errno
	_ = rc.Control(func(fd uintptr) {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
			errno = e
			return
		}
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n)))
	})
	if errno != 0 {
		t.Skipf("pty set-up: %v", errno)
	}
	slave := fmt.Sprintf("/dev/pts/%d", n)
	capture, playback, err := openFiles(context.Background(), slave, slave, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer capture.Close()
	defer playback.Close()
	pcm := []byte{'\r', 0x00, '\n', 0x03, 0x7f, 0x04, 0x1a, 0xff, 0x11, 0x13, '\r', '\n'}

	read := func(f io.Reader, what string) []byte {
		got := make([]byte, len(pcm))
		done := make(chan error, 1)
		go func() { _, err := io.ReadFull(f, got); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: bytes held back (line buffering?)", what)
		}
		return got
	}
	if _, err := master.Write(pcm); err != nil {
		t.Fatal(err)
	}
	if got := read(capture, "modem to gateway"); string(got) != string(pcm) {
		t.Errorf("capture got % x, sent % x", got, pcm)
	}
	if _, err := playback.Write(pcm); err != nil {
		t.Fatal(err)
	}
	if got := read(master, "gateway to modem"); string(got) != string(pcm) {
		t.Errorf("modem got % x, sent % x (echo or output processing?)", got, pcm)
	}
	if err := capture.Close(); err != nil {
		t.Fatal(err)
	}
	if err := playback.Close(); err != nil {
		t.Errorf("second close of the shared tty: %v", err)
	}
}
