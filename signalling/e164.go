package signalling

import (
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Phone numbers travel through the gateway in E.164 form, "+" followed by the
// country code and the national number, at most 15 digits in all (ITU-T
// E.164 section 6). Normalize turns what a user types into that form.

// Bounds on normalised numbers.
const (
	// MaxE164Digits is the E.164 maximum: country code plus national number.
	MaxE164Digits = 15
	// MinE164Digits is the shortest number the gateway accepts. The shortest
	// assigned international numbers (e.g. Niue, +683 plus 4 digits) have 7
	// digits; short codes and emergency numbers (112, 911, 116117) are not
	// E.164 numbers and are refused on purpose: routing them is a regulatory
	// matter for a dedicated route, not for a generic dial-out gateway.
	MinE164Digits = 7
	// maxNumberInput bounds the raw input so junk cannot cost much.
	maxNumberInput = 128
)

// ErrInvalidNumber marks a phone number Normalize cannot turn into E.164.
var ErrInvalidNumber = errors.New("signalling: invalid phone number")

// NumberError says why a number was refused. It matches ErrInvalidNumber
// and maps to CauseInvalidNumber.
type NumberError struct {
	Input  string // the input as given (truncated to 64 bytes)
	Reason string
}

// Error formats the error as `signalling: invalid phone number "abc": contains letters`.
func (e *NumberError) Error() string {
	return ErrInvalidNumber.Error() + " " + quote(e.Input) + ": " + e.Reason
}

// Is makes errors.Is(err, ErrInvalidNumber) true.
func (e *NumberError) Is(target error) bool { return target == ErrInvalidNumber }

// HangupCause implements the interface CauseOf looks for.
func (e *NumberError) HangupCause() Cause { return CauseInvalidNumber }

func numberErr(input, reason string) error {
	if len(input) > 64 {
		input = input[:64]
	}
	return &NumberError{Input: input, Reason: reason}
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '"' || r == utf8.RuneError {
			b.WriteByte('?')
			continue
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// Normalize turns a phone number as a user or a client typed it into E.164
// ("+" and 7 to 15 digits). defaultCC is the country code ("44", "+44" or
// "" for none) used for numbers written in national form. Rules, in order:
//
//   - Surrounding space is trimmed; percent-encoding is decoded once (Dendrite
//     forwards "%2B44..." from a third-party lookup); a "tel:" prefix
//     (RFC 3966) is dropped. Parameters (";ext=", ";phone-context=") are
//     refused rather than silently dropped.
//   - Visual separators are removed: space, "-", ".", "(", ")", "/", and the
//     Unicode no-break/thin spaces and hyphens/dashes. A full-width "＋" counts
//     as "+".
//   - "+" may only come first. Letters, "*", "#" and anything else are refused.
//   - "+<digits>": international, taken as is.
//   - "00<digits>": international prefix (ITU-T E.164 Annex), becomes "+".
//     With defaultCC "1" the NANP prefix "011" is accepted as well.
//   - "0<digits>": national form with trunk prefix 0: the 0 is dropped and
//     defaultCC prepended ("020 7946 0000", "44" -> "+442079460000"). Italy,
//     San Marino and Vatican City (39, 378, 379) keep the 0, which is part
//     of their numbers.
//   - With defaultCC "1", 11 digits starting with the NANP trunk prefix 1
//     become "+1" plus the last 10 digits.
//   - Any other plain digits are a national number without trunk prefix:
//     defaultCC is prepended ("5550100100", "1" -> "+15550100100").
//
// Without a defaultCC only the international forms are accepted. The country
// code must not start with 0, and the result must have 7 to 15 digits.
// Errors are *NumberError (errors.Is ErrInvalidNumber).
func Normalize(input, defaultCC string) (string, error) {
	cc, ok := normalizeCC(defaultCC)
	if !ok {
		return "", numberErr(defaultCC, "default country code must be 1 to 3 digits not starting with 0")
	}
	if len(input) > maxNumberInput {
		return "", numberErr(input, "too long")
	}
	s := strings.TrimSpace(input)
	if strings.IndexByte(s, '%') >= 0 {
		dec, err := url.PathUnescape(s)
		if err != nil {
			return "", numberErr(input, "bad percent-encoding")
		}
		s = strings.TrimSpace(dec)
	}
	if len(s) >= 4 && strings.EqualFold(s[:4], "tel:") {
		s = s[4:]
	}
	if s == "" {
		return "", numberErr(input, "empty")
	}

	// Collect the digits into a fixed buffer; one extra byte detects overflow.
	var digits [MaxE164Digits + 4]byte
	n := 0
	plus := false
	sawDigit := false
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			if n == len(digits) {
				return "", numberErr(input, "too many digits")
			}
			digits[n] = byte(r)
			n++
			sawDigit = true
		case r == '+' || r == '\uff0b':
			if plus || sawDigit {
				return "", numberErr(input, `"+" not at the start`)
			}
			plus = true
		case isSeparator(r):
		case r == ';':
			return "", numberErr(input, "URI parameters are not supported")
		case r == '*' || r == '#':
			return "", numberErr(input, "service codes (* and #) are not supported")
		case r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
			return "", numberErr(input, "contains letters")
		default:
			return "", numberErr(input, "contains an unexpected character")
		}
	}
	if n == 0 {
		return "", numberErr(input, "no digits")
	}
	d := digits[:n]

	var out [1 + MaxE164Digits + 4 + 3]byte
	out[0] = '+'
	o := 1
	switch {
	case plus:
		o += copy(out[o:], d)
	case len(d) > 2 && d[0] == '0' && d[1] == '0':
		o += copy(out[o:], d[2:])
	case cc == "1" && len(d) > 3 && d[0] == '0' && d[1] == '1' && d[2] == '1':
		o += copy(out[o:], d[3:])
	case cc == "":
		return "", numberErr(input, "national number without a default country code; write it with +<country code>")
	case d[0] == '0' && !keepsTrunkZero(cc):
		o += copy(out[o:], cc)
		o += copy(out[o:], d[1:])
	case cc == "1" && len(d) == 11 && d[0] == '1':
		o += copy(out[o:], cc)
		o += copy(out[o:], d[1:])
	default:
		o += copy(out[o:], cc)
		o += copy(out[o:], d)
	}
	got := o - 1
	switch {
	case got == 0:
		return "", numberErr(input, "no digits")
	case out[1] == '0':
		return "", numberErr(input, "country code starts with 0")
	case got < MinE164Digits:
		return "", numberErr(input, "too short")
	case got > MaxE164Digits:
		return "", numberErr(input, "too many digits")
	}
	return string(out[:o]), nil
}

// CheckCountryCode validates a default country code for Normalize: empty,
// or 1 to 3 digits not starting with 0, optionally after a "+".
func CheckCountryCode(cc string) error {
	if _, ok := normalizeCC(cc); !ok {
		return numberErr(cc, "default country code must be 1 to 3 digits not starting with 0")
	}
	return nil
}

// normalizeCC validates a default country code, returning it without "+".
func normalizeCC(cc string) (string, bool) {
	cc = strings.TrimPrefix(strings.TrimSpace(cc), "+")
	if cc == "" {
		return "", true
	}
	if len(cc) > 3 || cc[0] == '0' {
		return "", false
	}
	for i := 0; i < len(cc); i++ {
		if cc[i] < '0' || cc[i] > '9' {
			return "", false
		}
	}
	return cc, true
}

// keepsTrunkZero reports whether national numbers of cc begin with a 0 that
// is part of the number (Italy and the numbering plans sharing it).
func keepsTrunkZero(cc string) bool { return cc == "39" || cc == "378" || cc == "379" }

// isSeparator reports whether r is a visual separator (RFC 3966
// visual-separator plus what people paste: spaces, slashes, dashes).
func isSeparator(r rune) bool {
	switch r {
	case ' ', '\t', '-', '.', '(', ')', '/',
		'\u00a0', // no-break space
		'\u2007', // figure space
		'\u2009', // thin space
		'\u202f', // narrow no-break space
		'\u2010', // hyphen
		'\u2011', // non-breaking hyphen
		'\u2012', // figure dash
		'\u2013', // en dash
		'\u2014', // em dash
		'\u2212', // minus sign
		'\u200b', // zero-width space
		'\u2060': // word joiner
		return true
	}
	return false
}

// IsE164 reports whether s is already a normalised number: "+" and 7 to 15
// digits, the first not 0.
func IsE164(s string) bool {
	if len(s) < 1+MinE164Digits || len(s) > 1+MaxE164Digits || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Format returns a display form of an E.164 number: NANP numbers (+1 and 10
// digits) as "+1 555 010 0100", others as "+CC" followed by the national
// number in groups of three with a last group of two to four digits
// ("+44 207 946 0000"). The country code length comes from the ITU country
// code assignment (1 and 7 are one digit, a fixed list is two, the rest
// three). The grouping is for reading only, not the national convention.
// Input that is not E.164 (IsE164) is returned unchanged.
func Format(e164 string) string {
	if !IsE164(e164) {
		return e164
	}
	d := e164[1:]
	var b strings.Builder
	b.Grow(len(e164) + 6)
	if d[0] == '1' && len(d) == 11 {
		b.WriteString("+1 ")
		b.WriteString(d[1:4])
		b.WriteByte(' ')
		b.WriteString(d[4:7])
		b.WriteByte(' ')
		b.WriteString(d[7:])
		return b.String()
	}
	ccLen := countryCodeLen(d)
	b.WriteByte('+')
	b.WriteString(d[:ccLen])
	rest := d[ccLen:]
	for len(rest) > 0 {
		b.WriteByte(' ')
		k := 3
		if len(rest) <= 4 {
			k = len(rest)
		}
		b.WriteString(rest[:k])
		rest = rest[k:]
	}
	return b.String()
}

// countryCodeLen returns the length of the country code d starts with,
// following the ITU-T E.164 assignment: zones 1 and 7 have one-digit codes;
// the two-digit codes are listed below; every other code has three digits.
func countryCodeLen(d string) int {
	switch d[0] {
	case '1', '7':
		return 1
	}
	if len(d) < 2 {
		return len(d)
	}
	switch d[:2] {
	case "20", "27",
		"30", "31", "32", "33", "34", "36", "39",
		"40", "41", "43", "44", "45", "46", "47", "48", "49",
		"51", "52", "53", "54", "55", "56", "57", "58",
		"60", "61", "62", "63", "64", "65", "66",
		"81", "82", "84", "86",
		"90", "91", "92", "93", "94", "95", "98":
		return 2
	}
	return 3
}
