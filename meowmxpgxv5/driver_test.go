package meowmxpgxv5_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/internal/jsoncheck"
	"github.com/meowmx/meowmx/internal/testdb"
	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxpgxv5"
	"github.com/meowmx/meowmx/meowmxtype"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func newStore(t testing.TB, pool *pgxpool.Pool) *meowmx.Store[pgx.Tx] {
	t.Helper()
	store, err := meowmx.New(meowmxpgxv5.New(pool), &meowmx.Config{Schema: testdb.SchemaName(t), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return store
}

var data = json.RawMessage(`{"n":1}`)

// configuredPool returns a pool on the test database, set up by configure,
// closed when the test ends.
func configuredPool(t testing.TB, configure func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	testdb.Pool(t) // reachable, or skip / fail
	cfg, err := pgxpool.ParseConfig(testdb.URL())
	if err != nil {
		t.Fatal(err)
	}
	configure(cfg)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// beginWithPID begins a transaction on pool, rolled back at the test's end
// if still open, and returns it with its backend's pid.
func beginWithPID(t *testing.T, pool *pgxpool.Pool) (pgx.Tx, int) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	var pid int
	if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return tx, pid
}

// TestTransactionTooOld: a caller's transaction that took its id before
// another writer appended to a stream cannot append to that stream, because
// its events would come before the other writer's in the global order.
func TestTransactionTooOld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	store := newStore(t, pool)
	stream := meowmx.NewStream("order", "1")
	if _, err := store.Append(ctx, stream, meowmx.NoStream, meowmx.Event{Type: "Placed", Data: data}); err != nil {
		t.Fatal(err)
	}

	early, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Rollback(ctx)
	var xid string
	if err := early.QueryRow(ctx, `SELECT pg_current_xact_id()::text`).Scan(&xid); err != nil {
		t.Fatal(err)
	}

	// A later transaction appends to the stream and commits.
	if _, err := store.Append(ctx, stream, 0, meowmx.Event{Type: "Paid", Data: data}); err != nil {
		t.Fatal(err)
	}

	_, err = store.AppendTx(ctx, early, stream, 1, meowmx.Event{Type: "Shipped", Data: data})
	if !errors.Is(err, meowmx.ErrTransactionTooOld) || !meowmx.IsRetryable(err) {
		t.Fatalf("append in a transaction older than the stream's last write: err = %v, want ErrTransactionTooOld", err)
	}
	if err := early.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := store.StreamVersion(ctx, stream); v != 1 {
		t.Fatalf("version = %d, want 1: the refused append wrote", v)
	}

	// Retried in a new transaction, it succeeds, in order.
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := store.AppendTx(ctx, tx, stream, 1, meowmx.Event{Type: "Shipped", Data: data})
		return err
	})
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	events, err := store.ReadCategory(ctx, "order", meowmx.Start, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range events {
		if e.Version != int64(i) {
			t.Fatalf("global order puts version %d at %d", e.Version, i)
		}
	}
}

// TestHorizonReportsHolder: an open transaction holding an id is reported
// (or an older one, from another test).
func TestHorizonReportsHolder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	store := newStore(t, pool)

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var (
		pid int
		xid string
	)
	if err := tx.QueryRow(ctx, `SELECT pg_backend_pid(), pg_current_xact_id()::xid::text`).Scan(&pid, &xid); err != nil {
		t.Fatal(err)
	}
	ours, _ := strconv.ParseUint(xid, 10, 64)

	held, err := store.Horizon(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if held == nil {
		t.Fatal("no horizon holder reported while a transaction holds an id")
	}
	if held.TransactionID > ours {
		t.Fatalf("reported transaction %d, younger than the open %d", held.TransactionID, ours)
	}
	if held.TransactionID == ours && (held.PID != pid || held.Age <= 0) {
		t.Fatalf("reported %+v for our transaction (pid %d)", held, pid)
	}
}

type queryCounter struct{ n, notifies, looks, clusterChecks atomic.Int64 }

func (q *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	switch {
	case strings.Contains(data.SQL, "pg_notify"):
		q.notifies.Add(1)
	case strings.Contains(data.SQL, "alive_until > now()"):
		q.looks.Add(1)
	case strings.Contains(data.SQL, "pg_control_system()"):
		q.clusterChecks.Add(1) // at most one per connection per few seconds

	default:
		q.n.Add(1)
	}
	return ctx
}
func (q *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestAppendIsOneStatement: Append, even of a batch just below the COPY
// threshold with an expected version, sends one statement; the notification for other processes would
// go after it, outside its transaction, but with no subscription worker
// alive none is sent, after a look (one per second at most).
func TestAppendIsOneStatement(t *testing.T) {
	t.Parallel()
	counter := &queryCounter{}
	pool := configuredPool(t, func(cfg *pgxpool.Config) {
		cfg.ConnConfig.Tracer = counter
		cfg.MaxConns = 1
	})
	store := newStore(t, pool)
	ctx := context.Background()

	batch := make([]meowmx.Event, meowmxpgxv5.CopyThreshold-1)
	for i := range batch {
		batch[i] = meowmx.Event{Type: "Row", Data: data}
	}
	for i, expected := range []meowmx.ExpectedVersion{meowmx.NoStream, meowmx.ExpectedVersion(len(batch) - 1), meowmx.Any, meowmx.StreamExists} {
		before := counter.n.Load()
		if _, err := store.Append(ctx, meowmx.NewStream("bulk", "1"), expected, batch...); err != nil {
			t.Fatal(err)
		}
		if n := counter.n.Load() - before; n != 1 {
			t.Fatalf("append %d sent %d statements, want 1", i, n)
		}
	}
	if err := store.Close(); err != nil { // waits for the notifications
		t.Fatal(err)
	}
	// The look is trusted for a second: on a busy machine the appends can
	// take longer, and the store looks again, once per append at most.
	if n, looks := counter.notifies.Load(), counter.looks.Load(); n != 0 || looks < 1 || looks > 4 {
		t.Fatalf("4 appends with no subscription alive sent %d notifications after %d looks for workers, want none after 1 to 4", n, looks)
	}
}

// TestConnectionLostMidAppend: a connection terminated while its append
// runs leaves nothing half-written.
func TestTerminatedAppendWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	store := newStore(t, pool)
	stream := meowmx.NewStream("order", "x")

	tx, pid := beginWithPID(t, pool)
	batch := make([]meowmx.Event, 500)
	for i := range batch {
		batch[i] = meowmx.Event{Type: "Row", Data: data}
	}
	if _, err := store.AppendTx(ctx, tx, stream, meowmx.NoStream, batch...); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("commit on a terminated connection succeeded")
	}
	if v, err := store.StreamVersion(ctx, stream); err != nil || v != -1 {
		t.Fatalf("version after a lost transaction = %d (%v), want -1", v, err)
	}
	// The pool recovers and the store keeps working.
	if _, err := store.Append(ctx, stream, meowmx.NoStream, batch...); err != nil {
		t.Fatal(err)
	}
}

// TestAppendRaces: appends racing an uncommitted append to the same stream
// wait for it, then: Append with Any appends after it; Append of the same
// event ID at the same place is an idempotent retry; AppendTx, whose
// transaction the race aborted, returns a retryable error with Any and a
// version conflict with an exact version.
func TestAppendRaces(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	store := newStore(t, pool)

	// first appends in a transaction, runs race while it is open, then
	// commits, and returns what race returned.
	first := func(t *testing.T, stream meowmx.Stream, ev meowmx.Event, race func() ([]meowmx.RecordedEvent, error)) ([]meowmx.RecordedEvent, []meowmx.RecordedEvent, error) {
		t.Helper()
		tx, pid := beginWithPID(t, pool)
		recorded, err := store.AppendTx(ctx, tx, stream, meowmx.NoStream, ev)
		if err != nil {
			t.Fatal(err)
		}
		type outcome struct {
			got []meowmx.RecordedEvent
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			got, err := race()
			done <- outcome{got, err}
		}()
		// The race is on once the racing append waits for the first's
		// transaction.
		testdb.Eventually(t, func() (bool, string) {
			select {
			case o := <-done:
				t.Fatalf("the racing append returned before the first committed: %v, %v", o.got, o.err)
			default:
			}
			var blocked int
			if err := testdb.Pool(t).QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, pid).Scan(&blocked); err != nil {
				t.Fatal(err)
			}
			return blocked > 0, fmt.Sprintf("%d backends wait for the first append's transaction", blocked)
		})
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		o := testdb.Recv(t, done, "the racing append")
		return recorded, o.got, o.err
	}

	t.Run("Append with Any", func(t *testing.T) {
		stream := meowmx.NewStream("race", "any")
		_, got, err := first(t, stream, meowmx.Event{Type: "A", Data: data}, func() ([]meowmx.RecordedEvent, error) {
			return store.Append(ctx, stream, meowmx.Any, meowmx.Event{Type: "B", Data: data})
		})
		if err != nil || got[0].Version != 1 {
			t.Fatalf("Append with Any after a race: %v, %+v; want version 1", err, got)
		}
	})
	t.Run("Append of the same event", func(t *testing.T) {
		stream := meowmx.NewStream("race", "same")
		ev := meowmx.Event{ID: uuid.New(), Type: "A", Data: data}
		recorded, got, err := first(t, stream, ev, func() ([]meowmx.RecordedEvent, error) {
			return store.Append(ctx, stream, meowmx.NoStream, ev)
		})
		if err != nil || len(got) != 1 || got[0].Position != recorded[0].Position {
			t.Fatalf("retry of an append racing it: %v, %+v; want the first's %+v", err, got, recorded)
		}
	})
	t.Run("Append with an exact version", func(t *testing.T) {
		stream := meowmx.NewStream("race", "exact")
		_, _, err := first(t, stream, meowmx.Event{Type: "A", Data: data}, func() ([]meowmx.RecordedEvent, error) {
			return store.Append(ctx, stream, meowmx.NoStream, meowmx.Event{Type: "B", Data: data})
		})
		var vc *meowmx.VersionConflictError
		if !errors.As(err, &vc) || vc.Actual != 0 {
			t.Fatalf("Append of a version taken meanwhile: %v; want a conflict at version 0", err)
		}
	})
	for _, expected := range []meowmx.ExpectedVersion{meowmx.Any, meowmx.NoStream} {
		t.Run(fmt.Sprintf("AppendTx expecting %s", expected), func(t *testing.T) {
			stream := meowmx.NewStream("race", fmt.Sprint("tx", int64(expected)))
			_, _, err := first(t, stream, meowmx.Event{Type: "A", Data: data}, func() ([]meowmx.RecordedEvent, error) {
				tx, err := pool.Begin(ctx)
				if err != nil {
					return nil, err
				}
				defer tx.Rollback(ctx)
				return store.AppendTx(ctx, tx, stream, expected, meowmx.Event{Type: "B", Data: data})
			})
			var vc *meowmx.VersionConflictError
			switch {
			case expected == meowmx.Any && !(meowmx.IsRetryable(err) && errors.Is(err, meowmx.ErrSerialization)):
				t.Fatalf("AppendTx with Any losing a race: %v; want a retryable ErrSerialization", err)
			case expected != meowmx.Any && (!errors.As(err, &vc) || vc.Actual != 0):
				t.Fatalf("AppendTx losing a race: %v; want a conflict at version 0", err)
			}
		})
	}
	if v, err := store.StreamVersion(ctx, meowmx.NewStream("race", "same")); err != nil || v != 0 {
		t.Fatalf("the idempotent retry wrote: version %d, %v", v, err)
	}
}

// TestJSONRulesMatchPostgres: every document the store's JSON check accepts,
// PostgreSQL's jsonb accepts, and every one it refuses, jsonb refuses too
// (but for the nesting limit, which is stricter than the server's default).
func TestJSONRulesMatchPostgres(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	ctx := context.Background()
	for _, tc := range jsoncheck.Cases {
		var n int
		err := pool.QueryRow(ctx, `SELECT length($1::text::jsonb::text)`, tc.JSON).Scan(&n)
		if (err == nil) != tc.Valid {
			t.Errorf("jsonb(%.60q): %v; the store's check says valid=%v", tc.JSON, err, tc.Valid)
		}
	}
}

// TestDataExceptionsAreInvalidInput: a value the server refuses (here a NUL
// byte in a text parameter, sent past the store's own checks) is
// ErrInvalidInput from the driver, not a raw SQLSTATE.
func TestDataExceptionsAreInvalidInput(t *testing.T) {
	t.Parallel()
	store := newStore(t, testdb.Pool(t))
	_, err := store.Driver().Executor().ReadGlobal(context.Background(), &meowmxdriver.ReadGlobalParams{
		Schema: store.Schema(), Types: []string{"a\x00b"}, Limit: 1,
	})
	if !errors.Is(err, meowmxtype.ErrInvalidInput) {
		t.Fatalf("a NUL byte in a text parameter: err = %v, want meowmxtype.ErrInvalidInput", err)
	}
}
