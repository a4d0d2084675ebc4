package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Cluster is a PostgreSQL cluster of a test's own, on a port of its own,
// with trust authentication and a "test" database, removed when the test
// ends. A test that restarts a cluster, restores into one or replicates one
// uses it, never the shared one.
type Cluster struct {
	Version string
	Name    string
	Port    int
	// dataDir is set for a standby (NewStandby), which pg_ctl runs
	// outside Debian's cluster registry.
	dataDir string
}

// URL is the cluster's "test" database.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test?sslmode=disable", c.Port)
}

// NewCluster creates and starts a cluster with pg_createcluster (Debian's
// postgresql-common, as root). Where that is not possible the test is
// skipped, except under CI=true, where it fails.
func NewCluster(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := newCluster()
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("cannot create a PostgreSQL cluster (required under CI=true): %v", err)
		}
		tb.Skipf("cannot create a PostgreSQL cluster: %v", err)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("pg_dropcluster", "--stop", c.Version, c.Name).CombinedOutput(); err != nil {
			tb.Errorf("pg_dropcluster %s: %v: %s", c.Name, err, out)
		}
	})
	return c
}

func newCluster() (*Cluster, error) {
	if _, err := exec.LookPath("pg_createcluster"); err != nil {
		return nil, err
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(versions) == 0 {
		return nil, fmt.Errorf("no PostgreSQL server binaries under /usr/lib/postgresql")
	}
	sort.Strings(versions)
	version := filepath.Base(filepath.Dir(filepath.Dir(versions[len(versions)-1])))
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	c := &Cluster{Version: version, Name: "meowmx_test_" + hex.EncodeToString(b[:]), Port: port}
	if err := c.run("pg_createcluster", c.Version, c.Name, "--port", fmt.Sprint(port),
		"--", "--auth=trust", "--no-sync"); err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		_ = c.run("pg_dropcluster", c.Version, c.Name)
		return nil, err
	}
	if err := c.Psql("postgres", "CREATE DATABASE test"); err != nil {
		_ = c.run("pg_dropcluster", "--stop", c.Version, c.Name)
		return nil, err
	}
	return c, nil
}

// NewStandby creates a hot standby of primary: a server of its own on a
// port of its own, its data copied with pg_basebackup -R into a temporary
// directory so that it streams and replays primary's WAL, started and
// accepting read-only connections. It stays out of Debian's cluster
// registry (pg_lsclusters), whose wrappers of psql and pg_dump other tests
// run meanwhile, and which a data directory being copied would upset. It is
// stopped and removed when the test ends (before primary, created first).
// Failures skip or fail the test as NewCluster's do.
func NewStandby(tb testing.TB, primary *Cluster) *Cluster {
	tb.Helper()
	c, err := newStandby(primary)
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("cannot create a standby (required under CI=true): %v", err)
		}
		tb.Skipf("cannot create a standby: %v", err)
	}
	tb.Cleanup(func() {
		if err := c.drop(); err != nil {
			tb.Errorf("removing the standby: %v", err)
		}
	})
	return c
}

func newStandby(primary *Cluster) (*Cluster, error) {
	owner, err := user.Lookup("postgres")
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(owner.Uid)
	gid, _ := strconv.Atoi(owner.Gid)
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "meowmx-standby-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Version: primary.Version, Name: filepath.Base(dir), Port: port, dataDir: filepath.Join(dir, "data")}
	fail := func(err error) (*Cluster, error) {
		_ = c.drop()
		return nil, err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return fail(err)
	}
	if err := c.run("runuser", "-u", "postgres", "--", c.bin("pg_basebackup"),
		"-h", "127.0.0.1", "-p", fmt.Sprint(primary.Port), "-U", "postgres",
		"-D", c.dataDir, "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"); err != nil {
		return fail(err)
	}
	// Debian keeps a cluster's configuration out of its data directory:
	// the copy has none of it.
	files := map[string]string{
		"postgresql.conf": fmt.Sprintf("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nhot_standby = on\nfsync = off\n", port, dir),
		"pg_hba.conf":     "local all all trust\nhost all all 127.0.0.1/32 trust\nlocal replication all trust\nhost replication all 127.0.0.1/32 trust\n",
		"pg_ident.conf":   "",
	}
	for name, content := range files {
		path := filepath.Join(c.dataDir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			return fail(err)
		}
		if err := os.Chown(path, uid, gid); err != nil {
			return fail(err)
		}
	}
	if err := c.Start(); err != nil {
		return fail(err)
	}
	return c, nil
}

// drop stops a standby at once and removes its directory.
func (c *Cluster) drop() error {
	if _, err := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); err == nil {
		if err := c.run("runuser", "-u", "postgres", "--", c.bin("pg_ctl"), "-D", c.dataDir, "-m", "immediate", "-w", "stop"); err != nil {
			return err
		}
	}
	return os.RemoveAll(filepath.Dir(c.dataDir))
}

// bin is the path of one of the cluster's version's programs, called
// directly rather than through Debian's wrappers.
func (c *Cluster) bin(name string) string {
	path := filepath.Join("/usr/lib/postgresql", c.Version, "bin", name)
	if _, err := os.Stat(path); err != nil {
		return name
	}
	return path
}

// Start starts the cluster and waits until it accepts connections.
func (c *Cluster) Start() error {
	start := []string{"pg_ctlcluster", "--skip-systemctl-redirect", c.Version, c.Name, "start"}
	if c.dataDir != "" {
		start = []string{"runuser", "-u", "postgres", "--", c.bin("pg_ctl"), "-D", c.dataDir, "-l", filepath.Join(c.dataDir, "server.log"), "start"}
	}
	if err := c.run(start[0], start[1:]...); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for c.run(c.bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", fmt.Sprint(c.Port)) != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster %s did not accept connections", c.Name)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// Stop stops the cluster (fast shutdown).
func (c *Cluster) Stop() error {
	if c.dataDir != "" {
		return c.run("runuser", "-u", "postgres", "--", c.bin("pg_ctl"), "-D", c.dataDir, "-m", "fast", "-w", "stop")
	}
	return c.run("pg_ctlcluster", "--skip-systemctl-redirect", c.Version, c.Name, "stop", "-m", "fast")
}

// Psql runs SQL in database db of the cluster, stopping at the first error.
func (c *Cluster) Psql(db, sql string) error {
	return c.run(c.bin("psql"), "-h", "127.0.0.1", "-p", fmt.Sprint(c.Port), "-U", "postgres", "-d", db,
		"-v", "ON_ERROR_STOP=1", "-q", "-c", sql)
}

// RestoreSchema copies schema from the database at fromURL into the
// cluster's test database with pg_dump and psql, as an operator moving a
// store would.
func (c *Cluster) RestoreSchema(ctx context.Context, fromURL, schema string) error {
	// The versioned programs, not Debian's wrappers, which look at every
	// cluster of the machine and fail on one another test is creating.
	dump := exec.CommandContext(ctx, c.bin("pg_dump"), "--no-owner", "-n", schema, fromURL)
	restore := exec.CommandContext(ctx, c.bin("psql"), "-h", "127.0.0.1", "-p", fmt.Sprint(c.Port), "-U", "postgres", "-d", "test",
		"-v", "ON_ERROR_STOP=1", "-q", "-o", os.DevNull)
	pipe, err := dump.StdoutPipe()
	if err != nil {
		return err
	}
	restore.Stdin = pipe
	var dumpErr, restoreErr strings.Builder
	dump.Stderr, restore.Stderr = &dumpErr, &restoreErr
	if err := dump.Start(); err != nil {
		return err
	}
	if err := restore.Run(); err != nil {
		_ = dump.Wait()
		return fmt.Errorf("psql: %v: %s", err, restoreErr.String())
	}
	if err := dump.Wait(); err != nil {
		return fmt.Errorf("pg_dump: %v: %s", err, dumpErr.String())
	}
	return nil
}

func (c *Cluster) run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Counter returns the next transaction id of pool's cluster.
func Counter(tb testing.TB, pool *pgxpool.Pool) uint64 {
	tb.Helper()
	var xmax uint64
	if err := pool.QueryRow(context.Background(), `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint`).Scan(&xmax); err != nil {
		tb.Fatal(err)
	}
	return xmax
}

// AdvanceCounter runs transactions on pool's cluster until its transaction
// counter has passed target.
func AdvanceCounter(tb testing.TB, pool *pgxpool.Pool, target uint64) {
	tb.Helper()
	now := Counter(tb, pool)
	if now > target {
		return
	}
	conn, err := pool.Acquire(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Release()
	// One statement at a time: a DO block may commit only outside a
	// transaction block, which a multi-statement query is.
	for _, sql := range []string{
		`SET synchronous_commit = off`,
		fmt.Sprintf(`DO $$ BEGIN FOR i IN 1..%d LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$`, target-now+1),
		`RESET synchronous_commit`,
	} {
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			tb.Fatal(err)
		}
	}
}
