package load

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/matrix-gateway/gateway/codecs/g711"
	"github.com/matrix-gateway/gateway/codecs/opus"
	"github.com/matrix-gateway/gateway/media"
)

const (
	kindPhone = iota // sends PCMU at 8 kHz, receives PCMU
	kindWeb          // sends Opus encoded at 48 kHz, receives Opus

	clickHz     = 1000
	clickMillis = 4
	clickAmp    = 20000
	// Click detection on the decoded 8 kHz stream: an onset is a sample at
	// or above onsetLevel after quietSamples without one (codec noise in
	// the silence stays below 500).
	onsetLevel   = 4000
	quietSamples = 8000 * 150 / 1000
)

// base anchors the generator's monotonic clock.
var base = time.Now()

func now() int64 { return int64(time.Since(base)) }

// trains are the precomputed payloads of one click-train cycle: a click at
// the start of frame 0, then silence.
type trains struct {
	frames   int
	pcmu     [][]byte
	opus     [][]byte
	webShift time.Duration // where the click lands after the Opus peer's own encode/decode
}

func newTrains(every time.Duration) (*trains, error) {
	t := &trains{frames: int(every / (media.FrameMillis * time.Millisecond))}
	click := func(rate int) []int16 {
		pcm := make([]int16, t.frames*media.SamplesPerFrame(rate))
		copy(pcm, media.Tone(clickHz, rate, clickMillis, clickAmp))
		return pcm
	}
	nb := click(8000)
	for f := range t.frames {
		p := make([]byte, 160)
		g711.EncodeULaw(p, nb[f*160:(f+1)*160])
		t.pcmu = append(t.pcmu, p)
	}
	enc, err := opus.NewEncoder(48000, opus.Options{Complexity: 10, Bitrate: 32000})
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	fb := click(48000)
	for f := range t.frames {
		p := make([]byte, opus.MaxPacket)
		n, err := enc.Encode(fb[f*960:(f+1)*960], p)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		t.opus = append(t.opus, p[:n])
	}
	// Calibrate: decode two cycles to 8 kHz as the gateway does and find
	// the click in the second; its offset is the peer's codec delay, not
	// the gateway's.
	dec, err := opus.NewDecoder(8000)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var det detector
	pcm := make([]int16, 960)
	for i := range 2 * t.frames {
		n, err := dec.Decode(t.opus[i%t.frames], pcm)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		if at, ok := det.feed(pcm[:n]); ok && i >= t.frames {
			t.webShift = time.Duration(i-t.frames)*media.FrameMillis*time.Millisecond + time.Duration(at)*time.Second/8000
		}
	}
	return t, nil
}

// detector finds click onsets in 8 kHz PCM.
type detector struct{ quiet int }

// feed returns the index of the first onset in pcm, if any.
func (d *detector) feed(pcm []int16) (int, bool) {
	at, found := 0, false
	for i, s := range pcm {
		a := int(s)
		if a < 0 {
			a = -a
		}
		if a >= onsetLevel && d.quiet >= quietSamples && !found {
			at, found = i, true
		}
		if a >= onsetLevel {
			d.quiet = 0
		} else {
			d.quiet++
		}
	}
	return at, found
}

// peer is one end of a call outside the gateway: it sends its click train
// from the pacer goroutine and receives on its own goroutine.
type peer struct {
	kind   int
	conn   *net.UDPConn // nil for a WebRTC peer
	rtc    *rtcConn     // the WebRTC transport of a Matrix peer in webrtc mode
	dst    netip.AddrPort
	far    *peer // the peer whose clicks arrive here
	trains *trains
	ssrc   uint32
	seq    uint16
	ts     uint32
	frame  int
	out    [media.MaxPacketSize]byte

	sent, received atomic.Uint64
	lastClick      atomic.Int64 // when frame 0 of the current cycle was sent
	rx             media.ReceptionStats

	probe bool
	opus  *opus.Decoder
	pcm   [960]int16
	det   detector
	mu    sync.Mutex
	delay []time.Duration

	started bool
	done    chan struct{}
}

func newPeer(kind int, t *trains, probe bool) (*peer, error) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		return nil, fmt.Errorf("load: peer socket: %w", err)
	}
	_ = conn.SetReadBuffer(256 << 10)
	var b [4]byte
	_, _ = rand.Read(b[:])
	p := &peer{kind: kind, conn: conn, trains: t, ssrc: binary.BigEndian.Uint32(b[:]) | 1, probe: probe, done: make(chan struct{})}
	p.seq = uint16(p.ssrc >> 3)
	clock := 8000
	if kind == kindWeb {
		clock = 48000
		if probe {
			if p.opus, err = opus.NewDecoder(8000); err != nil {
				conn.Close()
				return nil, fmt.Errorf("load: %w", err)
			}
		}
	}
	p.rx.Init(clock)
	return p, nil
}

func (p *peer) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (p *peer) start() {
	p.started = true
	go p.receive()
}

func (p *peer) close() {
	if p.rtc != nil {
		p.rtc.close()
	} else {
		_ = p.conn.Close()
	}
	if !p.started {
		return
	}
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
	}
}

// send writes the next frame of the train; only the pacer calls it.
func (p *peer) send() {
	var payload []byte
	var pt uint8
	var step uint32
	if p.kind == kindPhone {
		payload, pt, step = p.trains.pcmu[p.frame], 0, 160
	} else {
		payload, pt, step = p.trains.opus[p.frame], media.OpusPayloadType, 960
	}
	b := p.out[:]
	b[0], b[1] = 0x80, pt
	binary.BigEndian.PutUint16(b[2:], p.seq)
	binary.BigEndian.PutUint32(b[4:], p.ts)
	binary.BigEndian.PutUint32(b[8:], p.ssrc)
	n := 12 + copy(b[12:], payload)
	if p.frame == 0 {
		p.lastClick.Store(now())
	}
	var err error
	if p.rtc != nil {
		_, err = p.rtc.track.Write(b[:n])
	} else {
		_, err = p.conn.WriteToUDPAddrPort(b[:n], p.dst)
	}
	if err == nil {
		p.sent.Add(1)
	}
	p.seq++
	p.ts += step
	p.frame = (p.frame + 1) % p.trains.frames
}

// receive counts, follows and (for probes) decodes what arrives.
func (p *peer) receive() {
	defer close(p.done)
	var buf [media.MaxPacketSize]byte
	var read func([]byte) (int, error)
	if p.rtc == nil {
		read = p.conn.Read
	} else {
		t, ok := p.rtc.remoteTrack()
		if !ok {
			return
		}
		read = func(b []byte) (int, error) {
			n, _, err := t.Read(b)
			return n, err
		}
	}
	for {
		n, err := read(buf[:])
		if err != nil {
			return
		}
		at := now()
		if n < 12 || buf[0]>>6 != 2 || buf[1]&0x7F >= 72 && buf[1]&0x7F <= 79 {
			continue // not RTP (the gateway's RTCP goes to the port above)
		}
		off := 12 + 4*int(buf[0]&0x0F)
		if buf[0]&0x10 != 0 && n >= off+4 {
			off += 4 + 4*int(binary.BigEndian.Uint16(buf[off+2:]))
		}
		if off > n {
			continue
		}
		seq := binary.BigEndian.Uint16(buf[2:])
		ts := binary.BigEndian.Uint32(buf[4:])
		ssrc := binary.BigEndian.Uint32(buf[8:])
		p.rx.Update(ssrc, seq, ts, at)
		p.received.Add(1)
		if p.probe {
			p.findClick(buf[off:n], at)
		}
	}
}

// findClick decodes a payload to 8 kHz and records the added delay of a
// click found in it: arrival + offset - the far peer's send time - the
// far peer's own codec delay.
func (p *peer) findClick(payload []byte, at int64) {
	var n int
	if p.opus != nil {
		var err error
		if n, err = p.opus.Decode(payload, p.pcm[:]); err != nil {
			return
		}
	} else {
		n = g711.DecodeULaw(p.pcm[:], payload)
	}
	i, ok := p.det.feed(p.pcm[:n])
	if !ok {
		return
	}
	sent := p.far.lastClick.Load()
	if sent == 0 {
		return
	}
	d := time.Duration(at-sent) + time.Duration(i)*time.Second/8000
	if p.far.kind == kindWeb {
		d -= p.trains.webShift
	}
	p.mu.Lock()
	p.delay = append(p.delay, d)
	p.mu.Unlock()
}

func (p *peer) delays() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Duration(nil), p.delay...)
}

// pacer sends every call's frames each 20 ms from one goroutine, spreading
// the calls over the 20 one-millisecond slots of a frame.
type pacer struct {
	slots [media.FrameMillis][]*call
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newPacer(calls []*call) *pacer {
	p := &pacer{quit: make(chan struct{}), done: make(chan struct{})}
	for i, c := range calls {
		p.slots[i%media.FrameMillis] = append(p.slots[i%media.FrameMillis], c)
	}
	return p
}

func (p *pacer) run() {
	defer close(p.done)
	start := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for tick := 0; ; tick++ {
		if d := time.Until(start.Add(time.Duration(tick) * time.Millisecond)); d > 0 {
			timer.Reset(d)
			select {
			case <-p.quit:
				return
			case <-timer.C:
			}
		} else {
			select {
			case <-p.quit:
				return
			default:
			}
		}
		for _, c := range p.slots[tick%media.FrameMillis] {
			c.phone.send()
			c.web.send()
			if c.phoneTwin != nil {
				c.phoneTwin.send()
				c.webTwin.send()
			}
		}
	}
}

func (p *pacer) stop() {
	p.once.Do(func() { close(p.quit) })
	<-p.done
}
