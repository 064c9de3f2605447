package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// A throwaway PostgreSQL cluster for the tests, started on first use in a
// temporary directory, reachable only on a unix socket, stopped by TestMain.
var pg struct {
	once    sync.Once
	dir     string // cluster root: data/, sock/, log
	sock    string
	err     error
	cred    *syscall.Credential // run as the postgres user when we are root
	binDir  string
	started bool
	dbs     atomic.Int32
}

// pgBinDir finds the PostgreSQL server binaries of the Debian package.
func pgBinDir() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", fmt.Errorf("no PostgreSQL server (initdb) found: install the Debian package postgresql")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

func pgCmd(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pg.binDir, name), args...)
	cmd.Dir = pg.dir
	if pg.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

func startPostgres() error {
	bin, err := pgBinDir()
	if err != nil {
		return err
	}
	pg.binDir = bin
	pg.dir, err = os.MkdirTemp("", "gateway-pg-")
	if err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root: the cluster belongs to "postgres".
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		pg.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(pg.dir, uid, gid); err != nil {
			return err
		}
	}
	pg.sock = filepath.Join(pg.dir, "sock")
	if out, err := pgCmd("initdb", "-D", "data", "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if err := os.Mkdir(pg.sock, 0o700); err != nil {
		return err
	}
	if pg.cred != nil {
		if err := os.Chown(pg.sock, int(pg.cred.Uid), int(pg.cred.Gid)); err != nil {
			return err
		}
	}
	conf := fmt.Sprintf("\nlisten_addresses = ''\nunix_socket_directories = '%s'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n", pg.sock)
	f, err := os.OpenFile(filepath.Join(pg.dir, "data", "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if out, err := pgCmd("pg_ctl", "-D", "data", "-l", "log", "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		logText, _ := os.ReadFile(filepath.Join(pg.dir, "log"))
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, logText)
	}
	pg.started = true
	return nil
}

// stopPostgres stops the cluster and removes its files.
func stopPostgres() {
	if pg.started {
		_ = pgCmd("pg_ctl", "-D", "data", "-m", "immediate", "-w", "-t", "30", "stop").Run()
	}
	if pg.dir != "" {
		_ = os.RemoveAll(pg.dir)
	}
}

// pgConfig gives the test a fresh database in the shared cluster. Without a
// PostgreSQL server the test fails, unless GATEWAY_SKIP_PEERS=1 skips it.
func pgConfig(t *testing.T) Config {
	t.Helper()
	pg.once.Do(func() { pg.err = startPostgres() })
	if pg.err != nil {
		if os.Getenv("GATEWAY_SKIP_PEERS") == "1" {
			t.Skipf("PostgreSQL not available (GATEWAY_SKIP_PEERS=1): %v", pg.err)
		}
		t.Fatalf("PostgreSQL not available (set GATEWAY_SKIP_PEERS=1 to skip): %v", pg.err)
	}
	admin, err := sql.Open("postgres", pgDSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := fmt.Sprintf("gwtest_%d", pg.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return Config{Type: TypePostgres, URI: pgDSN(name)}
}

func pgDSN(db string) string {
	return fmt.Sprintf("host=%s port=5432 user=postgres dbname=%s sslmode=disable", pg.sock, db)
}
