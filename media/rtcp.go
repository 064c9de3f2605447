package media

import (
	"encoding/binary"
	"time"
)

// RTCP packet types (RFC 3550 section 12.1).
const (
	rtcpSR   = 200
	rtcpRR   = 201
	rtcpSDES = 202
	rtcpBYE  = 203
)

// rtcpBlock is one reception report block (RFC 3550 section 6.4.1).
type rtcpBlock struct {
	ssrc     uint32 // the source this block is about
	fraction uint8  // fraction lost since the previous report, /256
	lost     int32  // cumulative packets lost (24-bit signed)
	extMax   uint32 // extended highest sequence number received
	jitter   uint32 // interarrival jitter, clock units
	lsr      uint32 // middle 32 bits of the NTP time of the last SR received
	dlsr     uint32 // delay since that SR, 1/65536 s
}

// rtcpInfo is what the gateway uses of a received compound RTCP packet.
type rtcpInfo struct {
	sender   uint32 // SSRC of the first SR/RR's sender
	hasSR    bool
	ntp      uint64 // SR NTP timestamp
	rtpTS    uint32 // SR RTP timestamp
	packets  uint32 // SR sender's packet count
	octets   uint32 // SR sender's octet count
	hasBlock bool   // block is about our SSRC
	block    rtcpBlock
	bye      bool
}

// parseRTCP parses a compound RTCP packet into out without allocating,
// keeping the sender info of an SR and the report block about our SSRC
// ours. It reports false for anything that is not a well-formed compound
// packet: every packet version 2, lengths that add up exactly, and the
// first packet an SR or RR (RFC 3550 appendix A.2).
func parseRTCP(pkt []byte, ours uint32, out *rtcpInfo) bool {
	*out = rtcpInfo{}
	first := true
	for len(pkt) > 0 {
		if len(pkt) < 4 || pkt[0]>>6 != 2 {
			return false
		}
		count := int(pkt[0] & 0x1F)
		pt := pkt[1]
		size := 4 * (int(binary.BigEndian.Uint16(pkt[2:])) + 1)
		if size > len(pkt) {
			return false
		}
		body := pkt[4:size]
		if pkt[0]&0x20 != 0 { // padding, only allowed on the last packet
			if size != len(pkt) || len(body) == 0 {
				return false
			}
			p := int(body[len(body)-1])
			if p == 0 || p > len(body) {
				return false
			}
			body = body[:len(body)-p]
		}
		if first {
			if pt != rtcpSR && pt != rtcpRR {
				return false
			}
			first = false
		}
		switch pt {
		case rtcpSR:
			if len(body) < 24 {
				return false
			}
			if out.sender == 0 {
				out.sender = binary.BigEndian.Uint32(body)
			}
			out.hasSR = true
			out.ntp = binary.BigEndian.Uint64(body[4:])
			out.rtpTS = binary.BigEndian.Uint32(body[12:])
			out.packets = binary.BigEndian.Uint32(body[16:])
			out.octets = binary.BigEndian.Uint32(body[20:])
			if !parseBlocks(body[24:], count, ours, out) {
				return false
			}
		case rtcpRR:
			if len(body) < 4 {
				return false
			}
			if out.sender == 0 {
				out.sender = binary.BigEndian.Uint32(body)
			}
			if !parseBlocks(body[4:], count, ours, out) {
				return false
			}
		case rtcpBYE:
			out.bye = true
		}
		pkt = pkt[size:]
	}
	return !first
}

// parseBlocks reads count report blocks from b, keeping the one about ours.
func parseBlocks(b []byte, count int, ours uint32, out *rtcpInfo) bool {
	if len(b) < 24*count {
		return false
	}
	for i := range count {
		rb := b[24*i:]
		if binary.BigEndian.Uint32(rb) != ours {
			continue
		}
		lost := int32(binary.BigEndian.Uint32(rb[4:])<<8) >> 8 // sign-extend 24 bits
		out.hasBlock = true
		out.block = rtcpBlock{
			ssrc:     ours,
			fraction: rb[4],
			lost:     lost,
			extMax:   binary.BigEndian.Uint32(rb[8:]),
			jitter:   binary.BigEndian.Uint32(rb[12:]),
			lsr:      binary.BigEndian.Uint32(rb[16:]),
			dlsr:     binary.BigEndian.Uint32(rb[20:]),
		}
	}
	return true
}

// rtcpReport is what buildRTCP writes.
type rtcpReport struct {
	ssrc     uint32 // our SSRC
	sr       bool   // we sent media since the last report: write an SR
	ntp      uint64 // SR: NTP time of the report
	rtpTS    uint32 // SR: the RTP timestamp matching ntp
	packets  uint32 // SR: packets sent
	octets   uint32 // SR: payload octets sent
	hasBlock bool   // we receive a source: add its report block
	block    rtcpBlock
	cname    string
}

// buildRTCP writes a compound SR or RR with at most one report block and an
// SDES CNAME (RFC 3550 section 6.1) into buf and returns its length, or 0
// if buf is too small. It does not allocate.
func buildRTCP(buf []byte, r *rtcpReport) int {
	blocks := 0
	if r.hasBlock {
		blocks = 1
	}
	head := 8 // header + sender SSRC
	if r.sr {
		head += 20
	}
	first := head + 24*blocks
	cname := min(len(r.cname), 255)
	sdesLen := (8 + 2 + cname + 1 + 3) &^ 3 // header, SSRC, item, end marker, padded to 32 bits
	if len(buf) < first+sdesLen {
		return 0
	}
	pt := byte(rtcpRR)
	if r.sr {
		pt = rtcpSR
	}
	buf[0] = 2<<6 | byte(blocks)
	buf[1] = pt
	binary.BigEndian.PutUint16(buf[2:], uint16(first/4-1))
	binary.BigEndian.PutUint32(buf[4:], r.ssrc)
	off := 8
	if r.sr {
		binary.BigEndian.PutUint64(buf[8:], r.ntp)
		binary.BigEndian.PutUint32(buf[16:], r.rtpTS)
		binary.BigEndian.PutUint32(buf[20:], r.packets)
		binary.BigEndian.PutUint32(buf[24:], r.octets)
		off = 28
	}
	if r.hasBlock {
		b := &r.block
		binary.BigEndian.PutUint32(buf[off:], b.ssrc)
		lost := min(max(b.lost, -1<<23), 1<<23-1)
		binary.BigEndian.PutUint32(buf[off+4:], uint32(b.fraction)<<24|uint32(lost)&0xFFFFFF)
		binary.BigEndian.PutUint32(buf[off+8:], b.extMax)
		binary.BigEndian.PutUint32(buf[off+12:], b.jitter)
		binary.BigEndian.PutUint32(buf[off+16:], b.lsr)
		binary.BigEndian.PutUint32(buf[off+20:], b.dlsr)
	}
	s := buf[first : first+sdesLen]
	s[0] = 2<<6 | 1
	s[1] = rtcpSDES
	binary.BigEndian.PutUint16(s[2:], uint16(sdesLen/4-1))
	binary.BigEndian.PutUint32(s[4:], r.ssrc)
	s[8] = 1 // CNAME
	s[9] = byte(cname)
	copy(s[10:], r.cname[:cname])
	clear(s[10+cname:])
	return first + sdesLen
}

// ntpEpochOffset is the number of seconds from 1900 (NTP) to 1970 (Unix).
const ntpEpochOffset = 2208988800

// ntpTime converts t to a 64-bit NTP timestamp (RFC 3550 section 4).
func ntpTime(t time.Time) uint64 {
	ns := t.UnixNano()
	sec := uint64(ns/1e9) + ntpEpochOffset
	frac := (uint64(ns%1e9) << 32) / 1e9
	return sec<<32 | frac
}

// ntpMiddle returns the middle 32 bits of an NTP timestamp, the unit of
// LSR and of the round-trip computation (1/65536 s).
func ntpMiddle(ntp uint64) uint32 { return uint32(ntp >> 16) }

// dlsrSlack is how far below zero (in 1/65536 s) a computed round trip may
// fall and still count as "shorter than we can measure": 2 ms.
const dlsrSlack = 2 << 16 / 1000

// rttFromReport computes the round trip from a report block received at
// arrival (middle NTP bits): arrival - LSR - DLSR (RFC 3550 section 6.4.1).
// ok is false when the block carries no LSR or the result is implausible.
func rttFromReport(arrival uint32, b *rtcpBlock) (time.Duration, bool) {
	if b.lsr == 0 {
		return 0, false
	}
	units := arrival - b.lsr - b.dlsr
	switch d := int32(units); {
	case d < -dlsrSlack:
		return 0, false
	case d <= 0:
		// A round trip shorter than the peer's DLSR resolution: many stacks
		// (libre/baresip) count DLSR in whole milliseconds, so on a LAN or
		// loopback the difference comes out zero or slightly negative. The
		// report is valid; the round trip is at the floor of what we can tell.
		units = 1
	case units > 60<<16:
		return 0, false
	}
	return time.Duration(uint64(units) * uint64(time.Second) >> 16), true
}
