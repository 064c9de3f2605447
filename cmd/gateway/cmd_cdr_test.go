package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/signalling"
	"github.com/matrix-gateway/gateway/signalling/store"
)

// cdrFixture writes a configuration with `gateway init` and two call records
// into its default database (gateway.db next to it).
func cdrFixture(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "gw")
	if code, _, stderr := initInto(t, dir); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	st, err := store.Open(context.Background(), store.Config{URI: filepath.Join(dir, "gateway.db"), Heartbeat: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	out := signalling.CallRecord{
		ID: "gw-out", Direction: signalling.DirectionToPhone,
		From:    signalling.Party{Number: "+15551230000", MatrixUser: "@alice:gw.test"},
		To:      signalling.Party{Number: "+15550100100"},
		Started: now.Add(-2 * time.Hour), Answered: now.Add(-2*time.Hour + 5*time.Second),
		Ended: now.Add(-2*time.Hour + 65*time.Second), Cause: signalling.CauseNormal, EndedBy: "sip",
		Trunk: "main", SIPCallID: "abc@host", SIPStatus: 200, PhoneCodec: "PCMU/8000", MatrixCodec: "opus/48000/2",
		Detail: `SIP BYE, "quoted"`,
	}
	st.CallStarted(out)
	st.CallEnded(out)
	in := signalling.CallRecord{
		ID: "gw-in", Direction: signalling.DirectionToMatrix,
		From:    signalling.Party{Number: "+15550199999"},
		To:      signalling.Party{MatrixUser: "@bob:gw.test"},
		Started: now.Add(-10 * time.Minute),
	}
	st.CallStarted(in)
	return filepath.Join(dir, "gateway.yaml")
}

func TestCDRCommand(t *testing.T) {
	cfg := cdrFixture(t)
	code, out, stderr := runCLI("cdr", "-c", cfg, "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var recs []cdrJSON
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].ID != "gw-in" || recs[1].ID != "gw-out" {
		t.Fatalf("records (newest first): %+v", recs)
	}
	if r := recs[1]; r.DurationSeconds != 60 || r.Cause != "normal" || r.SIPStatus != 200 || r.Detail != `SIP BYE, "quoted"` {
		t.Errorf("ended record: %+v", r)
	}
	if r := recs[0]; r.State != "active" || r.Ended != "" || r.Cause != "" {
		t.Errorf("active record: %+v", r)
	}

	code, out, _ = runCLI("cdr", "-c", cfg, "--since", "1h", "--format", "csv")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, "gw-in,to_matrix,active") {
		t.Errorf("csv since 1h:\n%s", out)
	}
	code, out, _ = runCLI("cdr", "-c", cfg, "--direction", "to_phone")
	if code != 0 || !strings.Contains(out, "@alice:gw.test (+15551230000)") || !strings.Contains(out, "1m0s") || strings.Contains(out, "gw-in") {
		t.Errorf("table to_phone:\n%s", out)
	}
	code, out, _ = runCLI("cdr", "-c", cfg, "--until", time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), "--format", "json")
	if code != 0 || !strings.Contains(out, `"gw-out"`) || strings.Contains(out, `"gw-in"`) {
		t.Errorf("json until 1h ago:\n%s", out)
	}

	for _, bad := range [][]string{
		{"--format", "xml"}, {"--since", "yesterday"}, {"--direction", "sideways"}, {"--since", "-5h"},
	} {
		if code, _, stderr := runCLI(append([]string{"cdr", "-c", cfg}, bad...)...); code != 2 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", bad, code, stderr)
		}
	}
	// No database yet: an error, not a new empty file.
	dir := filepath.Join(t.TempDir(), "fresh")
	if code, _, _ := initInto(t, dir); code != 0 {
		t.Fatal("init")
	}
	if code, _, stderr := runCLI("cdr", "-c", filepath.Join(dir, "gateway.yaml")); code != 1 || !strings.Contains(stderr, "no database") {
		t.Errorf("missing database: exit %d, %q", code, stderr)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"24h", now.Add(-24 * time.Hour)},
		{"2026-03-01", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
		{"2026-03-01T10:30:00+01:00", time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)},
		{"2026-03-01 10:30:00", time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)},
	} {
		got, err := parseSince(tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
