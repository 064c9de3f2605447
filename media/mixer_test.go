package media

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// pcmCapture is a sink that records everything written to it.
type pcmCapture struct {
	mu  sync.Mutex
	pcm []int16
	n   int // WritePCM calls
}

func (c *pcmCapture) WritePCM(pcm []int16) error {
	c.mu.Lock()
	c.pcm = append(c.pcm, pcm...)
	c.n++
	c.mu.Unlock()
	return nil
}

func (c *pcmCapture) samples() []int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.pcm)
}

func (c *pcmCapture) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// since returns the samples recorded after the first skip ones.
func (c *pcmCapture) since(skip int) []int16 {
	s := c.samples()
	if skip > len(s) {
		return nil
	}
	return s[skip:]
}

// nullSink discards audio without allocating.
type nullSink struct{ n int }

func (s *nullSink) WritePCM(pcm []int16) error { s.n += len(pcm); return nil }

// errSink fails every write.
type errSink struct{}

func (errSink) WritePCM([]int16) error { return errors.New("test: sink broken") }

// sounding returns pcm without its leading and trailing near-silence, so
// that Goertzel measures only the part where something plays (silence
// dilutes its fraction).
func sounding(pcm []int16) []int16 {
	loud := func(v int16) bool { return v > 50 || v < -50 }
	i := slices.IndexFunc(pcm, loud)
	if i < 0 {
		return nil
	}
	j := len(pcm) - 1
	for !loud(pcm[j]) {
		j--
	}
	return pcm[i : j+1]
}

// amplitude returns the peak amplitude of a sine at dbfs.
func amplitude(dbfs float64) float64 { return 32767 * math.Pow(10, dbfs/20) }

// toneDB is the level of freq in pcm in dB (relative to full scale RMS).
func toneDB(pcm []int16, rate int, freq float64) float64 {
	rms := RMS(pcm)
	p := Goertzel(pcm, rate, freq) * rms * rms
	return 10 * math.Log10(max(p, 1e-9)/(32767.0*32767.0/2))
}

// addNow puts p into a mixer whose goroutine is not running.
func addNow(t testing.TB, m *Mixer, p *MixPort) {
	t.Helper()
	if !p.owner.CompareAndSwap(nil, m) {
		t.Fatalf("port %s already in a mixer", p.ID())
	}
	m.attach(p)
}

// driven is a test conference driven tick by tick: every port has a tone
// generator (nil for a silent participant), an input writer and a capture.
type driven struct {
	m     *Mixer
	ports []*MixPort
	gens  []*ToneGenerator
	ws    []PCMWriter
	caps  []*pcmCapture
	frame []int16
}

func newDriven(t *testing.T, cfg MixerConfig, gens ...*ToneGenerator) *driven {
	t.Helper()
	m, err := newMixer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := &driven{m: m, gens: gens, frame: make([]int16, SamplesPerFrame(m.Rate()))}
	for i := range gens {
		p := NewMixPort(fmt.Sprintf("p%d", i), m.Rate())
		w, err := p.Writer(m.Rate())
		if err != nil {
			t.Fatal(err)
		}
		c := &pcmCapture{}
		if err := p.SetSink(m.Rate(), c); err != nil {
			t.Fatal(err)
		}
		addNow(t, m, p)
		d.ports, d.ws, d.caps = append(d.ports, p), append(d.ws, w), append(d.caps, c)
	}
	t.Cleanup(m.Close)
	return d
}

// run writes one frame per port and ticks, n times.
func (d *driven) run(t *testing.T, n int) {
	t.Helper()
	for range n {
		for i, g := range d.gens {
			if g == nil {
				clear(d.frame)
			} else {
				g.Fill(d.frame)
			}
			if err := d.ws[i].WritePCM(d.frame); err != nil {
				t.Fatal(err)
			}
		}
		d.m.tick()
	}
}

func (d *driven) mark() []int {
	marks := make([]int, len(d.caps))
	for i, c := range d.caps {
		marks[i] = len(c.samples())
	}
	return marks
}

func toneAt(freq float64, rate int, dbfs float64) *ToneGenerator {
	return &ToneGenerator{Freq: freq, Rate: rate, Amplitude: amplitude(dbfs)}
}

// feed writes a tone to w in packets of pktMillis at real time for dur.
func feed(w PCMWriter, freq float64, rate, pktMillis int, dur time.Duration) {
	g := NewToneGenerator(freq, rate)
	pkt := make([]int16, rate*pktMillis/1000)
	tk := time.NewTicker(time.Duration(pktMillis) * time.Millisecond)
	defer tk.Stop()
	for range int(dur / (time.Duration(pktMillis) * time.Millisecond)) {
		<-tk.C
		g.Fill(pkt)
		_ = w.WritePCM(pkt)
	}
}

// TestMixerMinusOne runs a real-time conference of four participants, each
// sending its own tone from its own goroutine in 10, 20 or 30 ms packets:
// everyone hears the three others and not themselves.
func TestMixerMinusOne(t *testing.T) {
	m, err := NewMixer(MixerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	freqs := []float64{400, 700, 1100, 1500}
	pkts := []int{20, 10, 30, 20}
	caps := make([]*pcmCapture, len(freqs))
	ws := make([]PCMWriter, len(freqs))
	for i := range freqs {
		p := NewMixPort(fmt.Sprintf("p%d", i), 16000)
		caps[i] = &pcmCapture{}
		if err := p.SetSink(16000, caps[i]); err != nil {
			t.Fatal(err)
		}
		if ws[i], err = p.Writer(16000); err != nil {
			t.Fatal(err)
		}
		if err := m.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	if m.Len() != 4 {
		t.Fatalf("Len = %d, want 4", m.Len())
	}
	var wg sync.WaitGroup
	for i := range freqs {
		wg.Go(func() { feed(ws[i], freqs[i], 16000, pkts[i], time.Second) })
	}
	wg.Wait()
	m.Close()
	for i, c := range caps {
		out := c.since(16000 / 5) // skip the first 200 ms
		if len(out) < 16000/2 {
			t.Fatalf("port %d: only %d samples of output", i, len(out))
		}
		for j, f := range freqs {
			g := Goertzel(out, 16000, f)
			t.Logf("port %d hears %4.0f Hz: %.4f", i, f, g)
			if j == i && g >= 0.01 {
				t.Errorf("port %d hears its own %.0f Hz tone: %.4f, want < 0.01", i, f, g)
			}
			if j != i && g < 0.1 {
				t.Errorf("port %d misses the %.0f Hz tone: %.4f, want >= 0.1", i, f, g)
			}
		}
	}
	st := m.Stats()
	if st.Ticks < 40 || st.Ports != 0 {
		t.Errorf("stats after close: %+v, want >= 40 ticks and 0 ports", st)
	}
}

func TestMixerMute(t *testing.T) {
	freqs := []float64{500, 900, 1300}
	d := newDriven(t, MixerConfig{},
		toneAt(freqs[0], 16000, -12), toneAt(freqs[1], 16000, -12), toneAt(freqs[2], 16000, -12))
	d.run(t, 25)
	mark := d.mark()
	d.ports[0].SetMuted(true)
	if !d.ports[0].Muted() {
		t.Fatal("Muted() = false after SetMuted(true)")
	}
	d.run(t, 25)
	for i := 1; i < 3; i++ {
		before := d.caps[i].samples()[16000/5 : mark[i]]
		after := d.caps[i].since(mark[i])
		if g := Goertzel(before, 16000, freqs[0]); g < 0.1 {
			t.Errorf("port %d before mute: %.0f Hz at %.4f, want >= 0.1", i, freqs[0], g)
		}
		if g := Goertzel(after, 16000, freqs[0]); g >= 0.01 {
			t.Errorf("port %d after mute: %.0f Hz at %.4f, want < 0.01", i, freqs[0], g)
		}
	}
	// The muted port still hears the others.
	after := d.caps[0].since(mark[0])
	for _, f := range freqs[1:] {
		if g := Goertzel(after, 16000, f); g < 0.1 {
			t.Errorf("muted port misses %.0f Hz: %.4f", f, g)
		}
	}
	if d.ports[0].Speaking() {
		t.Error("a muted port reports Speaking")
	}
}

func TestMixerMaxSpeakers(t *testing.T) {
	freqs := []float64{500, 900, 1300, 1700}
	levels := []float64{-10, -20, -30, -40}
	gens := []*ToneGenerator{nil} // port 0 listens
	for i, f := range freqs {
		gens = append(gens, toneAt(f, 16000, levels[i]))
	}
	d := newDriven(t, MixerConfig{MaxSpeakers: 2, TargetDBFS: 1}, gens...)
	d.run(t, 40)
	out := d.caps[0].since(16000 / 5)
	for i, f := range freqs {
		g := Goertzel(out, 16000, f)
		if i < 2 && g < 0.05 {
			t.Errorf("one of the two loudest (%.0f Hz) missing: %.4f", f, g)
		}
		if i >= 2 && g >= 0.01 {
			t.Errorf("a quieter speaker (%.0f Hz) is mixed: %.4f, want < 0.01", f, g)
		}
	}
}

// TestMixerMoveBetweenMixers moves a port from a lobby to a conference:
// after Remove the old mixer never writes to its sink again.
func TestMixerMoveBetweenMixers(t *testing.T) {
	lobby, err := NewMixer(MixerConfig{Isolated: true})
	if err != nil {
		t.Fatal(err)
	}
	defer lobby.Close()
	conf, err := NewMixer(MixerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer conf.Close()
	p := NewMixPort("alice", 16000)
	c := &pcmCapture{}
	if err := p.SetSink(16000, c); err != nil {
		t.Fatal(err)
	}
	if err := lobby.Add(p); err != nil {
		t.Fatal(err)
	}
	if err := conf.Add(p); err == nil {
		t.Fatal("Add of a port already in another mixer succeeded")
	}
	if err := lobby.Add(p); err == nil {
		t.Fatal("Add of a port twice succeeded")
	}
	waitFor(t, "lobby writes", func() bool { return c.calls() >= 5 })
	lobby.Remove(p)
	if lobby.Len() != 0 {
		t.Errorf("lobby Len = %d after Remove", lobby.Len())
	}
	n := c.calls()
	time.Sleep(100 * time.Millisecond)
	if c.calls() != n {
		t.Fatalf("the lobby wrote %d more frames after Remove", c.calls()-n)
	}
	if err := conf.Add(p); err != nil {
		t.Fatal(err)
	}
	mark := len(c.samples())
	conf.PlayAll(NewToneSource(16000, ToneSegment{Freq1: 1000, Dur: 200 * time.Millisecond, DBFS: -12}))
	waitFor(t, "conference writes", func() bool { return c.calls() >= n+15 })
	if g := Goertzel(sounding(c.since(mark)), 16000, 1000); g < 0.9 {
		t.Errorf("conference tone after the move: Goertzel %.4f, want >= 0.9", g)
	}
	lobby.Remove(p) // not in the lobby: no effect
	if conf.Len() != 1 {
		t.Errorf("conference Len = %d, want 1", conf.Len())
	}
}

// waitFor polls cond for up to 3 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 300 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestMixerIsolated(t *testing.T) {
	d := newDriven(t, MixerConfig{Isolated: true},
		toneAt(500, 16000, -12), toneAt(900, 16000, -12), toneAt(1100, 16000, -12))
	prompts := []float64{1300, 1700}
	for i, f := range prompts {
		d.ports[i].Play(NewToneSource(16000, ToneSegment{Freq1: f, Dur: time.Second, DBFS: -12}))
	}
	d.run(t, 25)
	for i, f := range prompts {
		out := d.caps[i].samples()
		if g := Goertzel(out, 16000, f); g < 0.9 {
			t.Errorf("port %d: own prompt %.0f Hz at %.4f, want >= 0.9", i, f, g)
		}
		for _, other := range []float64{500, 900, 1100, prompts[1-i]} {
			if g := Goertzel(out, 16000, other); g >= 0.01 {
				t.Errorf("port %d in an isolated mixer hears %.0f Hz: %.4f", i, other, g)
			}
		}
		if !d.ports[i].Playing() {
			t.Errorf("port %d: Playing() = false during its prompt", i)
		}
	}
	if rms := RMS(d.caps[2].samples()); rms != 0 {
		t.Errorf("port without a prompt hears RMS %.1f, want silence", rms)
	}
	// Prompts end: Playing turns false.
	d.run(t, 30)
	if d.ports[0].Playing() {
		t.Error("Playing() = true after the prompt ended")
	}
	d.ports[1].Play(nil)
	if d.ports[1].Playing() {
		t.Error("Playing() = true after Play(nil)")
	}
}

// fakeEndpoint is a participant's endpoint: it records what the mixer sends
// it and keeps the writer its received audio would be pushed into.
type fakeEndpoint struct {
	rates []int
	out   *pcmCapture
	mu    sync.Mutex
	sink  PCMWriter
	rate  int
}

func (e *fakeEndpoint) Rates() []int                  { return e.rates }
func (e *fakeEndpoint) Writer(int) (PCMWriter, error) { return e.out, nil }
func (e *fakeEndpoint) String() string                { return fmt.Sprintf("fake%v", e.rates) }
func (e *fakeEndpoint) received() (PCMWriter, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sink, e.rate
}
func (e *fakeEndpoint) SetSink(rate int, w PCMWriter) error {
	e.mu.Lock()
	e.sink, e.rate = w, rate
	e.mu.Unlock()
	return nil
}

// TestMixerNarrowbandParticipant bridges an 8 kHz phone and a wideband
// (Opus-like) participant to a 16 kHz mixer with Bridge.
func TestMixerNarrowbandParticipant(t *testing.T) {
	m, err := newMixer(MixerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	phone := &fakeEndpoint{rates: []int{8000}, out: &pcmCapture{}}
	web := &fakeEndpoint{rates: []int{48000, 24000, 16000, 12000, 8000}, out: &pcmCapture{}}
	pp, pw := NewMixPort("phone", 16000), NewMixPort("web", 16000)
	if r, err := Bridge(phone, pp); err != nil || r != 8000 {
		t.Fatalf("Bridge(phone) = %d, %v; want 8000", r, err)
	}
	if r, err := Bridge(web, pw); err != nil || r != 16000 {
		t.Fatalf("Bridge(web) = %d, %v; want 16000", r, err)
	}
	if s := pp.String(); s != "mixer/16000<-8000" {
		t.Errorf("String = %q", s)
	}
	if s := pw.String(); s != "mixer/16000" {
		t.Errorf("String = %q", s)
	}
	addNow(t, m, pp)
	addNow(t, m, pw)
	phoneIn, _ := phone.received()
	webIn, _ := web.received()
	gPhone, gWeb := NewToneGenerator(1000, 8000), NewToneGenerator(2500, 16000)
	pkt8 := make([]int16, 80) // 10 ms G.711 packets
	pkt16 := make([]int16, 320)
	for range 50 {
		for range 2 {
			gPhone.Fill(pkt8)
			_ = phoneIn.WritePCM(pkt8)
		}
		gWeb.Fill(pkt16)
		_ = webIn.WritePCM(pkt16)
		m.tick()
	}
	webHears := web.out.since(16000 / 5)
	if g := Goertzel(webHears, 16000, 1000); g < 0.95 {
		t.Errorf("web hears the phone's 1 kHz at %.4f, want >= 0.95", g)
	}
	phoneHears := phone.out.since(8000 / 5)
	if len(phoneHears) < 8000/2 {
		t.Fatalf("phone got %d samples, want 8 kHz output", len(phoneHears))
	}
	if g := Goertzel(phoneHears, 8000, 2500); g < 0.95 {
		t.Errorf("phone hears the web's 2.5 kHz at %.4f, want >= 0.95", g)
	}
	if g := Goertzel(phoneHears, 8000, 1000); g >= 0.01 {
		t.Errorf("phone hears itself: %.4f", g)
	}
	Unbridge(phone, pp)
	if pp.sink.Load() != nil {
		t.Error("Unbridge left the port's sink set")
	}
}

func TestMixerPlayAll(t *testing.T) {
	m, err := NewMixer(MixerConfig{Rate: 8000})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var caps []*pcmCapture
	for i := range 3 {
		p := NewMixPort(fmt.Sprintf("p%d", i), 8000)
		c := &pcmCapture{}
		caps = append(caps, c)
		if err := p.SetSink(8000, c); err != nil {
			t.Fatal(err)
		}
		if err := m.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	m.PlayAll(NewToneSource(8000,
		ToneSegment{Dur: 40 * time.Millisecond},
		ToneSegment{Freq1: 1000, Dur: 300 * time.Millisecond, DBFS: -12}))
	waitFor(t, "the tone to play out", func() bool { return len(caps[2].samples()) >= 8000*500/1000 })
	for i, c := range caps {
		out := sounding(c.samples())
		if len(out) < 8000*250/1000 {
			t.Fatalf("port %d: %d samples of tone, want 300 ms", i, len(out))
		}
		if g := Goertzel(out, 8000, 1000); g < 0.9 {
			t.Errorf("port %d: PlayAll tone at %.4f, want >= 0.9", i, g)
		}
		if rms := RMS(out); rms < 1000 {
			t.Errorf("port %d: PlayAll RMS %.0f, want the tone", i, rms)
		}
	}
}

func TestMixerSpeakers(t *testing.T) {
	d := newDriven(t, MixerConfig{},
		toneAt(800, 16000, -12), nil, toneAt(1200, 16000, -30))
	d.run(t, 10)
	got := d.m.Speakers(nil)
	if want := []string{"p0", "p2"}; !slices.Equal(got, want) {
		t.Errorf("Speakers = %v, want %v (loudest first, silent port absent)", got, want)
	}
	if d.ports[1].Speaking() || !d.ports[0].Speaking() {
		t.Errorf("Speaking: loud %v silent %v", d.ports[0].Speaking(), d.ports[1].Speaking())
	}
	if l0, l1 := d.ports[0].LevelDBFS(), d.ports[1].LevelDBFS(); l0 < -15 || l0 > -9 || l1 > -90 {
		t.Errorf("levels: loud %.1f dBFS (want about -12), silent %.1f", l0, l1)
	}
	// The loud speaker stops: the hangover keeps it speaking for a while.
	d.gens[0] = nil
	d.run(t, 5)
	if !d.ports[0].Speaking() {
		t.Error("Speaking dropped within 100 ms of silence (no hangover)")
	}
	d.run(t, 20)
	if d.ports[0].Speaking() {
		t.Error("still Speaking 500 ms after falling silent")
	}
	if got := d.m.Speakers(nil); !slices.Equal(got, []string{"p2"}) {
		t.Errorf("Speakers = %v, want [p2]", got)
	}
}

// TestMixerNormalisation: a quiet (-40 dBFS) and a loud (-10 dBFS) speaker
// come out much closer together; without normalisation the gap stays.
func TestMixerNormalisation(t *testing.T) {
	gap := func(target int) float64 {
		d := newDriven(t, MixerConfig{TargetDBFS: target},
			toneAt(600, 16000, -40), toneAt(1400, 16000, -10), nil)
		d.run(t, 100) // 2 s
		out := d.caps[2].since(16000 * 3 / 2)
		quiet, loud := toneDB(out, 16000, 600), toneDB(out, 16000, 1400)
		t.Logf("target %d: quiet %.1f dBFS, loud %.1f dBFS, gap %.1f dB", target, quiet, loud, loud-quiet)
		return loud - quiet
	}
	off, on := gap(1), gap(-20)
	if math.Abs(off-30) > 1 {
		t.Errorf("without normalisation the gap is %.1f dB, want 30", off)
	}
	if off-on < 10 {
		t.Errorf("normalisation shrank the gap by %.1f dB (%.1f -> %.1f), want >= 10", off-on, off, on)
	}
}

// TestMixerNoNoiseBoost: background noise below the voice threshold gets no
// gain.
func TestMixerNoNoiseBoost(t *testing.T) {
	d := newDriven(t, MixerConfig{}, toneAt(300, 16000, -65), nil)
	d.run(t, 100)
	if g := d.ports[0].mx.gainDB; g != 0 {
		t.Errorf("gain %.2f dB applied to a -65 dBFS input", g)
	}
}

func TestMixerOverrunUnderrun(t *testing.T) {
	d := newDriven(t, MixerConfig{}, nil)
	p, w := d.ports[0], d.ws[0]
	frame := make([]int16, 320)
	for range 10 { // a burst: the ring holds 8, the tick keeps 3 of them
		_ = w.WritePCM(frame)
	}
	d.m.tick()
	st := p.Stats()
	if st.FramesIn != mixRingFrames || st.Overruns != 10-mixMaxQueued {
		t.Errorf("after a burst of 10: %+v, want FramesIn %d Overruns %d", st, mixRingFrames, 10-mixMaxQueued)
	}
	for range 3 {
		d.m.tick()
	}
	if u := p.Stats().Underruns; u != 1 {
		t.Errorf("Underruns = %d after draining the queue and one more tick, want 1", u)
	}

	// A standing queue (two frames ahead for a second) is drained.
	_ = w.WritePCM(frame)
	_ = w.WritePCM(frame)
	before := p.Stats().Overruns
	for range 2 * mixDrainWindow { // at least one whole window
		_ = w.WritePCM(frame)
		d.m.tick()
	}
	if p.Stats().Overruns != before+1 {
		t.Errorf("standing queue: Overruns %d -> %d, want one frame dropped", before, p.Stats().Overruns)
	}
}

// TestMixerProducerRates runs a too fast and a too slow producer against a
// running mixer.
func TestMixerProducerRates(t *testing.T) {
	m, err := NewMixer(MixerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fast, slow := NewMixPort("fast", 16000), NewMixPort("slow", 16000)
	wf, _ := fast.Writer(16000)
	ws, _ := slow.Writer(16000)
	for _, p := range []*MixPort{fast, slow} {
		if err := m.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	frame := make([]int16, 320)
	tk := time.NewTicker(20 * time.Millisecond)
	defer tk.Stop()
	for i := range 25 { // 500 ms
		<-tk.C
		_ = wf.WritePCM(frame) // 40 ms of audio every 20 ms
		_ = wf.WritePCM(frame)
		if i%3 == 0 {
			_ = ws.WritePCM(frame) // 20 ms of audio every 60 ms
		}
	}
	if st := fast.Stats(); st.Overruns == 0 {
		t.Errorf("fast producer: %+v, want overruns", st)
	}
	if st := slow.Stats(); st.Underruns == 0 || st.Overruns != 0 {
		t.Errorf("slow producer: %+v, want underruns and no overruns", st)
	}
}

func TestMixerCloseAndErrors(t *testing.T) {
	for _, cfg := range []MixerConfig{{Rate: 44100}, {TargetDBFS: 5}, {TargetDBFS: -90}, {MaxSpeakers: -1}} {
		if _, err := NewMixer(cfg); err == nil {
			t.Errorf("NewMixer(%+v) succeeded", cfg)
		}
	}
	m, err := NewMixer(MixerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Rate() != 16000 {
		t.Errorf("default rate %d", m.Rate())
	}
	if err := m.Add(NewMixPort("narrow", 8000)); err == nil {
		t.Error("Add of an 8 kHz port to a 16 kHz mixer succeeded")
	}
	p := NewMixPort("p", 16000)
	c := &pcmCapture{}
	_ = p.SetSink(16000, c)
	if err := m.Add(p); err != nil {
		t.Fatal(err)
	}
	bad := NewMixPort("bad", 16000)
	_ = bad.SetSink(16000, errSink{})
	if err := m.Add(bad); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ticks", func() bool { return c.calls() >= 3 })
	m.Close()
	m.Close()
	n := c.calls()
	if err := m.Add(NewMixPort("late", 16000)); !errors.Is(err, ErrMixerClosed) {
		t.Errorf("Add after Close: %v, want ErrMixerClosed", err)
	}
	m.Remove(p)    // no effect, no hang
	m.PlayAll(nil) // no hang
	if bad.Stats().SinkErrors == 0 {
		t.Error("sink errors not counted")
	}
	time.Sleep(60 * time.Millisecond)
	if c.calls() != n {
		t.Error("a closed mixer still writes to a port's sink")
	}
	// Close released the port: it may join another mixer.
	m2, err := NewMixer(MixerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if err := m2.Add(p); err != nil {
		t.Errorf("Add to a new mixer after Close: %v", err)
	}
}

func TestMixPortEndpoint(t *testing.T) {
	p := NewMixPort("x", 16000)
	if r := p.Rates(); !slices.Equal(r, []int{16000, 8000}) {
		t.Errorf("Rates = %v", r)
	}
	if r := NewMixPort("y", 8000).Rates(); !slices.Equal(r, []int{8000}) {
		t.Errorf("8 kHz Rates = %v", r)
	}
	if _, err := p.Writer(48000); err == nil {
		t.Error("Writer(48000) succeeded")
	}
	if err := p.SetSink(12000, &nullSink{}); err == nil {
		t.Error("SetSink(12000) succeeded")
	}
	if err := NewMixPort("y", 8000).SetSink(16000, &nullSink{}); err == nil {
		t.Error("SetSink(16000) on an 8 kHz port succeeded")
	}
	if err := p.SetSink(0, nil); err != nil {
		t.Errorf("SetSink(0, nil): %v", err)
	}
}

// TestMixerNoAllocs checks that the input writers and a whole tick (four
// ports, one of them narrowband, a prompt and a PlayAll tone) allocate
// nothing.
func TestMixerNoAllocs(t *testing.T) {
	m, err := newMixer(MixerConfig{MaxSpeakers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var ws []PCMWriter
	var pkts [][]int16
	for i := range 4 {
		p := NewMixPort(fmt.Sprintf("p%d", i), 16000)
		rate := 16000
		if i == 3 {
			rate = 8000
		}
		w, _ := p.Writer(rate)
		_ = p.SetSink(rate, &nullSink{})
		addNow(t, m, p)
		ws = append(ws, w)
		pkts = append(pkts, Tone(300+200*float64(i), rate, 20, 6000))
	}
	m.ports[0].Play(NewToneSource(16000, ToneSegment{Freq1: 440, Dur: time.Hour, DBFS: -20}))
	m.all = NewToneSource(16000, ToneSegment{Freq1: 660, Freq2: 880, Dur: time.Hour, DBFS: -20})
	odd := Tone(700, 8000, 30, 6000)[:233]
	allocs := testing.AllocsPerRun(200, func() {
		_ = ws[3].WritePCM(odd[:77])
		_ = ws[3].WritePCM(odd[77:])
	})
	if allocs != 0 {
		t.Errorf("8 kHz writer allocates %.1f times per call", allocs)
	}
	allocs = testing.AllocsPerRun(200, func() {
		for i, w := range ws {
			_ = w.WritePCM(pkts[i])
		}
		m.tick()
	})
	if allocs != 0 {
		t.Errorf("a tick allocates %.1f times", allocs)
	}
}

func TestToneSource(t *testing.T) {
	segs := []ToneSegment{
		{Freq1: 1000, Dur: 100 * time.Millisecond, DBFS: -12},
		{Dur: 50 * time.Millisecond},
		{Freq1: 350, Freq2: 440, Dur: 200 * time.Millisecond, DBFS: -20},
	}
	whole := make([]int16, 16000)
	n := NewToneSource(16000, segs...).ReadPCM(whole)
	if n != 16000*350/1000 {
		t.Fatalf("ReadPCM wrote %d samples, want %d", n, 16000*350/1000)
	}
	tone := whole[:1600]
	if g := Goertzel(tone[100:1500], 16000, 1000); g < 0.99 {
		t.Errorf("1 kHz segment: %.4f", g)
	}
	peak := 0
	for _, v := range tone {
		peak = max(peak, int(math.Abs(float64(v))))
	}
	if want := amplitude(-12); math.Abs(float64(peak)-want) > want*0.02 {
		t.Errorf("peak %d, want %.0f (-12 dBFS)", peak, want)
	}
	if a, z := math.Abs(float64(tone[0])), math.Abs(float64(tone[1599])); a > 100 || z > 100 {
		t.Errorf("no fade: first %v last %v", a, z)
	}
	if rms := RMS(whole[1600:2400]); rms != 0 {
		t.Errorf("silence segment RMS %.1f", rms)
	}
	dual := whole[2400:n]
	if g1, g2 := Goertzel(dual, 16000, 350), Goertzel(dual, 16000, 440); g1 < 0.45 || g2 < 0.45 {
		t.Errorf("dual tone: 350 Hz %.3f, 440 Hz %.3f, want about 0.5 each", g1, g2)
	}
	// Reading in odd pieces gives the same samples (phase-continuous).
	src := NewToneSource(16000, segs...)
	var pieces []int16
	buf := make([]int16, 97)
	for range 100 {
		k := src.ReadPCM(buf)
		pieces = append(pieces, buf[:k]...)
		if k < len(buf) {
			break
		}
	}
	if !equalPCM(pieces, whole[:n]) {
		t.Error("piecewise reads differ from one read")
	}
	if k := src.ReadPCM(buf); k != 0 {
		t.Errorf("finished source read %d samples", k)
	}
	s := NewToneSource(16000, ToneSegment{Freq1: 440, Freq2: 480, Dur: time.Hour, DBFS: -12})
	if a := testing.AllocsPerRun(100, func() { s.ReadPCM(buf) }); a != 0 {
		t.Errorf("ReadPCM allocates %.1f times", a)
	}
	if b := NewPCMBufferSource([]int16{1, 2, 3}); b.ReadPCM(buf[:2]) != 2 || b.ReadPCM(buf[:2]) != 1 {
		t.Error("PCM buffer source reads wrong counts")
	}
}

// sleepySink stalls the mixer once, on its nth write.
type sleepySink struct {
	n, at int
	stall time.Duration
}

func (s *sleepySink) WritePCM([]int16) error {
	if s.n++; s.n == s.at {
		time.Sleep(s.stall)
	}
	return nil
}

// TestMixerClock checks the tick timeline on a fake clock: no drift, a
// short stall is caught up, a long one resynchronises instead of bursting,
// and Close ends the goroutine (synctest fails on a leaked goroutine).
func TestMixerClock(t *testing.T) {
	cases := []struct {
		name      string
		stall     time.Duration
		wantTicks uint64
		wantLate  uint64
	}{
		{"steady", 0, 50, 0},
		// 50 ms behind: the missed ticks run back to back, none is lost.
		{"short stall", 50 * time.Millisecond, 50, 1},
		// 130 ms behind (> 5 frames): resynchronised, the missed ones are skipped.
		{"long stall", 150 * time.Millisecond, 43, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m, err := NewMixer(MixerConfig{})
				if err != nil {
					t.Fatal(err)
				}
				p := NewMixPort("p", 16000)
				_ = p.SetSink(16000, &sleepySink{at: 5, stall: tc.stall})
				if err := m.Add(p); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Second + 5*time.Millisecond) // off the tick grid: no tie
				st := m.Stats()
				m.Close()
				if st.Ticks != tc.wantTicks || st.Late != tc.wantLate {
					t.Errorf("after 1.005 s: %d ticks, %d late; want %d and %d", st.Ticks, st.Late, tc.wantTicks, tc.wantLate)
				}
				if st.MaxTick < tc.stall {
					t.Errorf("MaxTick %v, want >= %v", st.MaxTick, tc.stall)
				}
			})
		})
	}
}

// TestMixerParallelOutput: a conference large enough for the output stage
// to run on several cores (with GOMAXPROCS > 1) still gives every port the
// mix of all others but itself, and the tick still allocates nothing.
func TestMixerParallelOutput(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs GOMAXPROCS >= 2 for the output workers")
	}
	const n = 24
	gens := make([]*ToneGenerator, n)
	for i := range gens {
		gens[i] = toneAt(300+float64(i)*110, 16000, -30)
	}
	d := newDriven(t, MixerConfig{TargetDBFS: 1}, gens...)
	d.run(t, 30)
	if len(d.m.workers) == 0 {
		t.Fatal("no output workers for a 24-port conference")
	}
	mark := d.mark()
	d.run(t, 25) // half a second
	for i, c := range d.caps {
		got := c.samples()[mark[i]:]
		if len(got) != 25*SamplesPerFrame(16000) {
			t.Fatalf("port %d got %d samples in 25 ticks", i, len(got))
		}
		if own := Goertzel(got, 16000, gens[i].Freq); own > 0.001 {
			t.Errorf("port %d hears itself: %.4f", i, own)
		}
		for _, j := range []int{(i + 1) % n, (i + n/2) % n} {
			if lvl := Goertzel(got, 16000, gens[j].Freq); lvl < 0.02 {
				t.Errorf("port %d hears port %d at only %.4f", i, j, lvl)
			}
		}
	}
	for _, p := range d.ports { // captures grow; measure the tick with sinks that keep nothing
		if err := p.SetSink(16000, dropPCM{}); err != nil {
			t.Fatal(err)
		}
	}
	frame := make([]int16, SamplesPerFrame(16000))
	allocs := testing.AllocsPerRun(20, func() {
		for i, g := range gens {
			g.Fill(frame)
			_ = d.ws[i].WritePCM(frame)
		}
		d.m.tick()
	})
	if allocs != 0 {
		t.Errorf("a parallel tick allocates %.1f times", allocs)
	}
}

type dropPCM struct{}

func (dropPCM) WritePCM([]int16) error { return nil }

// TestMixerIdleDoesNotTick: an empty mixer (an idle PIN lobby) sleeps
// instead of waking up 50 times a second; it ticks while a port is in it
// and stops again when the last one leaves.
func TestMixerIdleDoesNotTick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, err := NewMixer(MixerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		time.Sleep(time.Second)
		if n := m.Stats().Ticks; n != 0 {
			t.Fatalf("an empty mixer ticked %d times in a second", n)
		}
		p := NewMixPort("p", 16000)
		if err := m.Add(p); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second + 5*time.Millisecond)
		if n := m.Stats().Ticks; n != 50 {
			t.Fatalf("%d ticks in the second with a port, want 50", n)
		}
		m.Remove(p)
		before := m.Stats().Ticks
		time.Sleep(time.Second)
		if n := m.Stats().Ticks; n != before {
			t.Errorf("the mixer kept ticking after its last port left: %d -> %d", before, n)
		}
	})
}
