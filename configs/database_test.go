package configs

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestDatabaseDefaultsAndPaths(t *testing.T) {
	cfg := mustValid(t)
	if cfg.Database.Type != "sqlite" || cfg.Database.URI.Reveal() != "/etc/gateway/gateway.db" {
		t.Errorf("default database = %+v, want sqlite at /etc/gateway/gateway.db", cfg.Database)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"database:\n  uri: data/cdr.db\n", "/etc/gateway/data/cdr.db"},
		{"database:\n  uri: /var/lib/gw/cdr.db\n", "/var/lib/gw/cdr.db"},
		{"database:\n  uri: file:cdr.db?cache=shared\n", "file:cdr.db?cache=shared"},
		{"database:\n  type: postgres\n  uri: postgres://gw@db/gw\n", "postgres://gw@db/gw"},
	} {
		cfg, err := Parse([]byte(withKeys(tc.yaml)), "/etc/gateway")
		if err != nil {
			t.Errorf("%q: %v", tc.yaml, err)
			continue
		}
		if got := cfg.Database.URI.Reveal(); got != tc.want {
			t.Errorf("%q: uri = %q, want %q", tc.yaml, got, tc.want)
		}
	}
}

func TestDatabaseValidation(t *testing.T) {
	for _, tc := range []struct{ yaml, msg string }{
		{"database:\n  type: mysql\n", "one of"},
		{"database:\n  uri: \"\"\n", "required"},
		{"database:\n  uri: \":memory:\"\n", "in-memory"},
		{"database:\n  type: postgres\n  uri: gateway.db\n", "postgres:// URL or a key=value"},
		{"database:\n  type: postgres\n  uri: postgres:///gw\n", "needs a host"},
	} {
		_, err := Parse([]byte(withKeys(tc.yaml)), "/etc/gateway")
		problems := problemsOf(t, err)
		if _, ok := findProblem(problems, fieldOf(tc.yaml), tc.msg); !ok {
			t.Errorf("%q: no problem %q at %s in %v", tc.yaml, tc.msg, fieldOf(tc.yaml), problems)
		}
	}
	for _, ok := range []string{
		"database:\n  type: postgres\n  uri: postgres://gw:pw@db.internal:5432/gw?sslmode=require\n",
		"database:\n  type: postgres\n  uri: host=/run/postgresql dbname=gw user=gw\n",
		"database:\n  type: postgres\n  uri: postgresql:///gw?host=/run/postgresql\n",
	} {
		if _, err := Parse([]byte(withKeys(ok)), "/etc/gateway"); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

// fieldOf names the database key a test case is about: uri unless only the
// type is set.
func fieldOf(y string) string {
	if !strings.Contains(y, "uri:") {
		return "database.type"
	}
	return "database.uri"
}

func TestDatabasePasswordNeverPrinted(t *testing.T) {
	for _, uri := range []string{
		"postgres://gw:hunter2@db.example.org/gw?sslmode=disable",
		"postgres://db.example.org/gw?user=gw&password=hunter2",
		"host=db user=gw password=hunter2 dbname=gw",
	} {
		d := DatabaseConfig{Type: "postgres", URI: DatabaseURI(uri)}
		j, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{fmt.Sprint(d), fmt.Sprintf("%+v", d), fmt.Sprintf("%#v", d), d.URI.String(), string(j)} {
			if strings.Contains(s, "hunter2") {
				t.Errorf("password printed: %s", s)
			}
			if !strings.Contains(s, "***") {
				t.Errorf("no redaction marker in %s", s)
			}
		}
		if d.URI.Reveal() != uri {
			t.Errorf("Reveal = %q", d.URI.Reveal())
		}
	}
	// A bad postgres URI in a validation problem does not show its password.
	_, err := Parse([]byte(withKeys("database:\n  type: postgres\n  uri: \"postgres://gw:hunter2@/gw\"\n")), "/etc/gateway")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("problem missing or shows the password: %v", err)
	}
}
