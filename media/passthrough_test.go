package media

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/codecs"
)

// Two Opus endpoints bridged exchange frames untouched: same payload bytes,
// the far stream keeps the near stream's timestamp advance and its losses.
func TestOpusPassthrough(t *testing.T) {
	inA := newChanTransport()
	outB := &packetLog{}
	a, err := NewRTPEndpoint(RTPConfig{Codec: codecs.Opus, PayloadType: 111, Reader: inA, Writer: &discardWriter{}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := NewRTPEndpoint(RTPConfig{Codec: codecs.Opus, PayloadType: 96, Writer: outB})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if rate, err := Bridge(a, b); err != nil || rate != 48000 {
		t.Fatalf("Bridge = %d, %v", rate, err)
	}
	// seq 10, 11, then 13 (12 lost: 14 releases 13 from the reorder window).
	for _, seq := range []uint16{10, 11, 13, 14} {
		payload := []byte{0xde, 0xad, byte(seq)}
		inA.ch <- rtpPacket(111, seq, uint32(seq)*960, 0x1234, payload)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		outB.mu.Lock()
		n := len(outB.pkts)
		outB.mu.Unlock()
		if n == 4 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	outB.mu.Lock()
	defer outB.mu.Unlock()
	if len(outB.pkts) != 4 {
		t.Fatalf("%d packets out, want 4", len(outB.pkts))
	}
	seqOf := func(p []byte) uint16 { return binary.BigEndian.Uint16(p[2:4]) }
	tsOf := func(p []byte) uint32 { return binary.BigEndian.Uint32(p[4:8]) }
	for i, want := range []byte{10, 11, 13, 14} {
		p := outB.pkts[i]
		if p[1]&0x7f != 96 || !bytes.Equal(p[rtpHeaderLen:], []byte{0xde, 0xad, want}) {
			t.Errorf("packet %d: PT %d payload %x", i, p[1]&0x7f, p[rtpHeaderLen:])
		}
	}
	if d := seqOf(outB.pkts[1]) - seqOf(outB.pkts[0]); d != 1 {
		t.Errorf("sequence advance %d, want 1", d)
	}
	if d := seqOf(outB.pkts[2]) - seqOf(outB.pkts[1]); d != 2 {
		t.Errorf("sequence advance over the loss %d, want 2", d)
	}
	if d := tsOf(outB.pkts[2]) - tsOf(outB.pkts[1]); d != 1920 {
		t.Errorf("timestamp advance over the loss %d, want 1920", d)
	}
	if st := b.Stats(); st.PassedThrough != 4 {
		t.Errorf("PassedThrough = %d", st.PassedThrough)
	}
	// Opus and PCMU are bridged through PCM, never passed through.
	c, _ := NewRTPEndpoint(RTPConfig{Codec: codecs.PCMU, Writer: &discardWriter{}})
	defer c.Close()
	if bridgePayloads(a, c) {
		t.Error("Opus and PCMU bridged frame to frame")
	}
}
