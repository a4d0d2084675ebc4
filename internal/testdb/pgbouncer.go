package testdb

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PgBouncer is a PgBouncer of a test's own in front of the test
// PostgreSQL, in transaction pooling mode, on a free port of 127.0.0.1,
// stopped when the test ends. Debian's pgbouncer package provides it
// (scripts/ensure-pgbouncer.sh installs it).
type PgBouncer struct {
	Port   int
	target *pgx.ConnConfig
	cmd    *exec.Cmd
	ended  chan struct{}
	log    string
}

// URL is the test database's URL through the pooler, with pgx's
// default_query_exec_mode set to mode (cache_describe, exec or
// simple_protocol: a pooler in transaction mode cannot keep the named
// prepared statements of pgx's default mode), or without it when mode is
// empty (for lib/pq, whose statements are unnamed).
func (b *PgBouncer) URL(mode string) string {
	u := fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable",
		url.PathEscape(b.target.User), b.Port, url.PathEscape(b.target.Database))
	if mode != "" {
		u += "&default_query_exec_mode=" + mode
	}
	return u
}

// NewPgBouncer starts a PgBouncer. Where pgbouncer is not installed the
// test is skipped, except under CI=true, where it fails. PgBouncer refuses
// to run as root: a root test runs it as the postgres user.
func NewPgBouncer(tb testing.TB) *PgBouncer {
	tb.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/pgbouncer"); serr == nil {
			bin, err = "/usr/sbin/pgbouncer", nil
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("pgbouncer is required under CI=true (scripts/ensure-pgbouncer.sh installs it): %v", err)
		}
		tb.Skipf("pgbouncer is not installed: %v", err)
	}
	Pool(tb) // the database behind it is reachable, or skip / fail
	target, err := pgx.ParseConfig(URL())
	if err != nil {
		tb.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		tb.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "meowmx-pgbouncer-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	b := &PgBouncer{Port: port, target: target, log: filepath.Join(dir, "pgbouncer.log")}
	conf := filepath.Join(dir, "pgbouncer.ini")
	text := fmt.Sprintf(`[databases]
%s = host=%s port=%d dbname=%s user=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = any
pool_mode = transaction
max_client_conn = 500
default_pool_size = 40
logfile = %s
pidfile = %s
`, target.Database, target.Host, target.Port, target.Database, target.User, port, b.log, filepath.Join(dir, "pgbouncer.pid"))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		tb.Fatal(err)
	}
	b.cmd = exec.Command(bin, conf)
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			tb.Fatalf("pgbouncer does not run as root, and there is no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			tb.Fatal(err)
		}
		b.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	stderr := &Buffer{}
	b.cmd.Stdout, b.cmd.Stderr = stderr, stderr
	if err := b.cmd.Start(); err != nil {
		tb.Fatalf("start pgbouncer: %v", err)
	}
	b.ended = make(chan struct{})
	go func(cmd *exec.Cmd, ended chan struct{}) { _ = cmd.Wait(); close(ended) }(b.cmd, b.ended)
	tb.Cleanup(b.stop)
	deadline := time.Now().Add(StallTimeout())
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			conn.Close()
			return b
		}
		select {
		case <-b.ended:
			logText, _ := os.ReadFile(b.log)
			tb.Fatalf("pgbouncer exited at start: %s%s", stderr.String(), logText)
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pgbouncer does not accept connections: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop shuts the pooler down at once (SIGTERM) and waits for it to end.
func (b *PgBouncer) stop() {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.ended:
	case <-time.After(StallTimeout()):
		_ = b.cmd.Process.Kill()
		<-b.ended
	}
}
