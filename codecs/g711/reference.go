package g711

// The reference G.711 algorithms (ITU-T G.191 software tools for u-law,
// Sun g711.c for A-law and decoding, which G.191 agrees with),
// used only to fill the lookup tables at init.

var segAEnd = [8]int32{0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF}

func segment(v int32, ends *[8]int32) int32 {
	for i, e := range ends {
		if v <= e {
			return int32(i)
		}
	}
	return 8
}

const ulawBias = 0x84

// linearToULaw follows ITU-T G.191 ulaw_compress: negative samples are
// taken in one's complement, the magnitude is biased by 33 and clipped.
func linearToULaw(s int16) byte {
	v := int32(s)
	if v < 0 {
		v = ^v
	}
	abs := v>>2 + 33
	if abs > 0x1FFF {
		abs = 0x1FFF
	}
	seg := int32(1)
	for i := abs >> 6; i != 0; i >>= 1 {
		seg++
	}
	out := (8-seg)<<4 | (0xF - (abs>>seg)&0xF)
	if s >= 0 {
		out |= 0x80
	}
	return byte(out)
}

func linearToALaw(s int16) byte {
	v := int32(s) >> 3
	var mask int32
	if v >= 0 {
		mask = 0xD5
	} else {
		mask = 0x55
		v = -v - 1
	}
	seg := segment(v, &segAEnd)
	if seg >= 8 {
		return byte(0x7F ^ mask)
	}
	a := seg << 4
	if seg < 2 {
		a |= (v >> 1) & 0xF
	} else {
		a |= (v >> seg) & 0xF
	}
	return byte(a ^ mask)
}

func uLawToLinear(u byte) int16 {
	u = ^u
	t := (int32(u&0xF) << 3) + ulawBias
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(ulawBias - t)
	}
	return int16(t - ulawBias)
}

func aLawToLinear(a byte) int16 {
	a ^= 0x55
	t := int32(a&0xF) << 4
	seg := (a & 0x70) >> 4
	switch seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}
