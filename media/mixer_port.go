package media

import (
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
)

// Port queue and voice activity parameters.
const (
	mixMaxFrame    = 320 // samples in 20 ms at 16 kHz, the highest mixer rate
	mixRingFrames  = 8   // input queue capacity (a power of two)
	mixMaxQueued   = 3   // frames a tick may find queued; older ones are dropped
	mixDrainWindow = 50  // ticks (1 s) over which a standing queue is drained
	mixDrainDepth  = 2   // a queue never below this over the window loses a frame

	vadAbsDBFS   = -45.0 // a frame this loud is voice
	vadRelDB     = 12.0  // or this far above the port's noise floor,
	vadMinDBFS   = -60.0 // but never quieter than this
	vadOnset     = 2     // active frames in a row before Speaking
	vadHangover  = 15    // frames (300 ms) Speaking lasts after the last active one
	vadFloorRise = 0.05  // dB per frame the noise floor creeps up at least (2.5 dB/s)
	vadFloorInit = -70.0 // starting noise floor
	silenceDBFS  = -100.0

	agcMinDB     = -6.0 // normalisation gain range
	agcMaxDB     = 12.0
	agcGainRate  = 0.05 // share of the remaining gain error closed per active frame
	agcLevelRate = 0.1  // smoothing of the speech level estimate per active frame
	agcUnity     = 1 << agcShift
	agcShift     = 12 // gains are Q12
)

// MixPortStats counts a port's traffic.
type MixPortStats struct {
	// FramesIn is the number of 20 ms input frames queued for the mixer.
	FramesIn uint64
	// Underruns counts ticks that found no input frame (silence was used).
	Underruns uint64
	// Overruns counts input frames dropped because the queue was full or
	// held more latency than allowed.
	Overruns uint64
	// SinkErrors counts WritePCM errors from the port's sink.
	SinkErrors uint64
}

// MixPort is one participant's connection to a Mixer. It is a media
// Endpoint: bridge it to the participant's endpoint with Bridge, which
// pushes the participant's decoded audio into Writer and makes the mixer
// write the participant's mix (everyone but the participant) to the sink
// set with SetSink. A port is in at most one mixer at a time.
type MixPort struct {
	id       string
	rate     int // the mixer's rate
	frameLen int // samples per frame at rate

	owner    atomic.Pointer[Mixer]
	sink     atomic.Pointer[portSink]
	prompt   atomic.Pointer[promptBox]
	muted    atomic.Bool
	speaking atomic.Bool
	level    atomic.Uint64 // float64 bits of the smoothed input level, dBFS
	inRate   atomic.Int32  // rate of the latest Writer

	framesIn   atomic.Uint64
	underruns  atomic.Uint64
	overruns   atomic.Uint64
	sinkErrors atomic.Uint64

	ring frameRing
	mx   mixState // touched only by the goroutine of the mixer holding the port
}

var _ Endpoint = (*MixPort)(nil)

// portSink is the port's output writer with its resampler.
type portSink struct {
	w    PCMWriter
	down *Downsampler2x // nil when the sink runs at the mixer's rate
}

// promptBox wraps a prompt so it can be swapped atomically.
type promptBox struct{ src PCMSource }

// frameRing is a single-producer single-consumer queue of input frames: the
// participant's receive goroutine pushes, the mixer goroutine pops.
type frameRing struct {
	head  atomic.Uint64 // next frame to pop; written by the consumer only
	_     [56]byte      // keep head and tail on separate cache lines
	tail  atomic.Uint64 // next slot to fill; written by the producer only
	_     [56]byte
	slots [mixRingFrames][mixMaxFrame]int16
}

// mixState is the per-port state of the mixing loop.
type mixState struct {
	in      [mixMaxFrame]int16 // this tick's input
	contrib [mixMaxFrame]int32 // this tick's input after gain
	out     [mixMaxFrame]int16 // this tick's output at the mixer's rate
	down    [mixMaxFrame / 2]int16
	prompt  [mixMaxFrame]int16

	has         bool // an input frame was popped this tick
	active      bool // this tick's frame is voice
	contributes bool // this tick's frame is in the sum
	prompting   bool // prompt holds this tick's prompt audio

	frameDB, levelDB, floorDB, speechDB, gainDB float64
	speechInit                                  bool
	gainQ, prevGainQ                            int32
	run, hang                                   int
	minDepth, window                            int
}

// NewMixPort returns a port for a mixer running at rate Hz (8000 or 16000).
// id names the participant in Speakers.
func NewMixPort(id string, rate int) *MixPort {
	p := &MixPort{id: id, rate: rate, frameLen: SamplesPerFrame(rate)}
	p.level.Store(math.Float64bits(silenceDBFS))
	p.resetState()
	return p
}

func (p *MixPort) resetState() {
	p.mx.levelDB = silenceDBFS
	p.mx.floorDB = vadFloorInit
	p.mx.gainQ, p.mx.prevGainQ = agcUnity, agcUnity
	p.mx.minDepth = mixRingFrames
}

// ID returns the participant ID given to NewMixPort.
func (p *MixPort) ID() string { return p.id }

// Rates implements Endpoint: the mixer's rate, plus 8000 at 16 kHz (an
// 8 kHz participant is resampled inside the port).
func (p *MixPort) Rates() []int {
	if p.rate == 16000 {
		return []int{16000, 8000}
	}
	return []int{p.rate}
}

func (p *MixPort) checkRate(rate int) error {
	if rate == p.rate || (rate == 8000 && p.rate == 16000) {
		return nil
	}
	return fmt.Errorf("media: mixer port %s: rate %d not supported (mixer runs at %d)", p.id, rate, p.rate)
}

// Writer implements Endpoint: the returned writer takes the participant's
// decoded audio at rate, in packets of any size, and queues it for the
// mixer in 20 ms frames. It never blocks, locks or allocates. Only one
// writer of a port may be fed at a time (the latest); while the port is in
// no mixer its audio is discarded.
func (p *MixPort) Writer(rate int) (PCMWriter, error) {
	if err := p.checkRate(rate); err != nil {
		return nil, err
	}
	p.inRate.Store(int32(rate))
	w := &mixWriter{p: p}
	if rate != p.rate {
		w.up = new(Upsampler2x)
	}
	return w, nil
}

// SetSink implements Endpoint: the mixer writes this port's mix at rate to
// w once per 20 ms, from its own goroutine. A nil w stops the output.
func (p *MixPort) SetSink(rate int, w PCMWriter) error {
	if w == nil {
		p.sink.Store(nil)
		return nil
	}
	if err := p.checkRate(rate); err != nil {
		return err
	}
	s := &portSink{w: w}
	if rate != p.rate {
		s.down = new(Downsampler2x)
	}
	p.sink.Store(s)
	return nil
}

// String implements Endpoint, e.g. "mixer/16000" or "mixer/16000<-8000"
// when the participant writes 8 kHz audio.
func (p *MixPort) String() string {
	s := "mixer/" + strconv.Itoa(p.rate)
	if r := int(p.inRate.Load()); r != 0 && r != p.rate {
		s += "<-" + strconv.Itoa(r)
	}
	return s
}

// SetMuted mutes or unmutes the port: a muted port contributes nothing to
// the mix (and is never Speaking) but still hears the others.
func (p *MixPort) SetMuted(muted bool) { p.muted.Store(muted) }

// Muted reports whether the port is muted.
func (p *MixPort) Muted() bool { return p.muted.Load() }

// Speaking reports voice activity on the port's input, with a hangover of
// about 300 ms.
func (p *MixPort) Speaking() bool { return p.speaking.Load() }

// LevelDBFS returns the smoothed input level in dBFS (a full-scale sine is
// 0; silence is -100), measured before normalisation.
func (p *MixPort) LevelDBFS() float64 { return math.Float64frombits(p.level.Load()) }

// Play starts a prompt heard by this port only, mixed over whatever else
// it hears; it replaces a prompt still playing, and nil stops it. src is
// read by the mixer goroutine from the next tick on and must produce PCM at
// the mixer's rate.
func (p *MixPort) Play(src PCMSource) {
	if src == nil {
		p.prompt.Store(nil)
		return
	}
	p.prompt.Store(&promptBox{src: src})
}

// Playing reports whether a prompt started with Play is still playing.
func (p *MixPort) Playing() bool { return p.prompt.Load() != nil }

// Stats returns the port's counters.
func (p *MixPort) Stats() MixPortStats {
	return MixPortStats{
		FramesIn:   p.framesIn.Load(),
		Underruns:  p.underruns.Load(),
		Overruns:   p.overruns.Load(),
		SinkErrors: p.sinkErrors.Load(),
	}
}

// push queues one complete frame; called by the producer only.
func (p *MixPort) push(frame []int16) {
	if p.owner.Load() == nil {
		return // in no mixer: nobody would consume it
	}
	r := &p.ring
	t := r.tail.Load()
	if t-r.head.Load() >= mixRingFrames {
		p.overruns.Add(1)
		return
	}
	copy(r.slots[t%mixRingFrames][:], frame)
	r.tail.Store(t + 1)
	p.framesIn.Add(1)
}

// flush drops all queued input; called by the consumer only.
func (p *MixPort) flush() { p.ring.head.Store(p.ring.tail.Load()) }

// pull pops this tick's input frame into p.mx.in, trimming the queue to
// bound latency; called by the mixer goroutine.
func (p *MixPort) pull() {
	r, mx := &p.ring, &p.mx
	h, t := r.head.Load(), r.tail.Load()
	avail := int(t - h)
	if avail > mixMaxQueued {
		drop := avail - mixMaxQueued
		h += uint64(drop)
		avail -= drop
		p.overruns.Add(uint64(drop))
	}
	// A queue that never ran below mixDrainDepth for a whole window holds
	// standing latency (a burst, or a fast sender clock): drop one frame.
	mx.minDepth = min(mx.minDepth, avail)
	if mx.window++; mx.window >= mixDrainWindow {
		if mx.minDepth >= mixDrainDepth {
			h++
			avail--
			p.overruns.Add(1)
		}
		mx.window, mx.minDepth = 0, mixRingFrames
	}
	if avail == 0 {
		r.head.Store(h)
		mx.has = false
		p.underruns.Add(1)
		return
	}
	copy(mx.in[:p.frameLen], r.slots[h%mixRingFrames][:p.frameLen])
	r.head.Store(h + 1)
	mx.has = true
}

// analyse measures the input frame and runs voice activity detection and
// the loudness normaliser's gain update; called by the mixer goroutine.
func (p *MixPort) analyse(agc bool, target float64) {
	mx := &p.mx
	muted := p.muted.Load()
	mx.frameDB = silenceDBFS
	if mx.has {
		var e int64
		for _, v := range mx.in[:p.frameLen] {
			e += int64(v) * int64(v)
		}
		if e > 0 {
			// A full-scale sine (mean square 32767^2/2) is 0 dBFS.
			ms := float64(e) / float64(p.frameLen)
			mx.frameDB = max(10*math.Log10(ms/(32767.0*32767.0/2)), silenceDBFS)
		}
	}
	if d := mx.frameDB - mx.levelDB; d > 0 {
		mx.levelDB += 0.5 * d
	} else {
		mx.levelDB += 0.15 * d
	}
	p.level.Store(math.Float64bits(mx.levelDB))

	if mx.frameDB < mx.floorDB {
		mx.floorDB += 0.5 * (mx.frameDB - mx.floorDB)
	} else {
		// Creep up, faster when far below (after digital silence).
		mx.floorDB += max(vadFloorRise, 0.01*(mx.frameDB-mx.floorDB))
	}
	mx.floorDB = max(mx.floorDB, silenceDBFS)

	mx.active = !muted && mx.frameDB > vadMinDBFS &&
		(mx.frameDB > vadAbsDBFS || mx.frameDB > mx.floorDB+vadRelDB)
	speaking := p.speaking.Load()
	switch {
	case mx.active:
		mx.run++
		if mx.run >= vadOnset {
			speaking = true
			mx.hang = vadHangover
		}
	case muted:
		mx.run, mx.hang, speaking = 0, 0, false
	default:
		mx.run = 0
		if mx.hang > 0 {
			mx.hang--
		}
		if mx.hang == 0 {
			speaking = false
		}
	}
	p.speaking.Store(speaking)

	mx.prevGainQ = mx.gainQ
	if !agc || !mx.active || !speaking {
		return // no gain change in silence: noise is never boosted
	}
	if !mx.speechInit {
		mx.speechDB, mx.speechInit = mx.frameDB, true
	} else {
		mx.speechDB += agcLevelRate * (mx.frameDB - mx.speechDB)
	}
	want := min(max(target-mx.speechDB, agcMinDB), agcMaxDB)
	mx.gainDB += agcGainRate * (want - mx.gainDB)
	mx.gainQ = int32(math.Round(agcUnity * math.Pow(10, mx.gainDB/20)))
}

// applyGain fills p.mx.contrib with the input after gain, ramping from the
// previous tick's gain to this tick's across the frame.
func (p *MixPort) applyGain() {
	mx := &p.mx
	in, c := mx.in[:p.frameLen], mx.contrib[:p.frameLen]
	g0, g1 := mx.prevGainQ, mx.gainQ
	switch {
	case g0 == g1 && g1 == agcUnity:
		for i, v := range in {
			c[i] = int32(v)
		}
	case g0 == g1:
		for i, v := range in {
			c[i] = int32(v) * g1 >> agcShift
		}
	default:
		// Q12 gain in Q8 steps: at most 16384<<8, well inside int32.
		g := g0 << 8
		step := ((g1 - g0) << 8) / int32(len(in))
		for i, v := range in {
			c[i] = int32(v) * (g >> 8) >> agcShift
			g += step
		}
	}
}

// readPrompt reads this tick's prompt audio into p.mx.prompt.
func (p *MixPort) readPrompt() {
	mx := &p.mx
	mx.prompting = false
	b := p.prompt.Load()
	if b == nil {
		return
	}
	buf := mx.prompt[:p.frameLen]
	n := b.src.ReadPCM(buf)
	if n < len(buf) {
		clear(buf[max(n, 0):])
		p.prompt.CompareAndSwap(b, nil) // finished, unless replaced meanwhile
	}
	mx.prompting = n > 0
}

// mixWriter is a MixPort's input writer.
type mixWriter struct {
	p   *MixPort
	up  *Upsampler2x // nil when the writer runs at the mixer's rate
	acc [mixMaxFrame]int16
	n   int
	tmp [mixMaxFrame]int16
}

// WritePCM implements PCMWriter: it cuts pcm into 20 ms frames at the
// mixer's rate and queues them. It never fails.
func (w *mixWriter) WritePCM(pcm []int16) error {
	if w.up == nil {
		w.accumulate(pcm)
		return nil
	}
	for len(pcm) > 0 {
		k := min(len(pcm), len(w.tmp)/2)
		n := w.up.Process(w.tmp[:], pcm[:k])
		w.accumulate(w.tmp[:n])
		pcm = pcm[k:]
	}
	return nil
}

func (w *mixWriter) accumulate(pcm []int16) {
	f := w.p.frameLen
	for len(pcm) > 0 {
		k := copy(w.acc[w.n:f], pcm)
		w.n += k
		pcm = pcm[k:]
		if w.n == f {
			w.n = 0
			w.p.push(w.acc[:f])
		}
	}
}

// String describes the writer, e.g. "resample 8k->16k -> mixer/16000".
func (w *mixWriter) String() string {
	if w.up != nil {
		return "resample 8k->16k -> mixer/" + strconv.Itoa(w.p.rate)
	}
	return "mixer/" + strconv.Itoa(w.p.rate)
}
