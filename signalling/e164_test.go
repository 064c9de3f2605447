package signalling

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		in, cc, want string
	}{
		// International forms.
		{"+15550100100", "", "+15550100100"},
		{"+1 (555) 010-0100", "", "+15550100100"},
		{"+44 20 7946 0000", "49", "+442079460000"},
		{"  +44.20.7946.0000  ", "", "+442079460000"},
		{"0044 20 7946 0000", "49", "+442079460000"},
		{"0044 20 7946 0000", "", "+442079460000"},
		{"011 44 20 7946 0000", "1", "+442079460000"},
		{"tel:+1-555-010-0100", "", "+15550100100"},
		{"TEL:+4930123456", "", "+4930123456"},
		{"+49/30/123456", "", "+4930123456"},
		// Percent-encoding (Dendrite forwards %2B).
		{"%2B15550100100", "", "+15550100100"},
		{"%2b44%2020%207946%200000", "", "+442079460000"},
		// Unicode separators and the full-width plus.
		{"+44\u00a020\u202f7946\u20090000", "", "+442079460000"},
		{"+1\u2013555\u2013010\u20130100", "", "+15550100100"},
		{"\uff0b15550100100", "", "+15550100100"},
		// National forms.
		{"020 7946 0000", "44", "+442079460000"},
		{"020 7946 0000", "+44", "+442079460000"},
		{"030 123456", "49", "+4930123456"},
		{"06 1234 5678", "39", "+390612345678"}, // Italy keeps the 0
		{"5550100100", "1", "+15550100100"},
		{"(555) 010-0100", "1", "+15550100100"},
		{"1 555 010 0100", "1", "+15550100100"}, // NANP trunk prefix 1
		{"30123456", "49", "+4930123456"},
		// Bounds: 7 and 15 digits.
		{"+6831234", "", "+6831234"},
		{"+123456789012345", "", "+123456789012345"},
	} {
		got, err := Normalize(tc.in, tc.cc)
		if err != nil || got != tc.want {
			t.Errorf("Normalize(%q, %q) = %q, %v; want %q", tc.in, tc.cc, got, err, tc.want)
		}
		if err == nil && !IsE164(got) {
			t.Errorf("Normalize(%q) = %q is not E.164", tc.in, got)
		}
	}
}

func TestNormalizeRejects(t *testing.T) {
	for _, tc := range []struct {
		in, cc, reason string
	}{
		{"", "44", "empty"},
		{"   ", "44", "empty"},
		{"tel:", "44", "empty"},
		{"+", "", "no digits"},
		{"---", "44", "no digits"},
		{"1-800-FLOWERS", "1", "contains letters"},
		{"+44 20 7946 0000 ext 12", "", "contains letters"},
		{"tel:+1-555-010-0100;ext=12", "", "URI parameters are not supported"},
		{"*31#+15550100100", "", "service codes (* and #) are not supported"},
		{"+1555+0100100", "", `"+" not at the start`},
		{"1+5550100100", "", `"+" not at the start`},
		{"+1 555 010 0100 \u0660", "", "contains an unexpected character"}, // Arabic-Indic zero
		{"+1\x00555", "", "contains an unexpected character"},
		{"\xff\xfe", "", "contains an unexpected character"},
		{"%zz", "", "bad percent-encoding"},
		{"%252B15550100100", "", "contains an unexpected character"}, // decoded once only
		{"020 7946 0000", "", "national number without a default country code; write it with +<country code>"},
		{"5550100100", "", "national number without a default country code; write it with +<country code>"},
		{"+0441234567", "", "country code starts with 0"},
		{"000441234567", "", "country code starts with 0"},
		{"+112", "", "too short"},
		{"112", "49", "too short"},
		{"911", "1", "too short"},
		{"+683123", "", "too short"},
		{"+1234567890123456", "", "too many digits"},
		{"+12345678901234567890123", "", "too many digits"},
		{"0123456789012345", "44", "too many digits"},
		{strings.Repeat("1", 200), "44", "too long"},
		{"+15550100100", "0", "default country code must be 1 to 3 digits not starting with 0"},
		{"+15550100100", "1234", "default country code must be 1 to 3 digits not starting with 0"},
		{"+15550100100", "4a", "default country code must be 1 to 3 digits not starting with 0"},
	} {
		got, err := Normalize(tc.in, tc.cc)
		var ne *NumberError
		if !errors.Is(err, ErrInvalidNumber) || !errors.As(err, &ne) {
			t.Errorf("Normalize(%q, %q) = %q, %v; want ErrInvalidNumber", tc.in, tc.cc, got, err)
			continue
		}
		if ne.Reason != tc.reason {
			t.Errorf("Normalize(%q, %q): reason %q, want %q", tc.in, tc.cc, ne.Reason, tc.reason)
		}
		if CauseOf(err) != CauseInvalidNumber {
			t.Errorf("Normalize(%q): cause %v", tc.in, CauseOf(err))
		}
		if !strings.HasPrefix(err.Error(), "signalling: invalid phone number ") {
			t.Errorf("error text %q", err)
		}
	}
}

func TestNumberErrorSanitisesInput(t *testing.T) {
	_, err := Normalize("+1\n555\"x", "")
	if err == nil || strings.ContainsAny(err.Error(), "\n") || strings.Count(err.Error(), `"`) != 2 {
		t.Fatalf("error %q leaks control characters or quotes", err)
	}
}

func TestCheckCountryCode(t *testing.T) {
	for cc, ok := range map[string]bool{"": true, "1": true, "+44": true, "358": true, " 49 ": true, "0": false, "1234": false, "+": true, "x": false, "++1": false} {
		if err := CheckCountryCode(cc); (err == nil) != ok {
			t.Errorf("CheckCountryCode(%q) = %v", cc, err)
		}
	}
}

func TestIsE164(t *testing.T) {
	for s, want := range map[string]bool{
		"+15550100100": true, "+6831234": true, "+123456789012345": true,
		"15550100100": false, "+683123": false, "+1234567890123456": false, "+0123456789": false,
		"+1555010010a": false, "": false, "+": false, "+1 555": false,
	} {
		if IsE164(s) != want {
			t.Errorf("IsE164(%q) = %v", s, !want)
		}
	}
}

func TestFormat(t *testing.T) {
	for in, want := range map[string]string{
		"+15550100100":     "+1 555 010 0100",
		"+442079460000":    "+44 207 946 0000",
		"+4930123456":      "+49 301 234 56",
		"+33123456789":     "+33 123 456 789",
		"+74951234567":     "+7 495 123 4567",
		"+35312345678":     "+353 123 456 78",
		"+6831234":         "+683 1234",
		"+8613812345678":   "+86 138 123 456 78",
		"+1234567890":      "+1 234 567 890",
		"+123456789012345": "+1 234 567 890 123 45",
		"not a number":     "not a number",
		"+0123456789":      "+0123456789",
	} {
		if got := Format(in); got != want {
			t.Errorf("Format(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"+15550100100", "020 7946 0000", "%2B44 20", "tel:+1-555", "0044 1", "011 44", "+\uff0b1", "(0)30-123/45"} {
		f.Add(s, "44")
		f.Add(s, "1")
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, in, cc string) {
		got, err := Normalize(in, cc)
		if err != nil {
			if !errors.Is(err, ErrInvalidNumber) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !IsE164(got) {
			t.Fatalf("Normalize(%q, %q) = %q, not E.164", in, cc, got)
		}
		// Normalising a normalised number is the identity, with or without
		// a default country code.
		if again, err := Normalize(got, ""); err != nil || again != got {
			t.Fatalf("Normalize(%q) = %q, %v; not idempotent", got, again, err)
		}
		// The display form normalises back to the same number.
		if back, err := Normalize(Format(got), ""); err != nil || back != got {
			t.Fatalf("Normalize(Format(%q)) = %q, %v", got, back, err)
		}
	})
}

func BenchmarkNormalize(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Normalize("+44 (20) 7946-0000", "44"); err != nil {
			b.Fatal(err)
		}
	}
}
