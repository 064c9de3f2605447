package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/signalling"
)

// base is the start time of the test calls, with sub-millisecond parts the
// store must drop.
var base = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))

func sampleRecord(id string) signalling.CallRecord {
	return signalling.CallRecord{
		ID:         signalling.CallID(id),
		Direction:  signalling.DirectionToPhone,
		From:       signalling.Party{Number: "+15550001111", MatrixUser: "@alice:hs"},
		To:         signalling.Party{Number: "+15550002222"},
		Started:    base,
		MatrixRoom: "!room:hs", MatrixCallID: "mx-1", Trunk: "main", SIPCallID: "sip-abc",
		MatrixCodec: "opus/48000/2",
	}
}

func TestCallLifecycle(t *testing.T) {
	backends(t, func(t *testing.T, cfg Config) {
		s := open(t, cfg)
		r := sampleRecord("gw-life")
		s.CallStarted(r)
		got, err := getCall(t, s, r.ID)
		must(t, err)
		if got.State != StateActive || got.Cause != "" || !got.Answered.IsZero() || !got.Ended.IsZero() {
			t.Fatalf("after start: %+v", got)
		}
		if !got.Started.Equal(base.Truncate(time.Millisecond)) || got.Started.Location() != time.UTC {
			t.Fatalf("started = %v, want %v in UTC", got.Started, base.Truncate(time.Millisecond))
		}

		r.Answered = base.Add(3 * time.Second)
		r.PhoneCodec = "PCMU/8000"
		r.SIPStatus = 200
		s.CallAnswered(r)
		got, err = getCall(t, s, r.ID)
		must(t, err)
		if got.State != StateActive || !got.Answered.Equal(r.Answered.Truncate(time.Millisecond)) || got.PhoneCodec != "PCMU/8000" {
			t.Fatalf("after answer: %+v", got)
		}

		r.Ended = r.Answered.Add(61*time.Second + 500*time.Millisecond)
		r.Cause = signalling.CauseNormal
		r.Detail = "SIP BYE"
		r.EndedBy = "sip"
		r.MatrixReason = "user_hangup"
		r.MatrixPacketsIn, r.MatrixPacketsLost = 3075, 2
		r.PhonePacketsIn, r.PhonePacketsLost = 3070, 7
		s.CallEnded(r)
		got, err = getCall(t, s, r.ID)
		must(t, err)
		want := Record{
			ID: "gw-life", Direction: signalling.DirectionToPhone,
			CallerNumber: "+15550001111", CallerUser: "@alice:hs", CalleeNumber: "+15550002222",
			MatrixRoom: "!room:hs", MatrixCallID: "mx-1", Trunk: "main", SIPCallID: "sip-abc",
			Started:  base.Truncate(time.Millisecond).UTC(),
			Answered: r.Answered.Truncate(time.Millisecond).UTC(),
			Ended:    r.Ended.Truncate(time.Millisecond).UTC(),
			Duration: 61500 * time.Millisecond,
			Cause:    "normal", Detail: "SIP BYE", EndedBy: "sip", SIPStatus: 200, MatrixReason: "user_hangup",
			MatrixCodec: "opus/48000/2", PhoneCodec: "PCMU/8000",
			MatrixPacketsIn: 3075, MatrixPacketsLost: 2, PhonePacketsIn: 3070, PhonePacketsLost: 7,
			State: StateEnded, LastSeen: got.LastSeen,
		}
		if got != want {
			t.Fatalf("after end:\n got  %+v\n want %+v", got, want)
		}
		if time.Since(got.LastSeen) > time.Minute || time.Since(got.LastSeen) < 0 {
			t.Errorf("last_seen %v is not now", got.LastSeen)
		}
	})
}

func TestCrashedCallBecomesInterrupted(t *testing.T) {
	backends(t, func(t *testing.T, cfg Config) {
		cfg.Heartbeat = -1
		s := open(t, cfg)
		seen := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
		s.now = func() time.Time { return seen }
		answered := sampleRecord("gw-crash-answered")
		answered.Answered = seen.Add(-90 * time.Second)
		s.CallStarted(answered)
		s.CallAnswered(answered)
		ringing := sampleRecord("gw-crash-ringing")
		s.CallStarted(ringing)
		done := sampleRecord("gw-done")
		s.CallStarted(done)
		done.Ended, done.Cause, done.Detail = base.Add(time.Second), signalling.CauseBusy, "SIP 486 Busy Here"
		s.CallEnded(done)
		// The process dies: no CallEnded, no Close (the file/connection
		// just goes away, as after kill -9).
		_ = s.db.Close()

		s2 := open(t, cfg)
		a, err := getCall(t, s2, answered.ID)
		must(t, err)
		if a.State != StateInterrupted || !a.Ended.Equal(seen) || a.Duration != 90*time.Second || a.Cause != "unknown" || a.Detail == "" {
			t.Errorf("answered call after crash: %+v", a)
		}
		rg, err := getCall(t, s2, ringing.ID)
		must(t, err)
		if rg.State != StateInterrupted || !rg.Ended.Equal(seen) || rg.Duration != 0 {
			t.Errorf("ringing call after crash: %+v", rg)
		}
		d, err := getCall(t, s2, done.ID)
		must(t, err)
		if d.State != StateEnded || d.Cause != "busy" || d.Detail != "SIP 486 Busy Here" {
			t.Errorf("ended call changed by re-open: %+v", d)
		}
		// Nothing is left active, and a further re-open changes nothing.
		n, err := s2.markInterrupted(context.Background())
		if err != nil || n != 0 {
			t.Errorf("second markInterrupted changed %d rows (%v), want 0", n, err)
		}
	})
}

func TestHeartbeatRefreshesActiveCalls(t *testing.T) {
	backends(t, func(t *testing.T, cfg Config) {
		cfg.Heartbeat = -1
		s := open(t, cfg)
		t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
		s.now = func() time.Time { return t0 }
		s.CallStarted(sampleRecord("gw-hb-active"))
		s.CallStarted(sampleRecord("gw-hb-ended"))
		ended := sampleRecord("gw-hb-ended")
		ended.Ended = base.Add(time.Second)
		s.CallEnded(ended)
		t1 := t0.Add(15 * time.Second)
		s.now = func() time.Time { return t1 }
		s.touchActive()
		a, err := getCall(t, s, "gw-hb-active")
		must(t, err)
		e, err := getCall(t, s, "gw-hb-ended")
		must(t, err)
		if !a.LastSeen.Equal(t1) {
			t.Errorf("active call last_seen = %v, want %v", a.LastSeen, t1)
		}
		if !e.LastSeen.Equal(t0) {
			t.Errorf("ended call last_seen = %v, want unchanged %v", e.LastSeen, t0)
		}
	})
}

func TestConcurrentCalls(t *testing.T) {
	backends(t, func(t *testing.T, cfg Config) {
		cfg.Heartbeat = 5 * time.Millisecond // runs beside the writers
		s := open(t, cfg)
		const calls = 40
		var wg sync.WaitGroup
		for i := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := sampleRecord(fmt.Sprintf("gw-conc-%02d", i))
				r.Started = base.Add(time.Duration(i) * time.Second)
				if i%2 == 1 {
					r.Direction = signalling.DirectionToMatrix
				}
				s.CallStarted(r)
				r.Answered = r.Started.Add(time.Second)
				s.CallAnswered(r)
				r.Ended = r.Answered.Add(time.Duration(i+1) * time.Second)
				r.Cause = signalling.CauseNormal
				s.CallEnded(r)
			}()
		}
		wg.Wait()
		all, err := s.ListCalls(context.Background(), Filter{})
		must(t, err)
		if len(all) != calls {
			t.Fatalf("%d records, want %d", len(all), calls)
		}
		for i, r := range all {
			want := calls - 1 - i // newest first
			if r.ID != fmt.Sprintf("gw-conc-%02d", want) || r.State != StateEnded || r.Duration != time.Duration(want+1)*time.Second {
				t.Errorf("record %d: %s %s %v", i, r.ID, r.State, r.Duration)
			}
		}
	})
}

func TestListCallsFilter(t *testing.T) {
	backends(t, func(t *testing.T, cfg Config) {
		s := open(t, cfg)
		for i := range 6 {
			r := sampleRecord(fmt.Sprintf("gw-f-%d", i))
			r.Started = base.Add(time.Duration(i) * time.Hour)
			if i >= 3 {
				r.Direction = signalling.DirectionToMatrix
			}
			s.CallStarted(r)
		}
		ctx := context.Background()
		ids := func(f Filter) []string {
			t.Helper()
			rs, err := s.ListCalls(ctx, f)
			must(t, err)
			var out []string
			for _, r := range rs {
				out = append(out, r.ID)
			}
			return out
		}
		for _, tc := range []struct {
			name string
			f    Filter
			want string
		}{
			{"all", Filter{}, "[gw-f-5 gw-f-4 gw-f-3 gw-f-2 gw-f-1 gw-f-0]"},
			{"since", Filter{Since: base.Add(4 * time.Hour)}, "[gw-f-5 gw-f-4]"},
			{"until", Filter{Until: base.Add(2 * time.Hour)}, "[gw-f-1 gw-f-0]"},
			{"window", Filter{Since: base.Add(time.Hour), Until: base.Add(3 * time.Hour)}, "[gw-f-2 gw-f-1]"},
			{"direction", Filter{Direction: signalling.DirectionToMatrix}, "[gw-f-5 gw-f-4 gw-f-3]"},
			{"limit", Filter{Direction: signalling.DirectionToPhone, Limit: 2}, "[gw-f-2 gw-f-1]"},
		} {
			if got := fmt.Sprint(ids(tc.f)); got != tc.want {
				t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
			}
		}
	})
}

func TestEndWithoutStartIsRecorded(t *testing.T) {
	// A lost start write (or a record the call core only ends) still
	// leaves a complete row.
	backends(t, func(t *testing.T, cfg Config) {
		s := open(t, cfg)
		r := sampleRecord("gw-only-end")
		r.Ended, r.Cause = base.Add(time.Second), signalling.CauseUnreachable
		s.CallEnded(r)
		got, err := getCall(t, s, r.ID)
		must(t, err)
		if got.State != StateEnded || got.Cause != "unreachable" {
			t.Fatalf("%+v", got)
		}
	})
}

func BenchmarkCallRecordSQLite(b *testing.B) {
	s, err := Open(context.Background(), Config{URI: b.TempDir() + "/bench.db", Heartbeat: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r := sampleRecord("")
	b.ResetTimer()
	for i := range b.N {
		r.ID = signalling.CallID(fmt.Sprintf("gw-bench-%d", i))
		s.CallStarted(r)
		s.CallEnded(r)
	}
}
