package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/signalling"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopPostgres()
	os.Exit(code)
}

// backends runs f against SQLite in a temporary directory and against a
// fresh database of the test PostgreSQL cluster.
func backends(t *testing.T, f func(t *testing.T, cfg Config)) {
	t.Run("sqlite", func(t *testing.T) {
		f(t, Config{Type: TypeSQLite, URI: filepath.Join(t.TempDir(), "gateway.db")})
	})
	t.Run("postgres", func(t *testing.T) {
		f(t, pgConfig(t))
	})
}

func open(t *testing.T, cfg Config) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestMigrateFromEmptyAndReopen(t *testing.T) {
	backends(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := open(t, cfg)
		v, err := s.SchemaVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v != LatestVersion() || v < 1 {
			t.Fatalf("schema version = %d, want %d", v, LatestVersion())
		}
		if err := s.SetDMRoom(ctx, "@pstn_1555:hs", "@alice:hs", "!room:hs"); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}

		// Re-opening applies nothing and keeps the data.
		s2 := open(t, cfg)
		if v2, err := s2.SchemaVersion(ctx); err != nil || v2 != v {
			t.Fatalf("after re-open: version %d, %v; want %d", v2, err, v)
		}
		var rows int
		if err := s2.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_version`).Scan(&rows); err != nil || rows != 1 {
			t.Fatalf("schema_version rows = %d, %v; want 1", rows, err)
		}
		room, ok, err := s2.DMRoom(ctx, "@pstn_1555:hs", "@alice:hs")
		if err != nil || !ok || room != "!room:hs" {
			t.Fatalf("DMRoom after re-open = %q %v %v", room, ok, err)
		}
	})
}

func TestRefusesNewerSchema(t *testing.T) {
	backends(t, func(t *testing.T, cfg Config) {
		s := open(t, cfg)
		if _, err := s.db.Exec(`UPDATE schema_version SET version = $1`, LatestVersion()+1); err != nil {
			t.Fatal(err)
		}
		_ = s.Close()
		s2, err := Open(context.Background(), cfg)
		if err == nil {
			_ = s2.Close()
			t.Fatal("Open accepted a schema newer than the binary")
		}
		if !strings.Contains(err.Error(), "newer gateway") {
			t.Fatalf("unexpected error: %v", err)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, Config{Type: "mysql", URI: "x"}); err == nil || !strings.Contains(err.Error(), "unknown database type") {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := Open(ctx, Config{}); err == nil {
		t.Error("empty URI accepted")
	}
	// A directory that does not exist cannot hold the SQLite file.
	if _, err := Open(ctx, Config{URI: filepath.Join(t.TempDir(), "missing", "gateway.db")}); err == nil {
		t.Error("SQLite in a missing directory accepted")
	}
}

func TestSQLiteSettings(t *testing.T) {
	s := open(t, Config{URI: filepath.Join(t.TempDir(), "g.db")})
	var mode string
	var fk, busy int
	ctx := context.Background()
	if err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	if err := s.db.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d, %v; want 1", fk, err)
	}
	if err := s.db.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil || busy != sqliteBusyMillis {
		t.Errorf("busy_timeout = %d, %v; want %d", busy, err, sqliteBusyMillis)
	}
	var sync int
	if err := s.db.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil || sync != 1 {
		t.Errorf("synchronous = %d, %v; want 1 (NORMAL)", sync, err)
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://gw:s3cret@db.example.org:5432/gateway?sslmode=disable", "postgres://gw:***@db.example.org:5432/gateway?sslmode=disable"},
		{"postgres://db.example.org/gateway?user=gw&password=s3cret", "postgres://db.example.org/gateway?password=***&user=gw"},
		{"host=/run/postgresql user=gw password=s3cret dbname=gateway", "host=/run/postgresql user=gw password=*** dbname=gateway"},
		{"/var/lib/gateway/gateway.db", "/var/lib/gateway/gateway.db"},
		{"postgres://gw@db/gateway", "postgres://gw@db/gateway"},
		{"postgres://gw:s3cret@/gateway?host=/run/postgresql", "postgres://gw:***@/gateway?host=/run/postgresql"},
	} {
		got := Redact(tc.in)
		if got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "s3cret") {
			t.Errorf("Redact(%q) shows the password", tc.in)
		}
	}
}

func TestDMRooms(t *testing.T) {
	backends(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := open(t, cfg)
		if _, ok, err := s.DMRoom(ctx, "@pstn_1:hs", "@a:hs"); ok || err != nil {
			t.Fatalf("DMRoom of an unknown pair: ok=%v err=%v", ok, err)
		}
		must(t, s.SetDMRoom(ctx, "@pstn_1:hs", "@a:hs", "!one:hs"))
		must(t, s.SetDMRoom(ctx, "@pstn_1:hs", "@b:hs", "!two:hs"))
		must(t, s.SetDMRoom(ctx, "@pstn_1:hs", "@a:hs", "!three:hs")) // replaced
		for _, tc := range []struct{ ghost, user, want string }{
			{"@pstn_1:hs", "@a:hs", "!three:hs"}, {"@pstn_1:hs", "@b:hs", "!two:hs"},
		} {
			got, ok, err := s.DMRoom(ctx, tc.ghost, tc.user)
			if err != nil || !ok || got != tc.want {
				t.Errorf("DMRoom(%s, %s) = %q %v %v, want %q", tc.ghost, tc.user, got, ok, err, tc.want)
			}
		}
		must(t, s.DeleteDMRoom(ctx, "@pstn_1:hs", "@a:hs"))
		if _, ok, err := s.DMRoom(ctx, "@pstn_1:hs", "@a:hs"); ok || err != nil {
			t.Fatalf("DMRoom after delete: ok=%v err=%v", ok, err)
		}
	})
}

func TestRoomGhosts(t *testing.T) {
	backends(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := open(t, cfg)
		if g, err := s.RoomGhosts(ctx, "!r:hs"); err != nil || len(g) != 0 {
			t.Fatalf("RoomGhosts of an unknown room = %v, %v", g, err)
		}
		must(t, s.SetRoomGhost(ctx, "!r:hs", "@pstn_2:hs", true))
		must(t, s.SetRoomGhost(ctx, "!r:hs", "@pstn_1:hs", true))
		must(t, s.SetRoomGhost(ctx, "!r:hs", "@pstn_1:hs", true)) // again: no duplicate
		must(t, s.SetRoomGhost(ctx, "!other:hs", "@pstn_3:hs", true))
		g, err := s.RoomGhosts(ctx, "!r:hs")
		if err != nil || len(g) != 2 || g[0] != "@pstn_1:hs" || g[1] != "@pstn_2:hs" {
			t.Fatalf("RoomGhosts = %v, %v", g, err)
		}
		must(t, s.SetRoomGhost(ctx, "!r:hs", "@pstn_2:hs", false))
		if g, err := s.RoomGhosts(ctx, "!r:hs"); err != nil || len(g) != 1 || g[0] != "@pstn_1:hs" {
			t.Fatalf("RoomGhosts after a leave = %v, %v", g, err)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var errNotFound = errors.New("record not found")

func getCall(t *testing.T, s *Store, id signalling.CallID) (Record, error) {
	t.Helper()
	r, ok, err := s.Call(context.Background(), string(id))
	if err != nil {
		return r, err
	}
	if !ok {
		return r, fmt.Errorf("%s: %w", id, errNotFound)
	}
	return r, nil
}

func TestReadOnlyLeavesActiveCalls(t *testing.T) {
	backends(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := open(t, cfg)
		s.CallStarted(sampleRecord("gw-live"))
		ro := cfg
		ro.ReadOnly = true
		r := open(t, ro)
		calls, err := r.ListCalls(ctx, Filter{})
		if err != nil || len(calls) != 1 || calls[0].State != StateActive {
			t.Fatalf("read-only view: %+v, %v", calls, err)
		}
		got, err := getCall(t, s, "gw-live")
		must(t, err)
		if got.State != StateActive {
			t.Fatalf("read-only open changed a live call: %s", got.State)
		}
	})
	t.Run("missing sqlite file", func(t *testing.T) {
		_, err := Open(context.Background(), Config{URI: filepath.Join(t.TempDir(), "none.db"), ReadOnly: true})
		if err == nil || !strings.Contains(err.Error(), "no database") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("old schema", func(t *testing.T) {
		cfg := Config{URI: filepath.Join(t.TempDir(), "old.db")}
		s := open(t, cfg)
		if _, err := s.db.Exec(`UPDATE schema_version SET version = 0`); err != nil {
			t.Fatal(err)
		}
		cfg.ReadOnly = true
		_, err := Open(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "start the gateway once") {
			t.Fatalf("err = %v", err)
		}
	})
}
