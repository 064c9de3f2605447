package modemtest

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/media"
)

// PCMDevice is a fake modem audio device: two FIFOs that the gateway opens
// as modem.audio.device "files:<Capture>,<Playback>". The test side writes
// a paced tone into Capture (the far phone talking) and records what the
// gateway writes into Playback (what the far phone hears).
type PCMDevice struct {
	Capture  string // FIFO the gateway reads
	Playback string // FIFO the gateway writes
	Rate     int

	mu      sync.Mutex
	played  []int16
	written int  // frames written into Capture
	capOpen bool // the gateway opened Capture
	plOpen  bool // the gateway opened Playback
	stop    chan struct{}
	stopCap chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
	capOnce sync.Once
}

// NewPCMDevice makes the two FIFOs in a temporary directory; Close (run at
// the end of the test too) stops the device.
func NewPCMDevice(t testing.TB, rate int) *PCMDevice {
	t.Helper()
	dir := t.TempDir()
	d := &PCMDevice{Capture: filepath.Join(dir, "capture.fifo"), Playback: filepath.Join(dir, "playback.fifo"), Rate: rate,
		stop: make(chan struct{}), stopCap: make(chan struct{})}
	for _, p := range []string{d.Capture, d.Playback} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatalf("modemtest: mkfifo %s: %v", p, err)
		}
	}
	t.Cleanup(d.Close)
	return d
}

// Device is the modem.audio.device value naming the FIFOs.
func (d *PCMDevice) Device() string { return "files:" + d.Capture + "," + d.Playback }

// Start opens both FIFOs in the background (each open completes when the
// gateway opens its end), then writes a tone of freq into Capture in 20 ms
// frames paced by a ticker, for at most max, and records Playback until the
// gateway closes it.
func (d *PCMDevice) Start(freq float64, max time.Duration) {
	d.wg.Add(2)
	go d.talk(freq, max)
	go d.listen()
}

func (d *PCMDevice) talk(freq float64, max time.Duration) {
	defer d.wg.Done()
	f, err := os.OpenFile(d.Capture, os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	d.mu.Lock()
	d.capOpen = true
	d.mu.Unlock()
	n := media.SamplesPerFrame(d.Rate)
	g := media.NewToneGenerator(freq, d.Rate)
	pcm := make([]int16, n)
	buf := make([]byte, 2*n)
	tick := time.NewTicker(media.FrameMillis * time.Millisecond)
	defer tick.Stop()
	end := time.After(max)
	for {
		select {
		case <-d.stop:
			return
		case <-d.stopCap:
			return
		case <-end:
			return
		case <-tick.C:
		}
		g.Fill(pcm)
		for i, v := range pcm {
			binary.LittleEndian.PutUint16(buf[2*i:], uint16(v))
		}
		if _, err := f.Write(buf); err != nil {
			return // the gateway closed its end
		}
		d.mu.Lock()
		d.written++
		d.mu.Unlock()
	}
}

func (d *PCMDevice) listen() {
	defer d.wg.Done()
	f, err := os.OpenFile(d.Playback, os.O_RDONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	d.mu.Lock()
	d.plOpen = true
	d.mu.Unlock()
	buf := make([]byte, 4096)
	var odd []byte
	for {
		k, err := f.Read(buf)
		if k > 0 {
			b := append(odd, buf[:k]...)
			pcm := make([]int16, len(b)/2)
			for i := range pcm {
				pcm[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
			}
			odd = append([]byte(nil), b[2*len(pcm):]...)
			d.mu.Lock()
			d.played = append(d.played, pcm...)
			d.mu.Unlock()
		}
		if err != nil {
			return // EOF: the gateway closed its end (or Close)
		}
	}
}

// Opened reports whether the gateway has opened both FIFOs.
func (d *PCMDevice) Opened() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.capOpen && d.plOpen
}

// Played returns a copy of the audio the gateway played so far.
func (d *PCMDevice) Played() []int16 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]int16(nil), d.played...)
}

// Written returns how many 20 ms frames were written into Capture.
func (d *PCMDevice) Written() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.written
}

// StopCapture stops the tone and closes Capture: the gateway sees the end
// of its capture stream, as when the modem's audio device goes away.
func (d *PCMDevice) StopCapture() { d.capOnce.Do(func() { close(d.stopCap) }) }

// Close stops the device. An open still waiting for the gateway is
// released by opening the other end briefly; it waits (bounded) for its
// goroutines.
func (d *PCMDevice) Close() {
	d.once.Do(func() {
		close(d.stop)
		done := make(chan struct{})
		go func() { d.wg.Wait(); close(done) }()
		for i := 0; i < 50; i++ {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			// Release blocked opens (and a blocked playback read) by being the other end.
			if f, err := os.OpenFile(d.Capture, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
				_ = f.Close()
			}
			if f, err := os.OpenFile(d.Playback, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				_ = f.Close()
			}
		}
	})
}
