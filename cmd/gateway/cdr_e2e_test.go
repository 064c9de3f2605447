package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/internal/matrixclient"
	"github.com/matrix-gateway/gateway/signalling/store"
)

// cfgPathOf is the configuration file of an environment: startEnv writes
// gateway.yaml next to the registration.
func cfgPathOf(e *e2e) string {
	return filepath.Join(filepath.Dir(e.cfg.AppService.Registration), "gateway.yaml")
}

// cdrRecords reads the environment's call records with `gateway cdr
// --format json`, as an operator would, beside the running gateway.
func cdrRecords(t *testing.T, e *e2e, extra ...string) []cdrJSON {
	t.Helper()
	code, out, errOut := runCLI(append([]string{"cdr", "-c", cfgPathOf(e), "--format", "json"}, extra...)...)
	if code != 0 {
		t.Fatalf("gateway cdr exited %d: %s", code, errOut)
	}
	var recs []cdrJSON
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("gateway cdr JSON: %v\n%s", err, out)
	}
	return recs
}

// waitRecord polls the call records until one to the phone number callee
// (and not in skip) is in state want; bounded in time.
func waitRecord(t *testing.T, e *e2e, callee string, want store.State, skip map[string]bool) cdrJSON {
	t.Helper()
	return waitRecordWhere(t, e, want, func(r cdrJSON) bool {
		return r.Direction == "to_phone" && r.CalleeNumber == callee && !skip[r.ID]
	})
}

// waitRecordWhere polls the call records (of the last hour) until one that
// match accepts is in state want; bounded in time. For either direction.
func waitRecordWhere(t *testing.T, e *e2e, want store.State, match func(cdrJSON) bool) cdrJSON {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last []cdrJSON
	for time.Now().Before(deadline) {
		last = cdrRecords(t, e, "--since", "1h")
		for _, r := range last {
			if match(r) && r.State == string(want) {
				return r
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no %s record matching; records: %+v", want, last)
	return cdrJSON{}
}

func TestE2ECallRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real peers; not run with -short")
	}
	e := startE2E(t)
	seen := map[string]bool{}

	t.Run("answered call hung up by the Matrix caller", func(t *testing.T) {
		ghost, room := e.dmWith(e.alice, numAnswer)
		call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: ghost, ToneHz: userToneHz})
		if err != nil {
			t.Fatal(err)
		}
		waitClosed(t, call.Answered(), 20*time.Second, "m.call.answer")
		if _, err := e.answer.WaitEvent(ctxT(t, 10*time.Second), "CALL_ESTABLISHED"); err != nil {
			t.Fatal(err)
		}
		// While the call is up its record is there, active.
		// The client sees m.call.answer a moment before the gateway records the
		// answer: wait for the record to show it.
		active := waitRecordWhere(t, e, store.StateActive, func(r cdrJSON) bool {
			return r.Direction == "to_phone" && r.CalleeNumber == numAnswer && !seen[r.ID] && r.Answered != ""
		})
		if active.Ended != "" {
			t.Errorf("active record: %+v", active)
		}
		time.Sleep(2 * time.Second)
		if err := call.Hangup(ctxT(t, 10*time.Second), "user_hangup"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.answer.WaitEvent(ctxT(t, 10*time.Second), "CALL_CLOSED"); err != nil {
			t.Fatal(err)
		}
		r := waitRecord(t, e, numAnswer, store.StateEnded, seen)
		seen[r.ID] = true
		t.Logf("record: %+v", r)
		if r.ID != active.ID {
			t.Errorf("ended record %s is not the active one %s", r.ID, active.ID)
		}
		if r.Answered == "" || r.Ended == "" || r.DurationSeconds < 1.5 || r.DurationSeconds > 30 {
			t.Errorf("answered %q ended %q duration %.3fs; want answered, ended and about 2s", r.Answered, r.Ended, r.DurationSeconds)
		}
		if r.Cause != "normal" || r.EndedBy != "matrix" || r.SIPStatus != 200 {
			t.Errorf("cause %q ended_by %q sip_status %d; want normal, matrix, 200", r.Cause, r.EndedBy, r.SIPStatus)
		}
		if r.CallerUser != "@alice:localhost" || r.CallerNumber != "+15551230000" || r.Trunk != "answer" {
			t.Errorf("caller %q %q trunk %q", r.CallerUser, r.CallerNumber, r.Trunk)
		}
		if r.SIPCallID == "" || r.MatrixRoom != string(room) || r.MatrixCallID == "" {
			t.Errorf("ids: sip %q room %q (want %s) matrix call %q", r.SIPCallID, r.MatrixRoom, room, r.MatrixCallID)
		}
		if r.PhoneCodec != "PCMU/8000" || !strings.HasPrefix(r.MatrixCodec, "opus/48000") {
			t.Errorf("codecs: phone %q matrix %q", r.PhoneCodec, r.MatrixCodec)
		}
		// Two seconds of 20 ms packets each way, at the least.
		if r.PhonePacketsIn < 50 || r.MatrixPacketsIn < 50 {
			t.Errorf("packets in: phone %d matrix %d; want >= 50 each", r.PhonePacketsIn, r.MatrixPacketsIn)
		}
	})

	t.Run("busy phone", func(t *testing.T) {
		ghost, room := e.dmWith(e.alice, numBusy)
		call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: ghost})
		if err != nil {
			t.Fatal(err)
		}
		waitClosed(t, call.Ended(), 15*time.Second, "m.call.hangup for a busy phone")
		r := waitRecord(t, e, numBusy, store.StateEnded, seen)
		seen[r.ID] = true
		t.Logf("record: %+v", r)
		if r.Cause != "busy" || r.SIPStatus != 486 || !strings.Contains(r.Detail, "486") || r.EndedBy != "sip" {
			t.Errorf("cause %q sip_status %d detail %q ended_by %q; want busy, 486", r.Cause, r.SIPStatus, r.Detail, r.EndedBy)
		}
		if r.Answered != "" || r.DurationSeconds != 0 || r.Ended == "" || r.Trunk != "busy" || r.SIPCallID == "" {
			t.Errorf("busy record: %+v", r)
		}
	})

	t.Run("csv and table exports", func(t *testing.T) {
		code, out, errOut := runCLI("cdr", "-c", cfgPathOf(e), "--format", "csv")
		if code != 0 {
			t.Fatalf("cdr csv: %d %s", code, errOut)
		}
		rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) < 3 || strings.Join(rows[0], ",") != strings.Join(cdrColumns, ",") {
			t.Fatalf("csv: %d rows, header %v", len(rows), rows[0])
		}
		for _, row := range rows[1:] {
			if len(row) != len(cdrColumns) || !seen[row[0]] {
				t.Errorf("unexpected csv row %v", row)
			}
		}
		code, out, _ = runCLI("cdr", "-c", cfgPathOf(e), "--limit", "1")
		if code != 0 || !strings.Contains(out, "STARTED") || strings.Count(out, "\n") != 2 || !strings.Contains(out, "busy") {
			t.Errorf("table with --limit 1 (newest, the busy call):\n%s", out)
		}
		if got := cdrRecords(t, e, "--direction", "to_matrix"); len(got) != 0 {
			t.Errorf("to_matrix filter returned %d records", len(got))
		}
	})
}

func TestE2ECallRecordSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real peers; not run with -short")
	}
	e := startEnv(t, true)
	ghost, room := e.dmWith(e.alice, numAnswer)
	call, err := e.alice.PlaceCall(ctxT(t, 20*time.Second), room, matrixclient.CallOptions{Invitee: ghost, ToneHz: userToneHz})
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, call.Answered(), 20*time.Second, "m.call.answer")
	if _, err := e.answer.WaitEvent(ctxT(t, 10*time.Second), "CALL_ESTABLISHED"); err != nil {
		t.Fatal(err)
	}
	active := waitRecord(t, e, numAnswer, store.StateActive, nil)
	time.Sleep(time.Second)

	if err := e.proc.signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExit(t, e.proc, 10*time.Second)
	// Dead process: the record is still there, still active.
	if recs := cdrRecords(t, e); len(recs) != 1 || recs[0].ID != active.ID || recs[0].State != string(store.StateActive) {
		t.Fatalf("after kill -9: %+v", recs)
	}

	// The gateway comes back on the same configuration and database.
	startGatewayProcess(t, cfgPathOf(e), filepath.Join(t.TempDir(), "gateway-restarted.log"))
	recs := cdrRecords(t, e)
	if len(recs) != 1 {
		t.Fatalf("after restart: %d records, want 1: %+v", len(recs), recs)
	}
	r := recs[0]
	t.Logf("record: %+v", r)
	if r.ID != active.ID || r.State != string(store.StateInterrupted) {
		t.Fatalf("after restart: %+v; want %s interrupted", r, active.ID)
	}
	if r.Answered == "" || r.Ended == "" || r.Ended < r.Answered || r.Cause != "unknown" || r.Detail == "" {
		t.Errorf("interrupted record incomplete: %+v", r)
	}
	if r.SIPCallID == "" || r.Trunk != "answer" || r.PhoneCodec != "PCMU/8000" || r.MatrixRoom != string(room) {
		t.Errorf("interrupted record lost what the answer wrote: %+v", r)
	}
	var buf bytes.Buffer
	if code := realMain([]string{"cdr", "-c", cfgPathOf(e)}, &buf, &buf); code != 0 || !strings.Contains(buf.String(), "interrupted") {
		t.Errorf("cdr table after restart (exit %d):\n%s", code, buf.String())
	}
}
