package main

import (
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// database is what --db names: a PostgreSQL connection string, as a URL or
// as key/value pairs, or an SQLite file.
type database struct {
	postgres bool
	// conn is the PostgreSQL connection string, or the SQLite file's path.
	conn string
	// secrets are the forms of the password that conn holds, masked in
	// every message the command prints.
	secrets []string
	// label is conn with the password masked, for messages.
	label string
}

var (
	schemePattern   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)
	keyValuePattern = regexp.MustCompile(`^\s*[A-Za-z_]+\s*=`)
	passwordPattern = regexp.MustCompile(`(?i)password\s*=\s*('(?:[^'\\]|\\.)*'|[^&\s]+)`)
)

// parseDatabase tells what --db names. A URL scheme other than postgres://
// and postgresql:// is an error; text without a scheme is an SQLite path
// unless it is key/value pairs (host=... dbname=...).
func parseDatabase(s string) (*database, error) {
	var d *database
	switch {
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		d = &database{postgres: true, conn: s}
	case strings.HasPrefix(s, "sqlite:"):
		d = &database{conn: strings.TrimPrefix(strings.TrimPrefix(s, "sqlite:"), "//")}
	case schemePattern.MatchString(s):
		return nil, usagef("--db %s: unknown scheme %q; want postgres://..., postgresql://..., key/value pairs such as \"host=127.0.0.1 dbname=app\", sqlite:PATH or a path",
			maskAll(s, secretsOf(s)), s[:strings.Index(s, "://")])
	case keyValuePattern.MatchString(s):
		d = &database{postgres: true, conn: s}
	default:
		d = &database{conn: s}
	}
	if !d.postgres {
		if d.conn == "" {
			return nil, usagef("empty SQLite path in --db %q", s)
		}
		d.label = "sqlite:" + d.conn
		return d, nil
	}
	d.secrets = secretsOf(d.conn)
	d.label = d.mask(d.conn)
	if u, err := url.Parse(d.conn); err == nil && u.Scheme != "" {
		d.label = d.mask(u.Redacted())
	}
	return d, nil
}

// secretsOf returns the password of a PostgreSQL connection string, in
// every form it can take in the string and in messages about it.
func secretsOf(conn string) []string {
	var passwords []string
	if cfg, err := pgconn.ParseConfig(conn); err == nil && cfg.Password != "" {
		passwords = append(passwords, cfg.Password)
	}
	if u, err := url.Parse(conn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			passwords = append(passwords, p)
		}
	}
	for _, m := range passwordPattern.FindAllStringSubmatch(conn, -1) {
		passwords = append(passwords, strings.Trim(m[1], "'"))
	}
	var secrets []string
	for _, p := range passwords {
		for _, form := range []string{p, url.QueryEscape(p), url.PathEscape(p), url.UserPassword("", p).String()[1:]} {
			if form != "" {
				secrets = append(secrets, form)
			}
		}
	}
	return secrets
}

// mask replaces the password, in any of its forms, in s.
func (d *database) mask(s string) string { return maskAll(s, d.secrets) }

func maskAll(s string, secrets []string) string {
	for _, secret := range secrets {
		s = strings.ReplaceAll(s, secret, "xxxxx")
	}
	return s
}

// exists reports whether an SQLite database's file is there.
func (d *database) exists() bool {
	path := strings.TrimPrefix(d.conn, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	_, err := os.Stat(path)
	return err == nil
}
