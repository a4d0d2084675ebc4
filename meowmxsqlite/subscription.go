package meowmxsqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

// subscriptionStatements holds the subscription SQL of one prefix. Times are
// microseconds since the Unix epoch, from this process's clock: SQLite's
// users share one machine.
type subscriptionStatements struct {
	exists, initInsert, rows                          string
	heartbeat, prune, listWorkers, removeWorker       string
	workersAlive                                      string
	freeOwned, renew, free, take, owned, release      string
	advance, readSubAll, readSubCategory, readSubMany string
	endPosition, reset, list, lag, park, parked       string
	replay, unpark, pending                           string
}

const subColumns = `name, partition, partitions, categories, types, seq, generation, coalesce(owner, ''), lease_until, updated_at`

func newSubscriptionStatements(r func(string) string) subscriptionStatements {
	readSub := func(categoryFilter string) string {
		return r(`SELECT ` + eventColumns + ` FROM {{prefix}}events
 WHERE seq > ?1 AND ` + categoryFilter + `
   AND (?3 = '[]' OR type IN (SELECT value FROM json_each(?3)))
   AND (?4 <= 1 OR stream_hash % ?4 = ?5)
 ORDER BY seq
 LIMIT ?6`)
	}
	return subscriptionStatements{
		exists: r(`SELECT count(*) FROM {{prefix}}subscriptions WHERE name = ?`),
		initInsert: r(`INSERT INTO {{prefix}}subscriptions (name, partition, partitions, categories, types, seq, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)`),
		rows: r(`SELECT ` + subColumns + `, 0 FROM {{prefix}}subscriptions WHERE name = ? ORDER BY partition`),
		heartbeat: r(`INSERT INTO {{prefix}}subscription_workers (name, worker, alive_until) VALUES (?1, ?2, ?3)
ON CONFLICT (name, worker) DO UPDATE SET alive_until = excluded.alive_until`),
		prune:        r(`DELETE FROM {{prefix}}subscription_workers WHERE name = ?1 AND alive_until < ?2`),
		listWorkers:  r(`SELECT worker FROM {{prefix}}subscription_workers WHERE name = ?1 ORDER BY worker`),
		removeWorker: r(`DELETE FROM {{prefix}}subscription_workers WHERE name = ?1 AND worker = ?2`),
		workersAlive: r(`SELECT EXISTS (SELECT 1 FROM {{prefix}}subscription_workers WHERE alive_until > ?1)`),
		freeOwned:    r(`UPDATE {{prefix}}subscriptions SET owner = NULL, lease_until = NULL WHERE name = ?1 AND owner = ?2`),
		renew:        r(`UPDATE {{prefix}}subscriptions SET lease_until = ?3 WHERE name = ?1 AND owner = ?2`),
		free: r(`SELECT partition FROM {{prefix}}subscriptions
 WHERE name = ?1 AND (owner IS NULL OR (owner <> ?2 AND lease_until < ?3))
 ORDER BY partition LIMIT ?4`),
		take:    r(`UPDATE {{prefix}}subscriptions SET owner = ?2, lease_until = ?3 WHERE name = ?1 AND partition = ?4`),
		owned:   r(`SELECT ` + subColumns + `, 0 FROM {{prefix}}subscriptions WHERE name = ?1 AND owner = ?2 ORDER BY partition`),
		release: r(`UPDATE {{prefix}}subscriptions SET owner = NULL, lease_until = NULL WHERE name = ?1 AND owner = ?2 AND partition = ?3`),
		advance: r(`UPDATE {{prefix}}subscriptions SET seq = ?5, lease_until = ?6, updated_at = ?7
 WHERE name = ?1 AND partition = ?2 AND owner = ?3 AND generation = ?4`),
		readSubAll:      readSub(`?2 IS NOT NULL`),
		readSubCategory: readSub(`category = ?2`),
		readSubMany:     readSub(`category IN (SELECT value FROM json_each(?2))`),
		endPosition:     r(`SELECT coalesce(max(seq), 0) FROM {{prefix}}events`),
		reset:           r(`UPDATE {{prefix}}subscriptions SET seq = ?2, generation = generation + 1, updated_at = ?3 WHERE name = ?1`),
		list: r(`SELECT ` + subColumns + `,
       (SELECT count(*) FROM {{prefix}}parked_events p WHERE p.subscription = s.name AND p.partition = s.partition)
  FROM {{prefix}}subscriptions s
 WHERE ?1 = '' OR s.name = ?1
 ORDER BY s.name, s.partition`),
		lag: r(`SELECT count(*), min(recorded_at) FROM {{prefix}}events
 WHERE seq > ?1
   AND (?2 = '[]' OR category IN (SELECT value FROM json_each(?2)))
   AND (?3 = '[]' OR type IN (SELECT value FROM json_each(?3)))
   AND (?4 <= 1 OR stream_hash % ?4 = ?5)`),
		pending: r(`SELECT EXISTS (SELECT 1 FROM {{prefix}}events
 WHERE seq > ?1 AND seq <= ?6
   AND (?2 = '[]' OR category IN (SELECT value FROM json_each(?2)))
   AND (?3 = '[]' OR type IN (SELECT value FROM json_each(?3)))
   AND (?4 <= 1 OR stream_hash % ?4 = ?5))`),
		park: r(`INSERT INTO {{prefix}}parked_events (subscription, partition, event_id, error, attempts, parked_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (subscription, event_id) DO UPDATE
   SET error = excluded.error, attempts = attempts + excluded.attempts, replay = 0, parked_at = excluded.parked_at`),
		parked: r(`SELECT p.subscription, p.partition, p.error, p.attempts, p.replay, p.parked_at,
       e.seq, e.category, e.stream_id, e.version, e.event_id, e.type, e.data, e.metadata, e.recorded_at
  FROM {{prefix}}parked_events p
  JOIN {{prefix}}events e ON e.event_id = p.event_id
 WHERE p.subscription = ?1 AND (NOT ?2 OR (p.replay AND p.partition = ?3))
 ORDER BY e.seq
 LIMIT ?4`),
		replay: r(`UPDATE {{prefix}}parked_events SET replay = 1 WHERE subscription = ?`),
		unpark: r(`DELETE FROM {{prefix}}parked_events WHERE subscription = ? AND event_id = ?`),
	}
}

var errForeignPosition = fmt.Errorf("%w: a position with a transaction id comes from PostgreSQL; SQLite positions are 0/SEQ", meowmxtype.ErrInvalidInput)

func jsonList(values []string) string {
	if len(values) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(values)
	return string(b)
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

func scanSubscriptions(rows *sql.Rows) ([]*meowmxdriver.SubscriptionRow, error) {
	defer rows.Close()
	var out []*meowmxdriver.SubscriptionRow
	for rows.Next() {
		row := &meowmxdriver.SubscriptionRow{}
		var (
			categories, types string
			lease             sql.NullInt64
			updated           int64
		)
		if err := rows.Scan(&row.Name, &row.Partition, &row.Partitions, &categories, &types, &row.Seq,
			&row.Generation, &row.Owner, &lease, &updated, &row.Parked); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(categories), &row.Categories); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(types), &row.Types); err != nil {
			return nil, err
		}
		row.LeaseUntil = fromMicros(lease)
		row.UpdatedAt = time.UnixMicro(updated).UTC()
		out = append(out, row)
	}
	return out, rows.Err()
}

// writeQ runs fn in the caller's transaction if there is one, in a write
// transaction of its own otherwise.
func (e *executor) writeQ(ctx context.Context, fn func(q querier) error) error {
	if e.tx != nil {
		return mapError(fn(e.tx))
	}
	return mapError(e.driver.write(ctx, fn))
}

func (e *executor) InitSubscription(ctx context.Context, p *meowmxdriver.InitSubscriptionParams) ([]*meowmxdriver.SubscriptionRow, error) {
	if p.AfterTxID != 0 {
		return nil, errForeignPosition
	}
	st := &e.driver.statements(p.Schema).sub
	var out []*meowmxdriver.SubscriptionRow
	err := e.writeQ(ctx, func(q querier) error {
		var n int
		if err := q.QueryRowContext(ctx, st.exists, p.Name).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			now := micros(time.Now())
			for partition := range p.Partitions {
				if _, err := q.ExecContext(ctx, st.initInsert, p.Name, partition, p.Partitions,
					jsonList(p.Categories), jsonList(p.Types), p.AfterSeq, now); err != nil {
					return err
				}
			}
		}
		rows, err := q.QueryContext(ctx, st.rows, p.Name)
		if err != nil {
			return err
		}
		out, err = scanSubscriptions(rows)
		return err
	})
	return out, err
}

func (e *executor) Heartbeat(ctx context.Context, schema, name, worker string, ttl time.Duration) ([]string, error) {
	st := &e.driver.statements(schema).sub
	var workers []string
	err := e.writeQ(ctx, func(q querier) error {
		now := time.Now()
		if _, err := q.ExecContext(ctx, st.heartbeat, name, worker, micros(now.Add(ttl))); err != nil {
			return err
		}
		if _, err := q.ExecContext(ctx, st.prune, name, micros(now)); err != nil {
			return err
		}
		rows, err := q.QueryContext(ctx, st.listWorkers, name)
		if err != nil {
			return err
		}
		defer rows.Close()
		workers = nil
		for rows.Next() {
			var w string
			if err := rows.Scan(&w); err != nil {
				return err
			}
			workers = append(workers, w)
		}
		return rows.Err()
	})
	return workers, err
}

// WorkersAlive reports whether any subscription worker of the database has
// a live heartbeat.
func (e *executor) WorkersAlive(ctx context.Context, schema string) (bool, error) {
	var alive bool
	err := e.reader().QueryRowContext(ctx, e.driver.statements(schema).sub.workersAlive, micros(time.Now())).Scan(&alive)
	return alive, mapError(err)
}

func (e *executor) RemoveWorker(ctx context.Context, schema, name, worker string) error {
	st := &e.driver.statements(schema).sub
	return e.writeQ(ctx, func(q querier) error {
		if _, err := q.ExecContext(ctx, st.removeWorker, name, worker); err != nil {
			return err
		}
		_, err := q.ExecContext(ctx, st.freeOwned, name, worker)
		return err
	})
}

func (e *executor) Claim(ctx context.Context, p *meowmxdriver.ClaimParams) ([]*meowmxdriver.SubscriptionRow, error) {
	st := &e.driver.statements(p.Schema).sub
	var out []*meowmxdriver.SubscriptionRow
	err := e.writeQ(ctx, func(q querier) error {
		now := time.Now()
		until := micros(now.Add(p.Lease))
		res, err := q.ExecContext(ctx, st.renew, p.Name, p.Worker, until)
		if err != nil {
			return err
		}
		held, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if want := int64(p.Want) - held; want > 0 {
			rows, err := q.QueryContext(ctx, st.free, p.Name, p.Worker, micros(now), want)
			if err != nil {
				return err
			}
			var free []int
			for rows.Next() {
				var partition int
				if err := rows.Scan(&partition); err != nil {
					rows.Close()
					return err
				}
				free = append(free, partition)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, partition := range free {
				if _, err := q.ExecContext(ctx, st.take, p.Name, p.Worker, until, partition); err != nil {
					return err
				}
			}
		}
		rows, err := q.QueryContext(ctx, st.owned, p.Name, p.Worker)
		if err != nil {
			return err
		}
		out, err = scanSubscriptions(rows)
		return err
	})
	return out, err
}

func (e *executor) Release(ctx context.Context, schema, name, worker string, partitions []int) error {
	st := &e.driver.statements(schema).sub
	return e.writeQ(ctx, func(q querier) error {
		for _, partition := range partitions {
			if _, err := q.ExecContext(ctx, st.release, name, worker, partition); err != nil {
				return err
			}
		}
		return nil
	})
}

func (e *executor) Advance(ctx context.Context, p *meowmxdriver.AdvanceParams) (bool, error) {
	st := &e.driver.statements(p.Schema).sub
	var ok bool
	err := e.writeQ(ctx, func(q querier) error {
		now := time.Now()
		res, err := q.ExecContext(ctx, st.advance, p.Name, p.Partition, p.Worker, p.Generation, p.Seq,
			micros(now.Add(p.Lease)), micros(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		ok = n == 1
		return err
	})
	return ok, err
}

func (e *executor) ReadSubscription(ctx context.Context, p *meowmxdriver.ReadSubscriptionParams) ([]meowmxtype.RecordedEvent, error) {
	if p.AfterTxID != 0 {
		return nil, errForeignPosition
	}
	st := &e.driver.statements(p.Schema).sub
	query, categories := st.readSubAll, "[]"
	switch len(p.Categories) {
	case 0:
	case 1:
		query, categories = st.readSubCategory, p.Categories[0]
	default:
		query, categories = st.readSubMany, jsonList(p.Categories)
	}
	rows, err := queryEvents(ctx, e.reader(), query, p.AfterSeq, categories, jsonList(p.Types), p.Partitions, p.Partition, p.Limit)
	return rows, mapError(err)
}

// LastPosition is EndPosition: SQLite's writers are serialized, so every
// recorded event is visible.
func (e *executor) LastPosition(ctx context.Context, schema string) (uint64, int64, error) {
	return e.EndPosition(ctx, schema)
}

func (e *executor) EndPosition(ctx context.Context, schema string) (uint64, int64, error) {
	var seq int64
	err := e.reader().QueryRowContext(ctx, e.driver.statements(schema).sub.endPosition).Scan(&seq)
	return 0, seq, mapError(err)
}

func (e *executor) Reset(ctx context.Context, schema, name string, txID uint64, seq int64) (int, error) {
	if txID != 0 {
		return 0, errForeignPosition
	}
	st := &e.driver.statements(schema).sub
	var n int64
	err := e.writeQ(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, st.reset, name, seq, micros(time.Now()))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

func (e *executor) Subscriptions(ctx context.Context, schema, name string) ([]*meowmxdriver.SubscriptionRow, error) {
	rows, err := e.reader().QueryContext(ctx, e.driver.statements(schema).sub.list, name)
	if err != nil {
		return nil, mapError(err)
	}
	out, err := scanSubscriptions(rows)
	return out, mapError(err)
}

func (e *executor) Lag(ctx context.Context, schema string, row *meowmxdriver.SubscriptionRow) (int64, time.Time, error) {
	var (
		count  int64
		oldest sql.NullInt64
	)
	err := e.reader().QueryRowContext(ctx, e.driver.statements(schema).sub.lag, row.Seq,
		jsonList(row.Categories), jsonList(row.Types), row.Partitions, row.Partition).Scan(&count, &oldest)
	return count, fromMicros(oldest), mapError(err)
}

func (e *executor) Pending(ctx context.Context, schema string, row *meowmxdriver.SubscriptionRow, untilTxID uint64, untilSeq int64) (bool, error) {
	if untilTxID != 0 {
		return false, errForeignPosition
	}
	var pending bool
	err := e.reader().QueryRowContext(ctx, e.driver.statements(schema).sub.pending, row.Seq,
		jsonList(row.Categories), jsonList(row.Types), row.Partitions, row.Partition, untilSeq).Scan(&pending)
	return pending, mapError(err)
}

func (e *executor) Park(ctx context.Context, p *meowmxdriver.ParkParams) error {
	st := &e.driver.statements(p.Schema).sub
	return e.writeQ(ctx, func(q querier) error {
		_, err := q.ExecContext(ctx, st.park, p.Name, p.Partition, uuid.UUID(p.EventID).String(), p.Error, p.Attempts, micros(time.Now()))
		return err
	})
}

func (e *executor) Parked(ctx context.Context, p *meowmxdriver.ParkedParams) ([]*meowmxdriver.ParkedRow, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = -1
	}
	rows, err := e.reader().QueryContext(ctx, e.driver.statements(p.Schema).sub.parked, p.Name, p.OnlyReplay, p.Partition, limit)
	if err != nil {
		return nil, mapError(err)
	}
	defer rows.Close()
	var out []*meowmxdriver.ParkedRow
	for rows.Next() {
		r := &meowmxdriver.ParkedRow{}
		ev := &r.Event
		var (
			parkedAt, recordedAt int64
			id                   string
			data                 []byte
			metadata             sql.NullString
		)
		if err := rows.Scan(&r.Subscription, &r.Partition, &r.Error, &r.Attempts, &r.Replay, &parkedAt,
			&ev.Position.Seq, &ev.Stream.Category, &ev.Stream.ID, &ev.Version, &id, &ev.Type, &data, &metadata, &recordedAt); err != nil {
			return nil, mapError(err)
		}
		parsed, err := uuid.Parse(strings.TrimSpace(id))
		if err != nil {
			return nil, err
		}
		ev.ID, ev.Data = parsed, data
		if metadata.Valid {
			ev.Metadata = []byte(metadata.String)
		}
		r.ParkedAt = time.UnixMicro(parkedAt).UTC()
		ev.RecordedAt = time.UnixMicro(recordedAt).UTC()
		out = append(out, r)
	}
	return out, mapError(rows.Err())
}

func (e *executor) RequestReplay(ctx context.Context, schema, name string) (int, error) {
	st := &e.driver.statements(schema).sub
	var n int64
	err := e.writeQ(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, st.replay, name)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

func (e *executor) Unpark(ctx context.Context, schema, name string, eventID [16]byte) error {
	st := &e.driver.statements(schema).sub
	return e.writeQ(ctx, func(q querier) error {
		_, err := q.ExecContext(ctx, st.unpark, name, uuid.UUID(eventID).String())
		return err
	})
}

// heldTx is a transaction of Begin: its connection, and the synchronous
// setting to restore on it.
type heldTx struct {
	conn    *sql.Conn
	restore string // "" when unchanged
}

// Begin starts an immediate write transaction (with a database opened by
// Open) for a subscription's batch, in this process's turn to write. Unless
// synchronous, it commits with synchronous=NORMAL: in WAL mode the commit
// survives a crash of the process but not of the machine, which can lose
// the last batches' writes and checkpoints together (they are handled
// again), and spares a disk flush per batch.
func (d *Driver) Begin(ctx context.Context, synchronous bool) (*sql.Tx, error) {
	if err := d.lock(ctx); err != nil {
		return nil, err
	}
	tx, err := d.begin(ctx, synchronous)
	if err != nil {
		d.unlock()
		return nil, mapError(err)
	}
	return tx, nil
}

func (d *Driver) begin(ctx context.Context, synchronous bool) (*sql.Tx, error) {
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	h := &heldTx{conn: conn}
	if !synchronous {
		var level int
		if err := conn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&level); err != nil {
			conn.Close()
			return nil, err
		}
		if level > 1 { // FULL or EXTRA
			if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err != nil {
				conn.Close()
				return nil, err
			}
			h.restore = fmt.Sprintf("PRAGMA synchronous = %d", level)
		}
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		d.release(h)
		return nil, err
	}
	d.held.Store(tx, h)
	return tx, nil
}

// release restores the connection's setting and returns it to the pool (or
// discards it, if the setting cannot be restored).
func (d *Driver) release(h *heldTx) {
	if h.restore != "" {
		if _, err := h.conn.ExecContext(context.Background(), h.restore); err != nil {
			_ = h.conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}
	h.conn.Close()
}

// end releases what Begin took for tx, once.
func (d *Driver) end(tx *sql.Tx) {
	if v, ok := d.held.LoadAndDelete(tx); ok {
		d.release(v.(*heldTx))
		d.unlock()
	}
}

// Commit commits tx.
func (d *Driver) Commit(_ context.Context, tx *sql.Tx) error {
	err := tx.Commit()
	d.end(tx)
	return mapError(err)
}

// Rollback rolls tx back.
func (d *Driver) Rollback(_ context.Context, tx *sql.Tx) error {
	err := tx.Rollback()
	d.end(tx)
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// Listen returns meowmxdriver.ErrNoListen: SQLite has no notifications.
// meowmx wakes subscriptions of appends made in the same process and polls
// for the others.
func (d *Driver) Listen(context.Context, string, func(), func(string)) error {
	return meowmxdriver.ErrNoListen
}

// Notify returns meowmxdriver.ErrNoListen: SQLite has no notifications
// between processes.
func (d *Driver) Notify(context.Context, string, []string) error { return meowmxdriver.ErrNoListen }

const (
	saveSnapshotSQL = `INSERT INTO {{prefix}}snapshots (category, stream_id, version, schema_version, state, created_at)
VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
	loadSnapshotSQL = `SELECT version, state FROM {{prefix}}snapshots
 WHERE category = ? AND stream_id = ? AND schema_version = ?
 ORDER BY version DESC LIMIT 1`
	deleteSnapshotsSQL = `DELETE FROM {{prefix}}snapshots WHERE category = ? AND stream_id = ?`
)

func (e *executor) SaveSnapshot(ctx context.Context, p *meowmxdriver.SnapshotRow) (bool, error) {
	st := e.driver.statements(p.Schema)
	var n int64
	err := e.writeQ(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, st.r(saveSnapshotSQL), p.Category, p.StreamID, p.Version, p.SchemaVersion, string(p.State), micros(time.Now()))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n == 1, err
}

func (e *executor) LoadSnapshot(ctx context.Context, schema, category, streamID string, schemaVersion int) (*meowmxdriver.SnapshotRow, error) {
	row := &meowmxdriver.SnapshotRow{Schema: schema, Category: category, StreamID: streamID, SchemaVersion: schemaVersion}
	err := e.reader().QueryRowContext(ctx, e.driver.statements(schema).r(loadSnapshotSQL), category, streamID, schemaVersion).Scan(&row.Version, &row.State)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, mapError(err)
	}
	return row, nil
}

func (e *executor) DeleteSnapshots(ctx context.Context, schema, category, streamID string) (int, error) {
	st := e.driver.statements(schema)
	var n int64
	err := e.writeQ(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, st.r(deleteSnapshotsSQL), category, streamID)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}
