package sip

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/signalling"
)

func TestTrunkValidateDefaults(t *testing.T) {
	tr := Trunk{Name: "t", Host: "sip.example.net"}
	if err := tr.Validate(); err != nil {
		t.Fatal(err)
	}
	if tr.Port != 5060 || tr.Transport != "udp" || tr.FromUser != DefaultFromUser || tr.FromDomain != "sip.example.net" ||
		tr.NumberFormat != FormatE164 || tr.SetupTimeout != DefaultSetupTimeout || tr.RingTimeout != DefaultRingTimeout ||
		strings.Join(tr.Codecs, ",") != "PCMU,PCMA" {
		t.Errorf("defaults not filled: %+v", tr)
	}
}

func TestTrunkValidateReportsEverything(t *testing.T) {
	tr := Trunk{Port: 70000, Transport: "sctp", NumberFormat: "national", CountryCode: "4x", Codecs: []string{"PCMU", "G729"}}
	err := tr.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"host is empty", "port 70000", `transport "sctp"`, "country_code", `codec "G729"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestFormatNumber(t *testing.T) {
	nat := Trunk{Host: "h", NumberFormat: FormatNational, CountryCode: "49", NationalPrefix: "0"}
	if err := nat.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		format NumberFormat
		in     string
		want   string
	}{
		{FormatE164, "+49 30 123-456", "+4930123456"},
		{FormatE164NoPlus, "+4930123456", "4930123456"},
		{FormatNational, "+4930123456", "030123456"},
		{FormatNational, "+33123456789", "0033123456789"},
	}
	for _, tc := range cases {
		tr := nat
		tr.NumberFormat = tc.format
		got, err := tr.FormatNumber(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%s(%q) = %q, %v; want %q", tc.format, tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "4930123", "+", "+0301234", "+49abc", "+1234567890123456", "+49;user=x"} {
		if _, err := nat.FormatNumber(bad); !errors.Is(err, ErrInvalidNumber) {
			t.Errorf("FormatNumber(%q) err %v", bad, err)
		}
	}
}

func TestFromUserTemplate(t *testing.T) {
	tr := Trunk{Host: "h", NumberFormat: FormatE164NoPlus, FromUser: "{localpart}-{caller_id}"}
	if err := tr.Validate(); err != nil {
		t.Fatal(err)
	}
	p := signalling.Party{Number: "+4930111", MatrixUser: "@al ice:example.org"}
	if got := tr.fromUser(p); got != "al%20ice-4930111" {
		t.Errorf("fromUser %q", got)
	}
	tr.FromUser = "{caller_id}"
	if got := tr.fromUser(signalling.Party{}); got != "anonymous" {
		t.Errorf("empty caller id gives %q", got)
	}
	if got := displayName("Bob \"the\" \\ Builder\r\n"); got != "Bob the  Builder" {
		t.Errorf("displayName %q", got)
	}
}

func TestTrunkNeverShowsPassword(t *testing.T) {
	tr := Trunk{Name: "t", Host: "h", Password: "hunter2-secret", SetupTimeout: time.Second}
	if strings.Contains(tr.String(), "hunter2") {
		t.Error("String() shows the password")
	}
	var b strings.Builder
	log := newTestLogger(&b)
	log.Info().Object("trunk", tr).Msg("x")
	if strings.Contains(b.String(), "hunter2") || !strings.Contains(b.String(), `"has_password":true`) {
		t.Errorf("log line %s", b.String())
	}
}
