package meowmxpgxv5

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

// subscriptionStatements holds the subscription SQL of one schema.
type subscriptionStatements struct {
	initLock, initInsert, rows                        string
	heartbeat, removeWorker, claim, release, advance  string
	readSubAll, readSubCategory, readSubCategories    string
	endPosition, lastPosition, reset, list, lag, park string
	parked, replay, pending                           string
	unpark, workersAlive                              string
}

const subColumns = `name, partition, partitions, categories, types, transaction_id, seq, generation, coalesce(owner, ''), lease_until, updated_at`

// partitionFilter keeps the events of one partition; $5 partitions, $6 partition.
const partitionFilter = `($5::int <= 1 OR stream_hash % $5::int = $6::int)`

func newSubscriptionStatements(r func(string) string) subscriptionStatements {
	readSub := func(categoryFilter string) string {
		return r(`SELECT ` + eventColumns + ` FROM {{schema}}.events
 WHERE (transaction_id, seq) > ($1, $2) AND ` + visible + `
   AND ` + categoryFilter + `
   AND (cardinality($4::text[]) = 0 OR type = ANY($4::text[]))
   AND ` + partitionFilter + `
 ORDER BY transaction_id, seq
 LIMIT $7`)
	}
	return subscriptionStatements{
		initLock: `SELECT pg_advisory_xact_lock(hashtextextended('meowmx.subscription.' || $1::text || '.' || $2::text, 0))`,
		initInsert: r(`INSERT INTO {{schema}}.subscriptions (name, partition, partitions, categories, types, transaction_id, seq)
SELECT $1, p, $2, $3, $4, $5, $6 FROM generate_series(0, $2::int - 1) AS p
 WHERE NOT EXISTS (SELECT 1 FROM {{schema}}.subscriptions WHERE name = $1)`),
		rows: r(`SELECT ` + subColumns + `, 0::bigint FROM {{schema}}.subscriptions WHERE name = $1 ORDER BY partition`),
		heartbeat: r(`WITH up AS (
    INSERT INTO {{schema}}.subscription_workers (name, worker, alive_until) VALUES ($1, $2, now() + $3::interval)
    ON CONFLICT (name, worker) DO UPDATE SET alive_until = excluded.alive_until
), gone AS (
    DELETE FROM {{schema}}.subscription_workers WHERE name = $1 AND worker <> $2 AND alive_until < now()
)
SELECT worker FROM {{schema}}.subscription_workers WHERE name = $1 AND worker <> $2 AND alive_until >= now()
UNION ALL SELECT $2
ORDER BY 1`),
		workersAlive: r(`SELECT EXISTS (SELECT FROM {{schema}}.subscription_workers WHERE alive_until > now())`),
		removeWorker: r(`WITH gone AS (
    DELETE FROM {{schema}}.subscription_workers WHERE name = $1 AND worker = $2
)
UPDATE {{schema}}.subscriptions SET owner = NULL, lease_until = NULL WHERE name = $1 AND owner = $2`),
		claim: r(`WITH renewed AS (
    UPDATE {{schema}}.subscriptions SET lease_until = now() + $4::interval
     WHERE name = $1 AND owner = $2
    RETURNING ` + subColumns + `
), free AS (
    SELECT partition FROM {{schema}}.subscriptions
     WHERE name = $1 AND (owner IS NULL OR (owner <> $2 AND lease_until < now()))
     ORDER BY partition
     LIMIT greatest($3::int - (SELECT count(*) FROM renewed), 0)
     FOR UPDATE SKIP LOCKED
), taken AS (
    UPDATE {{schema}}.subscriptions s SET owner = $2, lease_until = now() + $4::interval
      FROM free WHERE s.name = $1 AND s.partition = free.partition
    RETURNING ` + subColumnsOf("s") + `
)
SELECT *, 0::bigint FROM renewed UNION ALL SELECT *, 0::bigint FROM taken`),
		release: r(`UPDATE {{schema}}.subscriptions SET owner = NULL, lease_until = NULL
 WHERE name = $1 AND owner = $2 AND partition = ANY($3::int[])`),
		advance: r(`UPDATE {{schema}}.subscriptions
   SET transaction_id = $5, seq = $6, lease_until = now() + $7::interval, updated_at = now()
 WHERE name = $1 AND partition = $2 AND owner = $3 AND generation = $4`),
		readSubAll:        readSub(`($3::text[] IS NOT NULL)`),
		readSubCategory:   readSub(`category = ($3::text[])[1]`),
		readSubCategories: readSub(`category = ANY($3::text[])`),
		endPosition: r(`SELECT transaction_id, seq FROM {{schema}}.events WHERE ` + visible + `
 ORDER BY transaction_id DESC, seq DESC LIMIT 1`),
		lastPosition: r(`SELECT transaction_id, seq FROM {{schema}}.events ORDER BY transaction_id DESC, seq DESC LIMIT 1`),
		reset: r(`UPDATE {{schema}}.subscriptions
   SET transaction_id = $2, seq = $3, generation = generation + 1, updated_at = now()
 WHERE name = $1`),
		list: r(`SELECT ` + subColumnsOf("s") + `,
       (SELECT count(*) FROM {{schema}}.parked_events p WHERE p.subscription = s.name AND p.partition = s.partition)
  FROM {{schema}}.subscriptions s
 WHERE $1 = '' OR s.name = $1
 ORDER BY s.name, s.partition`),
		lag: r(`SELECT count(*), min(recorded_at) FROM {{schema}}.events
 WHERE (transaction_id, seq) > ($1, $2)
   AND (cardinality($3::text[]) = 0 OR category = ANY($3::text[]))
   AND (cardinality($4::text[]) = 0 OR type = ANY($4::text[]))
   AND ` + partitionFilter),
		pending: r(`SELECT EXISTS (SELECT FROM {{schema}}.events
 WHERE (transaction_id, seq) > ($1, $2) AND (transaction_id, seq) <= ($7, $8)
   AND (cardinality($3::text[]) = 0 OR category = ANY($3::text[]))
   AND (cardinality($4::text[]) = 0 OR type = ANY($4::text[]))
   AND ` + partitionFilter + `)`),
		park: r(`INSERT INTO {{schema}}.parked_events (subscription, partition, event_id, error, attempts)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (subscription, event_id) DO UPDATE
   SET error = excluded.error, attempts = parked_events.attempts + excluded.attempts,
       replay = false, parked_at = now()`),
		parked: r(`SELECT p.subscription, p.partition, p.error, p.attempts, p.replay, p.parked_at,
       e.transaction_id, e.seq, e.category, e.stream_id, e.version, e.event_id, e.type, e.data, e.metadata, e.recorded_at
  FROM {{schema}}.parked_events p
  JOIN {{schema}}.events e ON e.event_id = p.event_id
 WHERE p.subscription = $1 AND (NOT $2::bool OR (p.replay AND p.partition = $3))
 ORDER BY e.transaction_id, e.seq
 LIMIT $4::bigint`),
		replay: r(`UPDATE {{schema}}.parked_events SET replay = true WHERE subscription = $1`),
		unpark: r(`DELETE FROM {{schema}}.parked_events WHERE subscription = $1 AND event_id = $2`),
	}
}

func subColumnsOf(alias string) string {
	a := alias + "."
	return a + "name, " + a + "partition, " + a + "partitions, " + a + "categories, " + a + "types, " +
		a + "transaction_id, " + a + "seq, " + a + "generation, coalesce(" + a + "owner, ''), " +
		a + "lease_until, " + a + "updated_at"
}

func scanSubscriptions(rows pgx.Rows) ([]*meowmxdriver.SubscriptionRow, error) {
	defer rows.Close()
	var out []*meowmxdriver.SubscriptionRow
	for rows.Next() {
		row := &meowmxdriver.SubscriptionRow{}
		var lease *time.Time
		if err := rows.Scan(&row.Name, &row.Partition, &row.Partitions, &row.Categories, &row.Types,
			&row.TransactionID, &row.Seq, &row.Generation, &row.Owner, &lease, &row.UpdatedAt, &row.Parked); err != nil {
			return nil, mapError(err)
		}
		if lease != nil {
			row.LeaseUntil = *lease
		}
		out = append(out, row)
	}
	return out, mapError(rows.Err())
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (e *executor) InitSubscription(ctx context.Context, p *meowmxdriver.InitSubscriptionParams) ([]*meowmxdriver.SubscriptionRow, error) {
	db, release, err := e.acquire(ctx, p.Schema)
	if err != nil {
		return nil, err
	}
	defer release()
	st := &e.driver.statements(p.Schema).sub
	var out []*meowmxdriver.SubscriptionRow
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, st.initLock, p.Schema, p.Name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, st.initInsert, p.Name, p.Partitions, nonNil(p.Categories), nonNil(p.Types), p.AfterTxID, p.AfterSeq); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, st.rows, p.Name)
		if err != nil {
			return err
		}
		out, err = scanSubscriptions(rows)
		return err
	})
	return out, mapError(err)
}

// query runs the query that query gives for schema and hands its rows to
// scan.
func (e *executor) query(ctx context.Context, schema string, query func(st *statements) (string, []any), scan func(pgx.Rows) error) error {
	db, release, err := e.acquire(ctx, schema)
	if err != nil {
		return err
	}
	defer release()
	sql, args := query(e.driver.statements(schema))
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return mapError(err)
	}
	defer rows.Close()
	return mapError(scan(rows))
}

// subscriptions runs a query of subscription rows.
func (e *executor) subscriptions(ctx context.Context, schema string, query func(st *statements) (string, []any)) ([]*meowmxdriver.SubscriptionRow, error) {
	var out []*meowmxdriver.SubscriptionRow
	err := e.query(ctx, schema, query, func(rows pgx.Rows) (err error) {
		out, err = scanSubscriptions(rows)
		return err
	})
	return out, err
}

func (e *executor) Heartbeat(ctx context.Context, schema, name, worker string, ttl time.Duration) ([]string, error) {
	var workers []string
	err := e.query(ctx, schema, func(st *statements) (string, []any) {
		return st.sub.heartbeat, []any{name, worker, ttl}
	}, func(rows pgx.Rows) (err error) {
		workers, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	return workers, err
}

func (e *executor) RemoveWorker(ctx context.Context, schema, name, worker string) error {
	_, err := e.exec(ctx, schema, func(st *statements) (string, []any) {
		return st.sub.removeWorker, []any{name, worker}
	})
	return err
}

func (e *executor) Claim(ctx context.Context, p *meowmxdriver.ClaimParams) ([]*meowmxdriver.SubscriptionRow, error) {
	return e.subscriptions(ctx, p.Schema, func(st *statements) (string, []any) {
		return st.sub.claim, []any{p.Name, p.Worker, p.Want, p.Lease}
	})
}

func (e *executor) Release(ctx context.Context, schema, name, worker string, partitions []int) error {
	_, err := e.exec(ctx, schema, func(st *statements) (string, []any) {
		return st.sub.release, []any{name, worker, partitions}
	})
	return err
}

func (e *executor) Advance(ctx context.Context, p *meowmxdriver.AdvanceParams) (bool, error) {
	n, err := e.exec(ctx, p.Schema, func(st *statements) (string, []any) {
		return st.sub.advance, []any{p.Name, p.Partition, p.Worker, p.Generation, p.TxID, p.Seq, p.Lease}
	})
	return n == 1, err
}

func (e *executor) ReadSubscription(ctx context.Context, p *meowmxdriver.ReadSubscriptionParams) ([]meowmxtype.RecordedEvent, error) {
	return e.events(ctx, p.Schema, func(st *statements) (string, []any) {
		query := st.sub.readSubAll
		switch len(p.Categories) {
		case 0:
		case 1:
			query = st.sub.readSubCategory
		default:
			query = st.sub.readSubCategories
		}
		return query, []any{p.AfterTxID, p.AfterSeq, nonNil(p.Categories), nonNil(p.Types), p.Partitions, p.Partition, p.Limit}
	})
}

func (e *executor) EndPosition(ctx context.Context, schema string) (uint64, int64, error) {
	return e.position(ctx, schema, func(st *statements) string { return st.sub.endPosition })
}

func (e *executor) LastPosition(ctx context.Context, schema string) (uint64, int64, error) {
	return e.position(ctx, schema, func(st *statements) string { return st.sub.lastPosition })
}

// position runs a query of one event's position; no row is position zero.
func (e *executor) position(ctx context.Context, schema string, query func(st *statements) string) (uint64, int64, error) {
	var (
		txID uint64
		seq  int64
	)
	err := e.row(ctx, schema, func(st *statements) (string, []any) { return query(st), nil }, &txID, &seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	}
	return txID, seq, err
}

func (e *executor) Reset(ctx context.Context, schema, name string, txID uint64, seq int64) (int, error) {
	n, err := e.exec(ctx, schema, func(st *statements) (string, []any) {
		return st.sub.reset, []any{name, txID, seq}
	})
	return int(n), err
}

func (e *executor) Subscriptions(ctx context.Context, schema, name string) ([]*meowmxdriver.SubscriptionRow, error) {
	return e.subscriptions(ctx, schema, func(st *statements) (string, []any) {
		return st.sub.list, []any{name}
	})
}

func (e *executor) Lag(ctx context.Context, schema string, row *meowmxdriver.SubscriptionRow) (int64, time.Time, error) {
	var (
		count  int64
		oldest *time.Time
	)
	err := e.row(ctx, schema, func(st *statements) (string, []any) {
		return st.sub.lag, []any{row.TransactionID, row.Seq, nonNil(row.Categories), nonNil(row.Types), row.Partitions, row.Partition}
	}, &count, &oldest)
	if err != nil || oldest == nil {
		return count, time.Time{}, err
	}
	return count, *oldest, nil
}

func (e *executor) Pending(ctx context.Context, schema string, row *meowmxdriver.SubscriptionRow, untilTxID uint64, untilSeq int64) (bool, error) {
	var pending bool
	err := e.row(ctx, schema, func(st *statements) (string, []any) {
		return st.sub.pending, []any{row.TransactionID, row.Seq, nonNil(row.Categories), nonNil(row.Types), row.Partitions, row.Partition, untilTxID, untilSeq}
	}, &pending)
	return pending, err
}

func (e *executor) Park(ctx context.Context, p *meowmxdriver.ParkParams) error {
	_, err := e.exec(ctx, p.Schema, func(st *statements) (string, []any) {
		return st.sub.park, []any{p.Name, p.Partition, p.EventID, p.Error, p.Attempts}
	})
	return err
}

func (e *executor) Parked(ctx context.Context, p *meowmxdriver.ParkedParams) ([]*meowmxdriver.ParkedRow, error) {
	var limit any
	if p.Limit > 0 {
		limit = p.Limit
	}
	var out []*meowmxdriver.ParkedRow
	err := e.query(ctx, p.Schema, func(st *statements) (string, []any) {
		return st.sub.parked, []any{p.Name, p.OnlyReplay, p.Partition, limit}
	}, func(rows pgx.Rows) error {
		for rows.Next() {
			r := &meowmxdriver.ParkedRow{}
			ev := &r.Event
			if err := rows.Scan(&r.Subscription, &r.Partition, &r.Error, &r.Attempts, &r.Replay, &r.ParkedAt,
				&ev.Position.TransactionID, &ev.Position.Seq, &ev.Stream.Category, &ev.Stream.ID, &ev.Version, &ev.ID, &ev.Type, &ev.Data, &ev.Metadata, &ev.RecordedAt); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, err
}

func (e *executor) RequestReplay(ctx context.Context, schema, name string) (int, error) {
	n, err := e.exec(ctx, schema, func(st *statements) (string, []any) {
		return st.sub.replay, []any{name}
	})
	return int(n), err
}

func (e *executor) Unpark(ctx context.Context, schema, name string, eventID [16]byte) error {
	_, err := e.exec(ctx, schema, func(st *statements) (string, []any) {
		return st.sub.unpark, []any{name, eventID}
	})
	return err
}

// Begin starts a transaction on the pool. Unless synchronous, its commit
// does not wait for the WAL flush (synchronous_commit = off): a crash can
// lose the last such commits, all of whose writes then vanish together.
func (d *Driver) Begin(ctx context.Context, synchronous bool) (pgx.Tx, error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return nil, mapError(err)
	}
	if !synchronous {
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			_ = tx.Rollback(ctx)
			return nil, mapError(err)
		}
	}
	return tx, nil
}

// Commit commits tx.
func (d *Driver) Commit(ctx context.Context, tx pgx.Tx) error { return mapError(tx.Commit(ctx)) }

// Rollback rolls tx back.
func (d *Driver) Rollback(ctx context.Context, tx pgx.Tx) error {
	err := tx.Rollback(ctx)
	if errors.Is(err, pgx.ErrTxClosed) {
		return nil
	}
	return err
}

// listenKeepalive is how long Listen waits for a notification before it
// pings the connection to find out whether it is still there.
const listenKeepalive = 15 * time.Second

// Listen holds one connection, outside the pool, listening on the schema's
// channel, and calls wake with each notification's category, until ctx ends
// or the connection fails. An idle connection is pinged every
// listenKeepalive, so that a dead one is noticed.
func (d *Driver) Listen(ctx context.Context, schema string, listening func(), wake func(category string)) error {
	conn, err := pgx.ConnectConfig(ctx, d.pool.Config().ConnConfig.Copy())
	if err != nil {
		return ctxOr(ctx, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel(schema)}.Sanitize()); err != nil {
		return ctxOr(ctx, fmt.Errorf("listen: %w", err))
	}
	listening()
	for {
		waitCtx, cancel := context.WithTimeout(ctx, listenKeepalive)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			wake(n.Payload)
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			if err := conn.Ping(ctx); err != nil {
				return ctxOr(ctx, err)
			}
		default:
			return err
		}
	}
}

// ctxOr returns nil once ctx has ended (the caller stopped listening), and
// err otherwise.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Notify sends one notification per category on the schema's channel, in a
// transaction of its own that does not wait for its commit record to be
// flushed: a notification is a hint, and a lost one is made up for by the
// subscriptions' polls.
func (d *Driver) Notify(ctx context.Context, schema string, categories []string) error {
	_, err := d.pool.Exec(ctx, notifySQL, Channel(schema), categories)
	return mapError(err)
}

// WorkersAlive reports whether any subscription worker of the schema has a
// live heartbeat.
func (e *executor) WorkersAlive(ctx context.Context, schema string) (bool, error) {
	var alive bool
	err := e.row(ctx, schema, func(st *statements) (string, []any) {
		return st.sub.workersAlive, nil
	}, &alive)
	return alive, err
}

const notifySQL = `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, c) FROM unnest($2::text[]) AS c`

const (
	saveSnapshotSQL = `INSERT INTO {{schema}}.snapshots (category, stream_id, version, schema_version, state)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`
	loadSnapshotSQL = `SELECT version, state FROM {{schema}}.snapshots
 WHERE category = $1 AND stream_id = $2 AND schema_version = $3
 ORDER BY version DESC LIMIT 1`
	deleteSnapshotsSQL = `DELETE FROM {{schema}}.snapshots WHERE category = $1 AND stream_id = $2`
)

func (e *executor) SaveSnapshot(ctx context.Context, p *meowmxdriver.SnapshotRow) (bool, error) {
	n, err := e.exec(ctx, p.Schema, func(st *statements) (string, []any) {
		return st.r(saveSnapshotSQL), []any{p.Category, p.StreamID, p.Version, p.SchemaVersion, p.State}
	})
	return n == 1, err
}

func (e *executor) LoadSnapshot(ctx context.Context, schema, category, streamID string, schemaVersion int) (*meowmxdriver.SnapshotRow, error) {
	row := &meowmxdriver.SnapshotRow{Schema: schema, Category: category, StreamID: streamID, SchemaVersion: schemaVersion}
	err := e.row(ctx, schema, func(st *statements) (string, []any) {
		return st.r(loadSnapshotSQL), []any{category, streamID, schemaVersion}
	}, &row.Version, &row.State)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return row, nil
}

func (e *executor) DeleteSnapshots(ctx context.Context, schema, category, streamID string) (int, error) {
	n, err := e.exec(ctx, schema, func(st *statements) (string, []any) {
		return st.r(deleteSnapshotsSQL), []any{category, streamID}
	})
	return int(n), err
}
