package media

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ErrMixerClosed is returned by Mixer.Add after Close.
var ErrMixerClosed = errors.New("media: mixer closed")

// MixerConfig configures a Mixer.
type MixerConfig struct {
	// Rate is the internal mixing rate: 8000 or 16000 (default 16000).
	Rate int
	// Isolated makes ports hear only their own prompts and PlayAll, never
	// each other (an IVR lobby).
	Isolated bool
	// TargetDBFS is the loudness normalisation target for speech, -60 to -1
	// (default -20); 1 disables normalisation.
	TargetDBFS int
	// MaxSpeakers mixes at most this many loudest active ports (0 = all
	// unmuted ports).
	MaxSpeakers int
}

// MixerStats reports a mixer's clock and load.
type MixerStats struct {
	// Ticks is the number of 20 ms mixing rounds run.
	Ticks uint64
	// Late counts ticks that started more than one frame late.
	Late uint64
	// MaxTick is the longest time one tick took.
	MaxTick time.Duration
	// Ports is the number of ports in the mixer.
	Ports int
}

// Soft clipper: samples beyond the knee are compressed smoothly into the
// headroom above it, so a loud mix saturates without a hard edge.
const (
	clipKnee = 24576 // about -2.5 dBFS
	clipRoom = 32767 - clipKnee
)

// Mixer is an N-1 conference mixer: once per 20 ms its goroutine takes one
// frame from every port, normalises and sums them, and writes to every port
// the sum minus its own contribution, plus the PlayAll source and the
// port's own prompt. Ports are added and removed between ticks.
type Mixer struct {
	cfg      MixerConfig
	frameLen int
	agc      bool
	target   float64

	reqs      chan mixReq
	quit      chan struct{}
	exited    chan struct{}
	closeOnce sync.Once
	running   bool

	mu     sync.Mutex // guards shadow, a copy of ports for Speakers
	shadow []*MixPort

	nports  atomic.Int32
	ticks   atomic.Uint64
	late    atomic.Uint64
	maxTick atomic.Int64

	// Owned by the mixer goroutine.
	ports  []*MixPort
	cand   []*MixPort
	sum    [mixMaxFrame]int32
	all    PCMSource
	allBuf [mixMaxFrame]int16
	hasAll bool

	// Output workers: from parallelFrom ports on, the output stage (each
	// port's N-1 mix, resampling and its sink's encoding) of a tick is
	// spread over up to maxOutputWorkers+1 cores. Started lazily, stopped
	// with the mixer.
	workers []outWorker
}

// parallelFrom is the port count from which a tick's output stage runs on
// several cores; below it one core does the whole tick.
const parallelFrom = 16

// maxOutputWorkers bounds the extra goroutines of one mixer.
const maxOutputWorkers = 3

// outWorker runs the output stage for a slice of the ports each tick.
type outWorker struct {
	start chan [2]int // [lo, hi) of m.ports
	done  chan struct{}
}

type mixOp uint8

const (
	opAdd mixOp = iota
	opRemove
	opPlayAll
)

type mixReq struct {
	op   mixOp
	p    *MixPort
	src  PCMSource
	done chan struct{}
}

// NewMixer validates cfg, fills in defaults and starts the mixer's
// goroutine, which ticks every 20 ms until Close.
func NewMixer(cfg MixerConfig) (*Mixer, error) {
	m, err := newMixer(cfg)
	if err != nil {
		return nil, err
	}
	m.running = true
	go m.run()
	return m, nil
}

// newMixer makes a mixer without starting its goroutine (tests and
// benchmarks drive tick directly).
func newMixer(cfg MixerConfig) (*Mixer, error) {
	if cfg.Rate == 0 {
		cfg.Rate = 16000
	}
	if cfg.Rate != 8000 && cfg.Rate != 16000 {
		return nil, fmt.Errorf("media: mixer rate %d: must be 8000 or 16000", cfg.Rate)
	}
	if cfg.TargetDBFS == 0 {
		cfg.TargetDBFS = -20
	}
	if cfg.TargetDBFS != 1 && (cfg.TargetDBFS < -60 || cfg.TargetDBFS > -1) {
		return nil, fmt.Errorf("media: mixer target %d dBFS: must be -60 to -1, or 1 to disable", cfg.TargetDBFS)
	}
	if cfg.MaxSpeakers < 0 {
		return nil, fmt.Errorf("media: mixer max speakers %d: must not be negative", cfg.MaxSpeakers)
	}
	return &Mixer{
		cfg:      cfg,
		frameLen: SamplesPerFrame(cfg.Rate),
		agc:      cfg.TargetDBFS != 1,
		target:   float64(cfg.TargetDBFS),
		reqs:     make(chan mixReq),
		quit:     make(chan struct{}),
		exited:   make(chan struct{}),
	}, nil
}

// Close stops the mixer's goroutine and waits for it; afterwards no port's
// sink is written again and the ports may join another mixer. It is
// idempotent.
func (m *Mixer) Close() {
	m.closeOnce.Do(func() {
		close(m.quit)
		if !m.running {
			m.detachAll()
			close(m.exited)
		}
	})
	<-m.exited
}

// Rate returns the mixing rate in Hz.
func (m *Mixer) Rate() int { return m.cfg.Rate }

// Len returns the number of ports in the mixer.
func (m *Mixer) Len() int { return int(m.nports.Load()) }

// Add puts p into the mix; when it returns nil, p is mixed from the next
// tick on. It fails if the mixer is closed, p is already in a mixer, or p
// was made for another rate. Add and Remove of one port must not run
// concurrently.
func (m *Mixer) Add(p *MixPort) error {
	if p == nil {
		return errors.New("media: mixer: nil port")
	}
	if p.rate != m.cfg.Rate {
		return fmt.Errorf("media: mixer: port %s is for %d Hz, mixer runs at %d", p.id, p.rate, m.cfg.Rate)
	}
	select {
	case <-m.quit:
		return ErrMixerClosed
	default:
	}
	if !p.owner.CompareAndSwap(nil, m) {
		return fmt.Errorf("media: mixer: port %s is already in a mixer", p.id)
	}
	done := make(chan struct{}, 1)
	select {
	case m.reqs <- mixReq{op: opAdd, p: p, done: done}:
	case <-m.exited:
		p.owner.CompareAndSwap(m, nil)
		return ErrMixerClosed
	}
	select {
	case <-done:
		return nil
	case <-m.exited:
		// Closed meanwhile: the goroutine detached p if it had added it.
		p.owner.CompareAndSwap(m, nil)
		return ErrMixerClosed
	}
}

// Remove takes p out of the mix; when it returns, the mixer goroutine no
// longer touches p or its sink, and p may be added to another mixer. It
// does nothing if p is not in m.
func (m *Mixer) Remove(p *MixPort) {
	if p == nil || p.owner.Load() != m {
		return
	}
	done := make(chan struct{}, 1)
	select {
	case m.reqs <- mixReq{op: opRemove, p: p, done: done}:
	case <-m.exited:
		return // the goroutine detached every port on its way out
	}
	select {
	case <-done:
		p.owner.CompareAndSwap(m, nil)
	case <-m.exited:
	}
}

// PlayAll mixes src into every port's output once (join and leave tones),
// replacing a previous PlayAll source; nil stops it. src must produce PCM at
// the mixer's rate. It returns without waiting for the next tick.
func (m *Mixer) PlayAll(src PCMSource) {
	select {
	case m.reqs <- mixReq{op: opPlayAll, src: src}:
	case <-m.exited:
	}
}

// Speakers appends to dst the IDs of the ports currently speaking, loudest
// first, and returns the extended slice.
func (m *Mixer) Speakers(dst []string) []string {
	m.mu.Lock()
	var sp []*MixPort
	for _, p := range m.shadow {
		if p.Speaking() {
			sp = append(sp, p)
		}
	}
	m.mu.Unlock()
	levels := make([]float64, len(sp))
	for i, p := range sp {
		levels[i] = p.LevelDBFS()
	}
	idx := make([]int, len(sp))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return levels[idx[a]] > levels[idx[b]] })
	for _, i := range idx {
		dst = append(dst, sp[i].id)
	}
	return dst
}

// Stats returns the mixer's counters.
func (m *Mixer) Stats() MixerStats {
	return MixerStats{
		Ticks:   m.ticks.Load(),
		Late:    m.late.Load(),
		MaxTick: time.Duration(m.maxTick.Load()),
		Ports:   m.Len(),
	}
}

// run is the mixer goroutine: it ticks on an absolute 20 ms timeline and
// handles requests between ticks.
func (m *Mixer) run() {
	defer close(m.exited)
	defer m.detachAll()
	const frame = FrameMillis * time.Millisecond
	next := time.Now().Add(frame)
	timer := time.NewTimer(frame)
	defer timer.Stop()
	idle := false
	for {
		// An empty mixer (an idle PIN lobby, a conference between calls)
		// does not tick: no wake-ups while nobody is connected, which
		// matters on a phone's battery.
		if len(m.ports) == 0 && m.all == nil {
			if !idle {
				idle = true
				if !timer.Stop() {
					select {
					case <-timer.C:
					default:
					}
				}
			}
			select {
			case <-m.quit:
				return
			case r := <-m.reqs:
				m.handle(r)
			}
			continue
		}
		if idle {
			idle = false
			next = time.Now().Add(frame)
			timer.Reset(frame)
		}
		select {
		case <-m.quit:
			return
		case r := <-m.reqs:
			m.handle(r)
			continue
		case <-timer.C:
		}
		if behind := time.Since(next); behind > frame {
			m.late.Add(1)
			if behind > 5*frame {
				next = time.Now() // resynchronise rather than burst
			}
		}
		m.tick()
		next = next.Add(frame)
		timer.Reset(time.Until(next))
	}
}

// handle applies one request; called by the mixer goroutine.
func (m *Mixer) handle(r mixReq) {
	switch r.op {
	case opAdd:
		m.attach(r.p)
	case opRemove:
		m.detach(r.p)
	case opPlayAll:
		m.all = r.src
	}
	if r.done != nil {
		r.done <- struct{}{}
	}
}

// attach adds p (already owned by m) to the port list.
func (m *Mixer) attach(p *MixPort) {
	p.flush() // audio queued before joining is stale
	p.mx.window, p.mx.minDepth = 0, mixRingFrames
	m.ports = append(m.ports, p)
	if cap(m.cand) < len(m.ports) {
		m.cand = make([]*MixPort, 0, 2*len(m.ports))
	}
	m.publish()
}

// detach removes p from the port list.
func (m *Mixer) detach(p *MixPort) {
	for i, q := range m.ports {
		if q == p {
			last := len(m.ports) - 1
			m.ports[i] = m.ports[last]
			m.ports[last] = nil
			m.ports = m.ports[:last]
			break
		}
	}
	p.speaking.Store(false)
	m.publish()
}

// detachAll releases every port; called when the goroutine ends.
func (m *Mixer) detachAll() {
	m.stopWorkers()
	for _, p := range m.ports {
		p.speaking.Store(false)
		p.owner.CompareAndSwap(m, nil)
	}
	clear(m.ports)
	m.ports = m.ports[:0]
	m.publish()
}

// publish copies the port list for Speakers and Len.
func (m *Mixer) publish() {
	m.mu.Lock()
	m.shadow = append(m.shadow[:0], m.ports...)
	m.mu.Unlock()
	m.nports.Store(int32(len(m.ports)))
}

// tick runs one mixing round; called by the mixer goroutine (or directly
// by tests and benchmarks when the goroutine is not started).
func (m *Mixer) tick() {
	start := time.Now()
	f := m.frameLen

	m.hasAll = false
	if m.all != nil {
		buf := m.allBuf[:f]
		n := m.all.ReadPCM(buf)
		if n < f {
			clear(buf[max(n, 0):])
			m.all = nil
		}
		m.hasAll = n > 0
	}

	for _, p := range m.ports {
		p.pull()
		p.analyse(m.agc, m.target)
		p.readPrompt()
		p.mx.contributes = !m.cfg.Isolated && p.mx.has && !p.muted.Load()
	}
	if m.cfg.MaxSpeakers > 0 && !m.cfg.Isolated {
		m.selectLoudest()
	}

	sum := m.sum[:f]
	clear(sum)
	for _, p := range m.ports {
		if !p.mx.contributes {
			continue
		}
		p.applyGain()
		for i, v := range p.mx.contrib[:f] {
			sum[i] += v
		}
	}

	m.outputAll()

	m.ticks.Add(1)
	if d := int64(time.Since(start)); d > m.maxTick.Load() {
		m.maxTick.Store(d)
	}
}

// outputAll runs the output stage for every port: in the mixer goroutine,
// or, for a large conference on a machine with spare cores, split between
// it and the output workers (the mixer waits for them, so the ports and the
// shared sum are not touched by anyone else meanwhile).
func (m *Mixer) outputAll() {
	n := len(m.ports)
	k := 0
	if n >= parallelFrom {
		k = min(runtime.GOMAXPROCS(0)-1, maxOutputWorkers, n/(parallelFrom/2)-1)
	}
	if k <= 0 {
		for _, p := range m.ports {
			m.output(p)
		}
		return
	}
	for len(m.workers) < k {
		w := outWorker{start: make(chan [2]int, 1), done: make(chan struct{}, 1)}
		m.workers = append(m.workers, w)
		go m.work(w)
	}
	chunk := (n + k) / (k + 1)
	for i := range k {
		lo := min((i+1)*chunk, n)
		m.workers[i].start <- [2]int{lo, min(lo+chunk, n)}
	}
	for _, p := range m.ports[:min(chunk, n)] {
		m.output(p)
	}
	for i := range k {
		<-m.workers[i].done
	}
}

// work is an output worker's goroutine.
func (m *Mixer) work(w outWorker) {
	for r := range w.start {
		for _, p := range m.ports[r[0]:r[1]] {
			m.output(p)
		}
		w.done <- struct{}{}
	}
}

// stopWorkers ends the output workers; called by the mixer goroutine.
func (m *Mixer) stopWorkers() {
	for _, w := range m.workers {
		close(w.start)
	}
	m.workers = nil
}

// selectLoudest keeps only the MaxSpeakers loudest voice-active ports in
// the mix.
func (m *Mixer) selectLoudest() {
	c := m.cand[:0]
	for _, p := range m.ports {
		if p.mx.contributes {
			p.mx.contributes = false
			if p.mx.active || p.speaking.Load() {
				c = append(c, p)
			}
		}
	}
	k := min(m.cfg.MaxSpeakers, len(c))
	for i := range k {
		best := i
		for j := i + 1; j < len(c); j++ {
			if c[j].mx.levelDB > c[best].mx.levelDB {
				best = j
			}
		}
		c[i], c[best] = c[best], c[i]
		c[i].mx.contributes = true
	}
	clear(c)
}

// output computes p's mix and writes it to p's sink.
func (m *Mixer) output(p *MixPort) {
	s := p.sink.Load()
	if s == nil {
		return
	}
	f := m.frameLen
	mx := &p.mx
	out := mx.out[:f]
	sum := m.sum[:f]
	var own []int32
	if mx.contributes {
		own = mx.contrib[:f]
	}
	var all, pr []int16
	if m.hasAll {
		all = m.allBuf[:f]
	}
	if mx.prompting {
		pr = mx.prompt[:f]
	}
	switch {
	case all != nil || pr != nil:
		// Announcements are added before limiting, in one pass.
		isolated := m.cfg.Isolated
		for i := range out {
			var v int32
			if !isolated {
				v = sum[i]
				if own != nil {
					v -= own[i]
				}
			}
			if all != nil {
				v += int32(all[i])
			}
			if pr != nil {
				v += int32(pr[i])
			}
			out[i] = softClip(v)
		}
	case m.cfg.Isolated:
		clear(out)
	case own != nil:
		for i := range out {
			out[i] = softClip(sum[i] - own[i])
		}
	default:
		for i := range out {
			out[i] = softClip(sum[i])
		}
	}
	pcm := out
	if s.down != nil {
		n := s.down.Process(mx.down[:], out)
		pcm = mx.down[:n]
	}
	if err := s.w.WritePCM(pcm); err != nil {
		p.sinkErrors.Add(1)
	}
}

// softClip saturates v to int16, compressing values beyond clipKnee
// smoothly toward full scale (slope 1 at the knee).
func softClip(v int32) int16 {
	switch {
	case v > clipKnee:
		e := int64(v - clipKnee)
		return int16(clipKnee + e*clipRoom/(e+clipRoom))
	case v < -clipKnee:
		e := int64(-v - clipKnee)
		return int16(-clipKnee - e*clipRoom/(e+clipRoom))
	}
	return int16(v)
}
