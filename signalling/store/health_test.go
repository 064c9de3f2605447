package store

import (
	"context"
	"testing"

	"github.com/matrix-gateway/gateway/signalling"
)

// The media health of a call (jitter, RTT, MOS per side, packets the trunk
// reported lost) is stored and read back.
func TestMediaHealthColumns(t *testing.T) {
	backends(t, func(t *testing.T, cfg Config) {
		s := open(t, cfg)
		r := sampleRecord("gw-health")
		r.Answered = base.Add(1e9)
		r.Ended = base.Add(5e9)
		r.Cause = signalling.CauseMediaFailed
		r.Detail = "no RTP from the phone for 30s"
		r.MatrixJitterMS, r.MatrixRTTMS, r.MatrixMOS = 1.25, 0, 4.12
		r.PhoneJitterMS, r.PhoneRTTMS, r.PhoneMOS = 3.5, 41.5, 4.33
		r.PhoneLostByPeer = 12
		s.CallEnded(r)
		got, err := getCall(t, s, r.ID)
		must(t, err)
		if got.MatrixJitterMS != 1.25 || got.MatrixRTTMS != 0 || got.MatrixMOS != 4.12 ||
			got.PhoneJitterMS != 3.5 || got.PhoneRTTMS != 41.5 || got.PhoneMOS != 4.33 || got.PhoneLostByPeer != 12 {
			t.Errorf("health read back: %+v", got)
		}
		if got.Cause != "media_failed" || got.Detail != r.Detail {
			t.Errorf("cause %q detail %q", got.Cause, got.Detail)
		}
	})
}

// A database at schema version 1 with a call in it migrates to the latest
// version; the old row gets zero health values.
func TestMigrateV1ToMediaHealth(t *testing.T) {
	steps, err := loadMigrations()
	must(t, err)
	if len(steps) < 2 || steps[1].name != "002_media_health.sql" {
		t.Fatalf("migrations: %v", steps)
	}
	cfg := Config{Type: TypeSQLite, URI: "file:" + t.TempDir() + "/v1.db"}
	s := open(t, cfg)
	ctx := context.Background()
	// Roll the fresh database back to version 1 by dropping what 002 added.
	for _, col := range []string{"matrix_jitter_ms", "matrix_rtt_ms", "matrix_mos", "phone_jitter_ms", "phone_rtt_ms", "phone_mos", "phone_lost_by_peer"} {
		if _, err := s.db.ExecContext(ctx, `ALTER TABLE call_records DROP COLUMN `+col); err != nil {
			t.Fatal(err)
		}
	}
	// ... and what later steps added.
	for _, table := range []string{"room_ghosts", "conferences"} {
		_, err = s.db.ExecContext(ctx, `DROP TABLE `+table)
		must(t, err)
	}
	_, err = s.db.ExecContext(ctx, `UPDATE schema_version SET version = 1`)
	must(t, err)
	_, err = s.db.ExecContext(ctx, `INSERT INTO call_records (id, direction, started_ms, state, last_seen_ms) VALUES ('old', 'to_phone', 1, 'ended', 1)`)
	must(t, err)
	must(t, s.Close())
	s2 := open(t, cfg)
	v, err := s2.SchemaVersion(ctx)
	must(t, err)
	if v != LatestVersion() {
		t.Fatalf("version %d", v)
	}
	got, err := getCall(t, s2, "old")
	must(t, err)
	if got.PhoneMOS != 0 || got.MatrixJitterMS != 0 || got.PhoneLostByPeer != 0 {
		t.Errorf("old row: %+v", got)
	}
}
