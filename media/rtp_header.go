package media

import "encoding/binary"

// rtpHeaderLen is the fixed RTP header length (RFC 3550 section 5.1).
const rtpHeaderLen = 12

// rtpHeader is the part of an RTP header the endpoint uses.
type rtpHeader struct {
	marker    bool
	pt        uint8
	seq       uint16
	ts        uint32
	ssrc      uint32
	payloadAt int // offset of the payload
	payloadTo int // end of the payload (padding removed)
}

// parseRTP parses the RTP header of pkt into h without allocating. It skips
// CSRCs and a header extension and strips padding. It reports false for
// anything that is not a well-formed RTP version 2 packet with a payload.
func parseRTP(pkt []byte, h *rtpHeader) bool {
	if len(pkt) < rtpHeaderLen || pkt[0]>>6 != 2 {
		return false
	}
	cc := int(pkt[0] & 0x0F)
	off := rtpHeaderLen + 4*cc
	if len(pkt) < off {
		return false
	}
	if pkt[0]&0x10 != 0 { // extension
		if len(pkt) < off+4 {
			return false
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(pkt[off+2:]))
		if len(pkt) < off {
			return false
		}
	}
	end := len(pkt)
	if pkt[0]&0x20 != 0 { // padding: last byte counts padding bytes
		p := int(pkt[end-1])
		if p == 0 || end-p < off {
			return false
		}
		end -= p
	}
	if end <= off {
		return false
	}
	h.marker = pkt[1]&0x80 != 0
	h.pt = pkt[1] & 0x7F
	h.seq = binary.BigEndian.Uint16(pkt[2:])
	h.ts = binary.BigEndian.Uint32(pkt[4:])
	h.ssrc = binary.BigEndian.Uint32(pkt[8:])
	h.payloadAt, h.payloadTo = off, end
	return true
}

// putRTPHeader writes a 12-byte RTP header without CSRCs or extension.
func putRTPHeader(b []byte, marker bool, pt uint8, seq uint16, ts, ssrc uint32) {
	_ = b[11]
	b[0] = 2 << 6
	b[1] = pt & 0x7F
	if marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
}
