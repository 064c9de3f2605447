package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"unsafe"
)

// StreamConfig configures a StreamEndpoint.
type StreamConfig struct {
	// Capture delivers the far phone's audio as raw signed 16-bit
	// little-endian mono PCM at Rate (an arecord's stdout, a modem's audio
	// tty, a FIFO). Reads block until the device has the bytes: the device
	// paces the endpoint. Closing it must unblock a pending Read (true of
	// pipes, FIFOs and ttys opened with os.OpenFile, and of io.Pipe).
	Capture io.ReadCloser
	// Playback takes the audio for the far phone in the same format.
	Playback io.WriteCloser
	// Rate is the PCM sample rate in Hz: 8000 or 16000.
	Rate int
	// Name describes the device in String(), e.g. "alsa:hw:Modem"; optional.
	Name string
	// QueueFrames bounds the audio waiting for Playback, in 20 ms frames
	// (default 10): when the device falls behind, newer frames are dropped
	// and counted instead of blocking the far leg.
	QueueFrames int
}

// StreamStats counts what a StreamEndpoint carried.
type StreamStats struct {
	FramesIn    uint64 // 20 ms frames read from Capture
	FramesOut   uint64 // writes to Playback that completed in full
	ReadErrors  uint64 // failed or truncated reads of Capture (the capture then ends)
	WriteErrors uint64 // failed or short writes to Playback (EPIPE included); not fatal
	Dropped     uint64 // frames for Playback dropped because its queue was full
}

// StreamEndpoint is an Endpoint over raw S16LE mono PCM byte streams at
// one fixed rate, such as a modem's PCM device. A receive goroutine reads
// one 20 ms frame at a time from Capture and pushes it to the sink; the
// Writer queues PCM for a playback goroutine that writes it to Playback.
// Neither path allocates per frame. Close stops both goroutines and closes
// both streams.
type StreamEndpoint struct {
	cfg  StreamConfig
	name string
	sink SinkSlot
	w    streamWriter
	nb   streamWriter // 8 kHz writer of a 16 kHz stream (upsamples)

	// A 16 kHz stream also serves 8 kHz far ends (a PCMU trunk): captured
	// frames are halved for an 8 kHz sink, 8 kHz PCM is doubled for playback.
	sinkRate atomic.Int32
	down     Downsampler2x // owned by the receive goroutine
	dframe   []int16

	rframe []int16 // receive frame, owned by the receive goroutine
	rbytes []byte  // rframe's memory seen as bytes

	free chan []byte // playback buffers ready to fill
	full chan []byte // playback buffers ready to write

	framesIn, framesOut, readErrs, writeErrs, dropped atomic.Uint64

	stop      chan struct{}
	done      chan struct{} // receive goroutine ended
	err       error         // why the capture ended; set before done is closed
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var _ Endpoint = (*StreamEndpoint)(nil)

// hostLittleEndian tells whether int16 memory is already S16LE.
var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// NewStreamEndpoint checks cfg and starts the endpoint's receive and
// playback goroutines.
func NewStreamEndpoint(cfg StreamConfig) (*StreamEndpoint, error) {
	if cfg.Capture == nil || cfg.Playback == nil {
		return nil, errors.New("media: stream endpoint needs a capture and a playback stream")
	}
	if cfg.Rate != 8000 && cfg.Rate != 16000 {
		return nil, fmt.Errorf("media: stream endpoint rate must be 8000 or 16000, got %d", cfg.Rate)
	}
	if cfg.QueueFrames <= 0 {
		cfg.QueueFrames = 10
	}
	n := SamplesPerFrame(cfg.Rate)
	e := &StreamEndpoint{
		cfg:    cfg,
		rframe: make([]int16, n),
		free:   make(chan []byte, cfg.QueueFrames),
		full:   make(chan []byte, cfg.QueueFrames),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	e.rbytes = unsafe.Slice((*byte)(unsafe.Pointer(&e.rframe[0])), 2*n)
	for i := 0; i < cfg.QueueFrames; i++ {
		e.free <- make([]byte, 2*n)
	}
	e.name = fmt.Sprintf("pcm/%d", cfg.Rate)
	if cfg.Name != "" {
		e.name += " " + cfg.Name
	}
	e.w.e = e
	e.nb = streamWriter{e: e, up: &Upsampler2x{}, ubuf: make([]int16, 2*SamplesPerFrame(8000))}
	e.dframe = make([]int16, SamplesPerFrame(8000)+1)
	e.wg.Add(2)
	go e.receive()
	go e.play()
	return e, nil
}

// Rates implements Endpoint: the stream's rate, and 8000 for a 16 kHz
// stream (resampled 2x with a half-band filter, for narrowband far ends).
func (e *StreamEndpoint) Rates() []int {
	if e.cfg.Rate == 16000 {
		return []int{16000, 8000}
	}
	return []int{e.cfg.Rate}
}

func (e *StreamEndpoint) serves(rate int) bool {
	return rate == e.cfg.Rate || (rate == 8000 && e.cfg.Rate == 16000)
}

// String implements Endpoint, e.g. "pcm/8000 alsa:hw:Modem".
func (e *StreamEndpoint) String() string { return e.name }

// Writer implements Endpoint: the writer converts PCM at the stream's rate
// to S16LE and queues it for Playback. WritePCM never blocks.
func (e *StreamEndpoint) Writer(rate int) (PCMWriter, error) {
	if !e.serves(rate) {
		return nil, fmt.Errorf("media: %s cannot take %d Hz", e.name, rate)
	}
	if rate != e.cfg.Rate {
		return &e.nb, nil
	}
	return &e.w, nil
}

// SetSink implements Endpoint: captured frames go to w from now on.
func (e *StreamEndpoint) SetSink(rate int, w PCMWriter) error {
	if w != nil && !e.serves(rate) {
		return fmt.Errorf("media: %s cannot deliver %d Hz", e.name, rate)
	}
	e.sinkRate.Store(int32(rate))
	e.sink.Store(w)
	return nil
}

// Stats returns the endpoint's counters; safe at any time.
func (e *StreamEndpoint) Stats() StreamStats {
	return StreamStats{
		FramesIn: e.framesIn.Load(), FramesOut: e.framesOut.Load(),
		ReadErrors: e.readErrs.Load(), WriteErrors: e.writeErrs.Load(), Dropped: e.dropped.Load(),
	}
}

// Done is closed when the capture stream has ended: end of stream, a read
// error, or Close.
func (e *StreamEndpoint) Done() <-chan struct{} { return e.done }

// Err returns why the capture stream ended (io.EOF when the device closed
// it) once Done is closed; nil while it runs or after Close.
func (e *StreamEndpoint) Err() error {
	select {
	case <-e.done:
		return e.err
	default:
		return nil
	}
}

// Close stops the goroutines, closes Capture and Playback and waits for the
// goroutines to end. It is idempotent.
func (e *StreamEndpoint) Close() error {
	e.closeOnce.Do(func() {
		close(e.stop)
		e.sink.Store(nil)
		e.closeErr = errors.Join(e.cfg.Capture.Close(), e.cfg.Playback.Close())
		e.wg.Wait()
	})
	return e.closeErr
}

// receive reads one frame at a time into rframe's memory and pushes it.
func (e *StreamEndpoint) receive() {
	defer e.wg.Done()
	defer close(e.done)
	for {
		if _, err := io.ReadFull(e.cfg.Capture, e.rbytes); err != nil {
			select {
			case <-e.stop: // closed by us
			default:
				e.readErrs.Add(1)
				e.err = err
			}
			return
		}
		if !hostLittleEndian {
			for i := range e.rframe {
				e.rframe[i] = int16(binary.LittleEndian.Uint16(e.rbytes[2*i:]))
			}
		}
		e.framesIn.Add(1)
		if w := e.sink.Load(); w != nil {
			if int(e.sinkRate.Load()) != e.cfg.Rate {
				n := e.down.Process(e.dframe, e.rframe)
				_ = w.WritePCM(e.dframe[:n])
				continue
			}
			_ = w.WritePCM(e.rframe)
		}
	}
}

// play writes queued buffers to Playback, paced by the device.
func (e *StreamEndpoint) play() {
	defer e.wg.Done()
	for {
		select {
		case <-e.stop:
			return
		case b := <-e.full:
			n, err := e.cfg.Playback.Write(b)
			if err != nil || n < len(b) {
				e.writeErrs.Add(1)
				if n > 0 && n%2 == 1 {
					// Keep sample alignment: finish the half-written sample.
					_, _ = e.cfg.Playback.Write(b[n : n+1])
				}
			} else {
				e.framesOut.Add(1)
			}
			e.free <- b[:cap(b)]
		}
	}
}

// streamWriter is a StreamEndpoint's PCMWriter; with up set it takes PCM at
// half the stream's rate and doubles it first.
type streamWriter struct {
	e    *StreamEndpoint
	up   *Upsampler2x
	ubuf []int16
}

// WritePCM converts pcm to S16LE into free playback buffers (one 20 ms
// frame each at most) and queues them; with no free buffer the rest of pcm
// is dropped and counted.
func (w *streamWriter) WritePCM(pcm []int16) error {
	if w.up != nil {
		for len(pcm) > 0 {
			k := min(len(pcm), len(w.ubuf)/2)
			n := w.up.Process(w.ubuf, pcm[:k])
			w.queue(w.ubuf[:n])
			pcm = pcm[k:]
		}
		return nil
	}
	w.queue(pcm)
	return nil
}

// queue converts pcm (at the stream's rate) and queues it for playback.
func (w *streamWriter) queue(pcm []int16) {
	e := w.e
	for len(pcm) > 0 {
		var b []byte
		select {
		case b = <-e.free:
		default:
			e.dropped.Add(1)
			return
		}
		k := min(len(pcm), len(b)/2)
		for i, v := range pcm[:k] {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
		}
		e.full <- b[:2*k]
		pcm = pcm[k:]
	}
}
