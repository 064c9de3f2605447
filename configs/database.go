package configs

import (
	"net/url"
	"path/filepath"
	"strings"
)

// DatabaseConfig says where the gateway keeps call records and the DM room
// of each (phone number, Matrix user) pair.
type DatabaseConfig struct {
	// Type is "sqlite" (an embedded file, no set-up) or "postgres".
	Type string `yaml:"type"`
	// URI is the SQLite file (relative paths are resolved against the config
	// file's directory by Load and Parse) or a PostgreSQL URL
	// (postgres://user:password@host/db?sslmode=...) or key=value string.
	// Its password is never printed.
	URI DatabaseURI `yaml:"uri"`
}

// DatabaseURI is a database connection string whose password, if any, is
// never printed: fmt and JSON show it as "***".
type DatabaseURI string

// String returns the URI with its password replaced by "***".
func (u DatabaseURI) String() string { return redactURI(string(u)) }

// GoString keeps %#v from revealing the password.
func (u DatabaseURI) GoString() string { return `"` + u.String() + `"` }

// MarshalJSON keeps structured loggers from revealing the password.
func (u DatabaseURI) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strings.ReplaceAll(u.String(), `"`, `\"`) + `"`), nil
}

// Reveal returns the full URI, for the code that connects.
func (u DatabaseURI) Reveal() string { return string(u) }

// redactURI hides the password of a URL (user:pw@, ?password=) or of a
// key=value connection string (password=pw).
func redactURI(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && (u.Host != "" || u.User != nil) {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "***")
		}
		if q := u.Query(); q.Has("password") {
			q.Set("password", "***")
			u.RawQuery = q.Encode()
		}
		return strings.ReplaceAll(u.String(), "%2A%2A%2A", "***")
	}
	fields := strings.Fields(s)
	for i, f := range fields {
		if k, _, ok := strings.Cut(f, "="); ok && strings.EqualFold(k, "password") {
			fields[i] = k + "=***"
			s = strings.Join(fields, " ")
		}
	}
	return s
}

// resolve makes a relative SQLite path absolute against baseDir.
func (d *DatabaseConfig) resolve(baseDir string) {
	p := string(d.URI)
	if d.Type != "sqlite" || baseDir == "" || p == "" || filepath.IsAbs(p) ||
		strings.HasPrefix(p, "file:") || strings.HasPrefix(p, ":memory:") {
		return
	}
	d.URI = DatabaseURI(filepath.Join(baseDir, p))
}

// validateDatabase checks the database section.
func (c *Config) validateDatabase(v *validator) {
	d := c.Database
	v.oneOf("database.type", d.Type, "sqlite", "postgres")
	uri := string(d.URI)
	if strings.TrimSpace(uri) == "" {
		v.bad("database.uri", "required: a SQLite file like gateway.db, or a postgres:// URL")
		return
	}
	switch d.Type {
	case "sqlite":
		if strings.Contains(uri, ":memory:") || strings.Contains(uri, "mode=memory") {
			v.bad("database.uri", "an in-memory SQLite database loses every call record at exit; use a file")
		}
	case "postgres":
		if u, err := url.Parse(uri); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
			if u.Host == "" && !u.Query().Has("host") {
				v.bad("database.uri", "a postgres:// URL needs a host, got %q", d.URI.String())
			}
		} else if !strings.Contains(uri, "=") {
			v.bad("database.uri", "must be a postgres:// URL or a key=value connection string, got %q", d.URI.String())
		}
	}
}
