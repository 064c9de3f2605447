package sip

import (
	"errors"
	"testing"
	"time"
)

func TestParseDTMFInfo(t *testing.T) {
	tests := []struct {
		ct, body string
		digit    rune
		dur      time.Duration
		err      bool
	}{
		{DTMFRelayType, "Signal=5\r\nDuration=160\r\n", '5', 160 * time.Millisecond, false},
		{"Application/DTMF-Relay; charset=x", "signal= #\nduration=250", '#', 250 * time.Millisecond, false},
		{DTMFRelayType, "Signal=10\r\nDuration=100\r\n", '*', 100 * time.Millisecond, false},
		{DTMFRelayType, "Signal=a\r\n", 'A', 120 * time.Millisecond, false},
		{DTMFType, "7", '7', 120 * time.Millisecond, false},
		{DTMFRelayType, "Duration=100\r\n", 0, 0, true},
		{DTMFRelayType, "Signal=55\r\n", 0, 0, true},
		{DTMFRelayType, "Signal=x\r\n", 0, 0, true},
		{"text/plain", "Signal=1", 0, 0, true},
	}
	for _, tc := range tests {
		d, dur, err := ParseDTMFInfo(tc.ct, []byte(tc.body))
		if tc.err {
			if !errors.Is(err, ErrBadDTMFInfo) {
				t.Errorf("%q %q: err %v, want ErrBadDTMFInfo", tc.ct, tc.body, err)
			}
			continue
		}
		if err != nil || d != tc.digit || dur != tc.dur {
			t.Errorf("%q %q: %q %v %v, want %q %v", tc.ct, tc.body, d, dur, err, tc.digit, tc.dur)
		}
	}
	d, dur, err := ParseDTMFInfo(DTMFRelayType, DTMFInfoBody('#', 200*time.Millisecond))
	if err != nil || d != '#' || dur != 200*time.Millisecond {
		t.Errorf("round trip: %q %v %v", d, dur, err)
	}
}

func FuzzParseDTMFInfo(f *testing.F) {
	f.Add(DTMFRelayType, []byte("Signal=5\r\nDuration=160\r\n"))
	f.Add(DTMFType, []byte("#"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		d, dur, err := ParseDTMFInfo(ct, body)
		if err == nil && (dur <= 0 || d == 0) {
			t.Fatalf("accepted %q with duration %v", d, dur)
		}
	})
}
