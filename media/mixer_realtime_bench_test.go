package media

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/codecs"
)

// BenchmarkConferenceRealtime runs a conference in real time: the Mixer on
// its own 20 ms clock (NewMixer, 16 kHz, defaults) with n participants whose
// audio is decoded and written, and whose mixes are encoded, with real
// codecs as the clock runs. Half the participants are "Matrix" (Opus at
// 16 kHz both ways, encoder as the gateway configures it), half are "phones"
// (PCMU at 8 kHz both ways, resampled inside their ports). Every
// participant sends a tone at its own frequency, so every output is a real
// mix.
//
// One feeder goroutine stands in for the participants' receive goroutines:
// on an absolute 20 ms clock, half a frame after the mixer's ticks, it
// decodes one pre-encoded packet per participant and writes it to the
// port. One goroutine for all ports keeps n goroutine wake-ups per frame
// from dominating; a real gateway pays those on top. A feeder that falls
// behind catches up in a burst, as a socket's queued packets would.
//
// Each iteration is one fixed rtSessionRounds*20 ms (5 s) session, so run it
// with -benchtime 1x; the metrics cover the session (summed over
// iterations, max_tick_ms the maximum). lossless is 1 when no tick was
// late, no input frame was dropped and no tick found a port's queue empty
// except at most once per port (its first tick).
//
//	taskset -c 1 go test -run '^$' -bench ConferenceRealtime -benchtime 1x -cpu 1 ./media/
func BenchmarkConferenceRealtime(b *testing.B) {
	var cache [][][]byte // pre-encoded packets per participant index
	for _, n := range rtSizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			for len(cache) < n {
				i := len(cache)
				cache = append(cache, rtEncodedTone(b, i))
			}
			var sum rtResult
			lossless := true
			for range b.N {
				b.StopTimer()
				s := newRTSession(b, n, cache)
				runtime.GC() // setup garbage must not be collected during the session
				b.StartTimer()
				r := s.run(b)
				b.StopTimer()
				s.check(b)
				lossless = lossless && r.lossless(n)
				sum.add(r)
				b.StartTimer()
			}
			iters := float64(b.N)
			b.ReportMetric(float64(sum.late), "late_ticks")
			b.ReportMetric(float64(sum.overruns), "overruns")
			b.ReportMetric(float64(sum.underruns), "underruns")
			b.ReportMetric(float64(sum.feederLate), "feeder_late")
			b.ReportMetric(float64(sum.maxTick)/float64(time.Millisecond), "max_tick_ms")
			b.ReportMetric(sum.cpuMsPerS/iters, "cpu_ms_per_s")
			l := 0.0
			if lossless {
				l = 1
			}
			b.ReportMetric(l, "lossless")
		})
	}
}

// rtSizes are the conference sizes tried, 20 to 280 participants.
var rtSizes = func() []int {
	var s []int
	for n := 20; n <= 280; n += 20 {
		s = append(s, n)
	}
	return s
}()

const (
	rtSessionRounds = 250 // 5 s of 20 ms frames
	rtLoopFrames    = 10  // pre-encoded packets per participant, played in a loop
	rtCheckFrames   = 25  // the last 500 ms of a sink's output are checked
)

// rtFreq is participant i's tone: 10 Hz apart (resolvable in 500 ms), all
// below 3.4 kHz for i < 320, and a whole number of cycles in
// rtLoopFrames*20 ms so the looped packets join without a phase jump.
func rtFreq(i int) float64 { return 200 + 10*float64(i%320) }

// rtMatrix reports whether participant i is a Matrix participant (Opus).
func rtMatrix(i int) bool { return i%2 == 0 }

// rtEncodedTone encodes rtLoopFrames frames of participant i's tone at
// -30 dBFS with its codec: Opus at 16 kHz or PCMU at 8 kHz.
func rtEncodedTone(b *testing.B, i int) [][]byte {
	b.Helper()
	c, rate := codecs.PCMU, 8000
	if rtMatrix(i) {
		c, rate = benchOpus, 16000
	}
	enc, err := c.NewEncoder(rate)
	if err != nil {
		b.Fatal(err)
	}
	g := &ToneGenerator{Freq: rtFreq(i), Rate: rate, Amplitude: amplitude(-30)}
	frame := make([]int16, SamplesPerFrame(rate))
	out := make([][]byte, rtLoopFrames)
	for k := range out {
		g.Fill(frame)
		buf := make([]byte, c.MaxPayload)
		m, err := enc.Encode(frame, buf)
		if err != nil {
			b.Fatal(err)
		}
		out[k] = buf[:m]
	}
	return out
}

// rtParticipant is one participant: its port, its receive side (decoder
// and port writer, driven by the feeder) and its send side (the sink).
type rtParticipant struct {
	port     *MixPort
	w        PCMWriter
	dec      codecs.Decoder
	payloads [][]byte
	pcm      [mixMaxFrame]int16
	sink     *rtSink
}

// rtSink is a port's sink: it encodes each mix as the participant's
// endpoint writer would (the RTP send is left out) and, when keep is set,
// also keeps the last rtCheckFrames frames for the spot check.
type rtSink struct {
	enc    codecs.Encoder
	buf    []byte
	frames int
	keep   bool
	hist   []int16 // ring of rtCheckFrames frames
	flen   int     // samples per frame at the sink's rate
}

func (s *rtSink) WritePCM(pcm []int16) error {
	if s.keep && len(pcm) == s.flen {
		k := s.frames % rtCheckFrames
		copy(s.hist[k*s.flen:(k+1)*s.flen], pcm)
	}
	s.frames++
	_, err := s.enc.Encode(pcm, s.buf)
	return err
}

// last returns the kept frames in order, oldest first.
func (s *rtSink) last() []int16 {
	k := s.frames % rtCheckFrames
	out := make([]int16, 0, len(s.hist))
	out = append(out, s.hist[k*s.flen:]...)
	return append(out, s.hist[:k*s.flen]...)
}

// rtSession is one real-time conference.
type rtSession struct {
	m     *Mixer
	ps    []*rtParticipant
	start time.Time // just before the mixer started its clock
}

// rtResult is one session's (or the sum of several sessions') outcome.
type rtResult struct {
	late, overruns, underruns, feederLate uint64
	maxTick                               time.Duration
	cpuMsPerS                             float64
}

// lossless reports whether n participants lost nothing, allowing one
// underrun per port for its first tick.
func (r rtResult) lossless(n int) bool {
	return r.late == 0 && r.overruns == 0 && r.underruns <= uint64(n)
}

func (r *rtResult) add(o rtResult) {
	r.late += o.late
	r.overruns += o.overruns
	r.underruns += o.underruns
	r.feederLate += o.feederLate
	r.maxTick = max(r.maxTick, o.maxTick)
	r.cpuMsPerS += o.cpuMsPerS
}

// newRTSession makes n participants with their codecs and sinks, starts a
// mixer and adds them. The spot-checked sinks (participants 0 and 1, one
// Matrix and one phone) keep their last frames.
func newRTSession(b *testing.B, n int, cache [][][]byte) *rtSession {
	b.Helper()
	s := &rtSession{ps: make([]*rtParticipant, n)}
	for i := range s.ps {
		c, rate := codecs.PCMU, 8000
		if rtMatrix(i) {
			c, rate = benchOpus, 16000
		}
		dec, err := c.NewDecoder(rate)
		if err != nil {
			b.Fatal(err)
		}
		enc, err := c.NewEncoder(rate)
		if err != nil {
			b.Fatal(err)
		}
		port := NewMixPort(fmt.Sprintf("p%d", i), 16000)
		w, err := port.Writer(rate)
		if err != nil {
			b.Fatal(err)
		}
		flen := SamplesPerFrame(rate)
		sink := &rtSink{enc: enc, buf: make([]byte, c.MaxPayload), keep: i < 2, flen: flen}
		if sink.keep {
			sink.hist = make([]int16, rtCheckFrames*flen)
		}
		if err := port.SetSink(rate, sink); err != nil {
			b.Fatal(err)
		}
		s.ps[i] = &rtParticipant{port: port, w: w, dec: dec, payloads: cache[i], sink: sink}
	}
	s.start = time.Now()
	m, err := NewMixer(MixerConfig{Rate: 16000})
	if err != nil {
		b.Fatal(err)
	}
	s.m = m
	b.Cleanup(m.Close)
	for _, p := range s.ps {
		if err := m.Add(p.port); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// run feeds the conference for rtSessionRounds frames in real time, then
// closes the mixer and returns the session's counters.
func (s *rtSession) run(b *testing.B) rtResult {
	const frame = FrameMillis * time.Millisecond
	// The mixer ticks at start+k*frame; feed half a frame after a tick,
	// leaving a margin for the feeder's first slot.
	first := s.start.Add(frame / 2)
	for time.Until(first) < time.Millisecond {
		first = first.Add(frame)
	}
	var ru0 syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru0); err != nil {
		b.Fatal(err)
	}
	wall0 := time.Now()

	type fed struct {
		late uint64
		err  error
	}
	done := make(chan fed, 1)
	go func() {
		var f fed
		next := first
		for k := range rtSessionRounds {
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			} else if -d > frame {
				f.late++
			}
			for _, p := range s.ps {
				n, err := p.dec.Decode(p.payloads[k%len(p.payloads)], p.pcm[:])
				if err == nil {
					err = p.w.WritePCM(p.pcm[:n])
				}
				if err != nil {
					f.err = err
					done <- f
					return
				}
			}
			next = next.Add(frame)
		}
		done <- f
	}()
	f := <-done
	if f.err != nil {
		s.m.Close()
		b.Fatalf("feeder: %v", f.err)
	}
	// Let the tick after the last write consume it, then stop the clock.
	lastTick := first.Add(time.Duration(rtSessionRounds-1)*frame + frame/2)
	if d := time.Until(lastTick.Add(frame / 4)); d > 0 {
		time.Sleep(d)
	}
	s.m.Close()

	var ru1 syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru1); err != nil {
		b.Fatal(err)
	}
	wall := time.Since(wall0)
	cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime) - syscall.TimevalToNsec(ru0.Utime) +
		syscall.TimevalToNsec(ru1.Stime) - syscall.TimevalToNsec(ru0.Stime))

	st := s.m.Stats()
	r := rtResult{
		late:       st.Late,
		feederLate: f.late,
		maxTick:    st.MaxTick,
		cpuMsPerS:  float64(cpu) / float64(time.Millisecond) / wall.Seconds(),
	}
	for _, p := range s.ps {
		ps := p.port.Stats()
		r.overruns += ps.Overruns
		r.underruns += ps.Underruns
	}
	return r
}

// check fails the benchmark unless every sink was written without error
// and the spot-checked sinks' last 500 ms hold other participants' audio:
// loud enough overall, with the tone of a neighbour participant (the
// Matrix sink hears phone 1, the phone sink hears Matrix 0) present.
func (s *rtSession) check(b *testing.B) {
	b.Helper()
	for i, p := range s.ps {
		if st := p.port.Stats(); st.SinkErrors != 0 || p.sink.frames == 0 {
			b.Fatalf("participant %d: %d frames encoded, port stats %+v", i, p.sink.frames, st)
		}
	}
	for i, other := range []int{1, 0} {
		sk := s.ps[i].sink
		if sk.frames < rtCheckFrames {
			b.Fatalf("participant %d: only %d frames mixed", i, sk.frames)
		}
		pcm := sk.last()
		rate := sk.flen * 1000 / FrameMillis
		rms := RMS(pcm)
		tone := toneDB(pcm, rate, rtFreq(other))
		if rms < 100 || tone < -50 { // -50 dBFS; a fair share of the mix is near -25
			b.Fatalf("participant %d (%d Hz sink): last 500 ms RMS %.0f, participant %d's %.0f Hz tone at %.1f dBFS: the mix is silent or lacks other participants",
				i, rate, rms, other, rtFreq(other), tone)
		}
	}
}
