package media

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"

	"github.com/matrix-gateway/gateway/codecs"
)

// fakeCodec is an 8 kHz codec whose 2-byte payload is a frame ID. Decode
// writes 160 samples: [ID, kindDecoded, ...]; Conceal writes [-, kindConcealed];
// DecodeFEC (when fec is set) writes [ID of the next packet, kindFEC].
func fakeCodec(fec bool) codecs.Codec {
	return codecs.Codec{
		Name: "FAKE", ClockRate: 8000, PayloadType: 96, Channels: 1, Rates: []int{8000}, MaxPayload: 2,
		NewEncoder: func(rate int) (codecs.Encoder, error) { return fakeEnc{}, nil },
		NewDecoder: func(rate int) (codecs.Decoder, error) {
			if fec {
				return &fakeFECDec{}, nil
			}
			return &fakeDec{}, nil
		},
	}
}

const (
	kindDecoded   = 1
	kindConcealed = 2
	kindFEC       = 3
)

type fakeEnc struct{}

func (fakeEnc) Encode(pcm []int16, dst []byte) (int, error) {
	binary.BigEndian.PutUint16(dst, uint16(pcm[0]))
	return 2, nil
}
func (fakeEnc) String() string { return "FAKE(encode)" }

type fakeDec struct{}

func (*fakeDec) Decode(p []byte, pcm []int16) (int, error) {
	if len(p) < 2 {
		return 0, errors.New("fake: short payload")
	}
	pcm[0], pcm[1] = int16(binary.BigEndian.Uint16(p)), kindDecoded
	return 160, nil
}
func (*fakeDec) Conceal(pcm []int16) (int, error) {
	pcm[0], pcm[1] = -1, kindConcealed
	return len(pcm), nil
}
func (*fakeDec) String() string { return "FAKE(decode)" }

type fakeFECDec struct{ fakeDec }

func (*fakeFECDec) DecodeFEC(next []byte, pcm []int16) (int, error) {
	pcm[0], pcm[1] = int16(binary.BigEndian.Uint16(next)), kindFEC
	return len(pcm), nil
}

// frameRec is one WritePCM call seen by a recordingSink.
type frameRec struct {
	id   int16
	kind int16
	n    int
}

// recordingSink records the first two samples of every write.
type recordingSink struct {
	mu     sync.Mutex
	frames []frameRec
}

func (s *recordingSink) WritePCM(pcm []int16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(s.frames, frameRec{pcm[0], pcm[1], len(pcm)})
	return nil
}

// pcmCollector keeps everything written to it.
type pcmCollector struct {
	mu  sync.Mutex
	pcm []int16
}

func (c *pcmCollector) WritePCM(pcm []int16) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pcm = append(c.pcm, pcm...)
	return nil
}

func (c *pcmCollector) samples() []int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int16(nil), c.pcm...)
}

type nopSink struct{}

func (nopSink) WritePCM([]int16) error { return nil }

// packetLog is a PacketWriter that keeps copies of the packets.
type packetLog struct {
	mu   sync.Mutex
	pkts [][]byte
}

func (l *packetLog) WritePacket(p []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pkts = append(l.pkts, append([]byte(nil), p...))
	return nil
}

// discardWriter is a PacketWriter that counts and forgets.
type discardWriter struct{ n, bytes int }

func (d *discardWriter) WritePacket(p []byte) error {
	d.n++
	d.bytes += len(p)
	return nil
}

// chanTransport is a PacketReader fed from a channel; Close ends it.
type chanTransport struct {
	ch   chan []byte
	done chan struct{}
	once sync.Once
}

func newChanTransport() *chanTransport {
	return &chanTransport{ch: make(chan []byte, 64), done: make(chan struct{})}
}

func (c *chanTransport) ReadPacket(buf []byte) (int, error) {
	select {
	case p, ok := <-c.ch:
		if !ok {
			return 0, io.EOF
		}
		return copy(buf, p), nil
	case <-c.done:
		return 0, io.ErrClosedPipe
	}
}

func (c *chanTransport) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

// rtpPacket builds an RTP packet.
func rtpPacket(pt uint8, seq uint16, ts, ssrc uint32, payload []byte) []byte {
	p := make([]byte, rtpHeaderLen+len(payload))
	putRTPHeader(p, false, pt, seq, ts, ssrc)
	copy(p[rtpHeaderLen:], payload)
	return p
}

// fakePacket is a fakeCodec packet for seq with ts = seq*160.
func fakePacket(seq uint16, ssrc uint32) []byte {
	var id [2]byte
	binary.BigEndian.PutUint16(id[:], seq)
	return rtpPacket(96, seq, uint32(seq)*160, ssrc, id[:])
}
