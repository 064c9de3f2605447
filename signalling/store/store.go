// Package store persists what the gateway must remember across restarts: call
// records (CDRs) for both directions and the DM room used for each (phone
// ghost, Matrix user) pair. It runs on SQLite by default (an embedded file,
// no set-up) or on PostgreSQL, with versioned schema migrations.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	_ "github.com/lib/pq"           // PostgreSQL driver "postgres"
	_ "github.com/mattn/go-sqlite3" // SQLite driver "sqlite3" (cgo)
	"github.com/rs/zerolog"
)

// Database types accepted in Config.Type.
const (
	TypeSQLite   = "sqlite"
	TypePostgres = "postgres"
)

// Defaults for the store's own timing.
const (
	defaultHeartbeat = 15 * time.Second // last_seen refresh of active calls
	writeTimeout     = 5 * time.Second  // bound on one record write
	sqliteBusyMillis = 5000
)

// Config says which database to open.
type Config struct {
	// Type is "sqlite" (default) or "postgres".
	Type string
	// URI is a file path (or "file:" URI) for SQLite, a postgres:// URL or a
	// key=value connection string for PostgreSQL.
	URI string
	// Log receives write failures; the zero value logs nothing.
	Log zerolog.Logger
	// Heartbeat is how often last_seen of this process's active calls is
	// refreshed, which bounds the error on an interrupted call's end time;
	// zero means 15s, negative turns it off.
	Heartbeat time.Duration
	// ReadOnly opens the store for reading records while a gateway may be
	// running on it (the cdr command): no migration (the schema must be
	// current), no marking of active calls as interrupted, no heartbeat.
	// A missing SQLite file is an error instead of a new database.
	ReadOnly bool
}

// Store is an open database. It is safe for concurrent use.
type Store struct {
	db      *sql.DB
	typ     string
	log     zerolog.Logger
	now     func() time.Time
	hbEvery time.Duration

	mu     sync.Mutex
	active map[string]struct{} // IDs of calls this process has started and not ended

	closeOnce sync.Once
	stop      chan struct{}
	wg        sync.WaitGroup
	closeErr  error
}

// Open opens the database, applies the schema migrations it lacks, marks the
// calls a previous process left active as interrupted and starts the
// last_seen heartbeat. It refuses a schema newer than this binary knows.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Type == "" {
		cfg.Type = TypeSQLite
	}
	if cfg.URI == "" {
		return nil, errors.New("store: empty database URI")
	}
	var (
		db  *sql.DB
		err error
	)
	switch cfg.Type {
	case TypeSQLite:
		if cfg.ReadOnly && !strings.HasPrefix(cfg.URI, "file:") {
			if _, err := os.Stat(cfg.URI); err != nil {
				return nil, fmt.Errorf("store: no database: %w", err)
			}
		}
		db, err = sql.Open("sqlite3", sqliteDSN(cfg.URI))
		if err == nil {
			// WAL lets readers run beside the one writer; busy_timeout
			// makes concurrent writers wait instead of failing.
			db.SetMaxOpenConns(8)
		}
	case TypePostgres:
		db, err = sql.Open("postgres", cfg.URI)
		if err == nil {
			db.SetMaxOpenConns(16)
			db.SetConnMaxIdleTime(5 * time.Minute)
		}
	default:
		return nil, fmt.Errorf("store: unknown database type %q (want sqlite or postgres)", cfg.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", cfg.Type, err)
	}
	s := &Store{
		db: db, typ: cfg.Type, log: cfg.Log, now: time.Now, hbEvery: cfg.Heartbeat,
		active: map[string]struct{}{}, stop: make(chan struct{}),
	}
	if s.hbEvery == 0 {
		s.hbEvery = defaultHeartbeat
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: connect to %s database %s: %w", cfg.Type, Redact(cfg.URI), err)
	}
	if cfg.ReadOnly {
		v, err := s.SchemaVersion(ctx)
		if err == nil && v != LatestVersion() {
			err = fmt.Errorf("store: the database schema is version %d, this gateway expects %d: start the gateway once to migrate it", v, LatestVersion())
		}
		if err != nil {
			_ = db.Close()
			return nil, err
		}
		return s, nil
	}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	if _, err := s.markInterrupted(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	if s.hbEvery > 0 {
		s.wg.Add(1)
		go s.heartbeat()
	}
	return s, nil
}

// Close stops the heartbeat and closes the database. It is idempotent. Calls
// still active keep their "active" state, so the next Open marks them
// interrupted.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// Type returns the database type, "sqlite" or "postgres".
func (s *Store) Type() string { return s.typ }

// sqliteDSN adds the connection settings the gateway relies on to a SQLite
// path or file: URI: WAL journal, foreign keys, a busy timeout, NORMAL sync
// (durable across process crashes in WAL mode) and immediate write
// transactions (no lock upgrade deadlocks).
func sqliteDSN(uri string) string {
	params := []string{
		"_journal_mode=WAL",
		"_foreign_keys=on",
		fmt.Sprintf("_busy_timeout=%d", sqliteBusyMillis),
		"_synchronous=NORMAL",
		"_txlock=immediate",
	}
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
	}
	return uri + sep + strings.Join(params, "&")
}

// Redact returns a database URI with any password replaced by "***", for logs
// and error messages. It handles URLs (postgres://u:pw@h/db) and key=value
// connection strings (password=pw).
func Redact(uri string) string {
	if u, err := url.Parse(uri); err == nil && u.Scheme != "" && (u.Host != "" || u.User != nil) {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "***")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "***")
			u.RawQuery = q.Encode()
		}
		return strings.Replace(u.String(), "%2A%2A%2A", "***", -1)
	}
	fields := strings.Fields(uri)
	changed := false
	for i, f := range fields {
		if k, _, ok := strings.Cut(f, "="); ok && strings.EqualFold(strings.TrimSpace(k), "password") {
			fields[i] = k + "=***"
			changed = true
		}
	}
	if changed {
		return strings.Join(fields, " ")
	}
	return uri
}

// ms converts a time to milliseconds since the epoch; NULL for the zero time.
func ms(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// fromMS converts milliseconds since the epoch back to a UTC time.
func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}
