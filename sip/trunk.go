package sip

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/signalling"
)

// NumberFormat says how a trunk wants called and calling numbers written.
type NumberFormat string

// Number formats.
const (
	FormatE164       NumberFormat = "e164"         // +4930123456
	FormatE164NoPlus NumberFormat = "e164_no_plus" // 4930123456
	FormatNational   NumberFormat = "national"     // 030123456 in the trunk's country, 00<cc>... abroad
)

// Trunk defaults.
const (
	DefaultSetupTimeout = 10 * time.Second
	DefaultRingTimeout  = 60 * time.Second
	DefaultFromUser     = "{caller_id}"
)

// ErrInvalidNumber is returned when a number is not E.164 ("+" and 1-15 digits).
var ErrInvalidNumber = errors.New("sip: invalid number")

// Trunk describes one SIP trunk the gateway places calls to. The lead maps
// the YAML config onto it; Validate fills defaults and reports problems.
type Trunk struct {
	Name      string // label used in logs and metrics
	Host      string // trunk host name or IP
	Port      int    // default 5060
	Transport string // "udp" (default) or "tcp"
	Username  string // digest user; default: the From user
	Password  string // digest password; never logged

	// FromUser is a template for the From user part; {caller_id} is the
	// caller's number (formatted like the called number) and {localpart}
	// the caller's Matrix localpart. Default "{caller_id}".
	FromUser   string
	FromDomain string // From host; default Host

	NumberFormat        NumberFormat // default e164
	NationalPrefix      string       // national format: trunk prefix, e.g. "0"
	CountryCode         string       // national format: the trunk's country code without "+", e.g. "49"
	InternationalPrefix string       // national format: prefix for numbers abroad; default "00"

	Codecs       []string      // audio codecs in preference order; default PCMU, PCMA
	SetupTimeout time.Duration // no response at all within this: unreachable; default 10s
	RingTimeout  time.Duration // no answer within this: CANCEL, no answer; default 60s
}

// Validate fills defaults and returns every problem found, joined.
func (t *Trunk) Validate() error {
	var errs []error
	if t.Host == "" {
		errs = append(errs, errors.New("sip: trunk host is empty"))
	}
	if t.Port == 0 {
		t.Port = 5060
	}
	if t.Port < 0 || t.Port > 65535 {
		errs = append(errs, fmt.Errorf("sip: trunk port %d out of range", t.Port))
	}
	t.Transport = strings.ToLower(strings.TrimSpace(t.Transport))
	if t.Transport == "" {
		t.Transport = "udp"
	}
	if t.Transport != "udp" && t.Transport != "tcp" {
		errs = append(errs, fmt.Errorf("sip: trunk transport %q (want udp or tcp)", t.Transport))
	}
	if t.FromUser == "" {
		t.FromUser = DefaultFromUser
	}
	if t.FromDomain == "" {
		t.FromDomain = t.Host
	}
	if t.NumberFormat == "" {
		t.NumberFormat = FormatE164
	}
	switch t.NumberFormat {
	case FormatE164, FormatE164NoPlus:
	case FormatNational:
		if t.CountryCode == "" || !allDigits(t.CountryCode) {
			errs = append(errs, fmt.Errorf("sip: trunk number_format national needs a numeric country_code, got %q", t.CountryCode))
		}
		if t.InternationalPrefix == "" {
			t.InternationalPrefix = "00"
		}
	default:
		errs = append(errs, fmt.Errorf("sip: trunk number_format %q (want e164, e164_no_plus or national)", t.NumberFormat))
	}
	if len(t.Codecs) == 0 {
		t.Codecs = []string{"PCMU", "PCMA"}
	}
	for _, c := range t.Codecs {
		if _, ok := CodecByName(c); !ok {
			errs = append(errs, fmt.Errorf("sip: trunk codec %q unknown (want PCMU or PCMA)", c))
		}
	}
	if t.SetupTimeout <= 0 {
		t.SetupTimeout = DefaultSetupTimeout
	}
	if t.RingTimeout <= 0 {
		t.RingTimeout = DefaultRingTimeout
	}
	return errors.Join(errs...)
}

// codecs returns the configured codecs in preference order.
func (t *Trunk) codecs() []Codec {
	out := make([]Codec, 0, len(t.Codecs))
	for _, name := range t.Codecs {
		if c, ok := CodecByName(name); ok {
			out = append(out, c)
		}
	}
	return out
}

// String describes the trunk without its password.
func (t Trunk) String() string {
	return fmt.Sprintf("%s(%s:%d/%s)", t.Name, t.Host, t.Port, t.Transport)
}

// MarshalZerologObject logs the trunk without its password.
func (t Trunk) MarshalZerologObject(e *zerolog.Event) {
	e.Str("name", t.Name).Str("host", t.Host).Int("port", t.Port).Str("transport", t.Transport).
		Str("username", t.Username).Bool("has_password", t.Password != "")
}

// FormatNumber writes an E.164 number ("+" and 1-15 digits; spaces, dashes,
// dots and parentheses are ignored) the way the trunk wants it.
func (t *Trunk) FormatNumber(e164 string) (string, error) {
	digits, err := normalizeE164(e164)
	if err != nil {
		return "", err
	}
	switch t.NumberFormat {
	case FormatE164NoPlus:
		return digits, nil
	case FormatNational:
		if t.CountryCode != "" && strings.HasPrefix(digits, t.CountryCode) && len(digits) > len(t.CountryCode) {
			return t.NationalPrefix + digits[len(t.CountryCode):], nil
		}
		return t.InternationalPrefix + digits, nil
	default:
		return "+" + digits, nil
	}
}

// normalizeE164 returns the digits of an E.164 number without the "+".
func normalizeE164(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "+") {
		return "", fmt.Errorf("%w: %q has no leading +", ErrInvalidNumber, s)
	}
	var b strings.Builder
	for _, r := range s[1:] {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return "", fmt.Errorf("%w: %q", ErrInvalidNumber, s)
		}
	}
	d := b.String()
	if len(d) < 1 || len(d) > 15 || d[0] == '0' {
		return "", fmt.Errorf("%w: %q", ErrInvalidNumber, s)
	}
	return d, nil
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// fromUser expands the FromUser template for the calling party.
func (t *Trunk) fromUser(from signalling.Party) string {
	callerID := ""
	if from.Number != "" {
		if n, err := t.FormatNumber(from.Number); err == nil {
			callerID = n
		} else {
			callerID = from.Number
		}
	}
	user := strings.NewReplacer("{caller_id}", callerID, "{localpart}", matrixLocalpart(from.MatrixUser)).Replace(t.FromUser)
	user = escapeUser(user)
	if user == "" {
		user = "anonymous"
	}
	return user
}

// matrixLocalpart returns "alice" for "@alice:example.org".
func matrixLocalpart(mxid string) string {
	s := strings.TrimPrefix(mxid, "@")
	if i := strings.IndexByte(s, ':'); i >= 0 {
		s = s[:i]
	}
	return s
}

// escapeUser percent-encodes what RFC 3261 section 25.1 does not allow in
// a SIP URI user part.
func escapeUser(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("-_.!~*'()&=+$,;?/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// displayName makes a From display name safe for a quoted-string.
func displayName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '"' || r == '\\' || r < 0x20 || r == 0x7f {
			continue
		}
		b.WriteRune(r)
	}
	out := strings.TrimSpace(b.String())
	if len(out) > 64 {
		out = out[:64]
	}
	return strings.ToValidUTF8(out, "")
}

// hostPort joins a host (name, IPv4 or IPv6) and a port for a SIP URI.
func hostForURI(host string) string {
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() && !ip.Is4In6() {
		return "[" + ip.String() + "]"
	}
	return host
}
