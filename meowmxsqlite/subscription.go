package meowmxsqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

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
			categories, types, tags string
			lease                   sql.NullInt64
			updated                 int64
		)
		if err := rows.Scan(&row.Name, &row.Partition, &row.Partitions, &categories, &types, &tags, &row.Seq,
			&row.Generation, &row.Owner, &lease, &updated, &row.Parked); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(categories), &row.Categories); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(types), &row.Types); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(tags), &row.Tags); err != nil {
			return nil, err
		}
		row.LeaseUntil = fromMicros(lease)
		row.UpdatedAt = time.UnixMicro(updated).UTC()
		out = append(out, row)
	}
	return out, rows.Err()
}

func (e *executor) InitSubscription(ctx context.Context, p *meowmxdriver.InitSubscriptionParams) ([]*meowmxdriver.SubscriptionRow, error) {
	if p.AfterTxID != 0 {
		return nil, errForeignPosition
	}
	st := &e.driver.statements(p.Schema).sub
	var out []*meowmxdriver.SubscriptionRow
	err := e.inWriteTx(ctx, func(q querier) error {
		var n int
		if err := q.QueryRowContext(ctx, st.exists, p.Name).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			now := micros(time.Now())
			for partition := range p.Partitions {
				if _, err := q.ExecContext(ctx, st.initInsert, p.Name, partition, p.Partitions,
					jsonList(p.Categories), jsonList(p.Types), jsonList(p.Tags), p.AfterSeq, now); err != nil {
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
	err := e.inWriteTx(ctx, func(q querier) error {
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
	return e.inWriteTx(ctx, func(q querier) error {
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
	err := e.inWriteTx(ctx, func(q querier) error {
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
	return e.inWriteTx(ctx, func(q querier) error {
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
	err := e.inWriteTx(ctx, func(q querier) error {
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
	rows, err := queryEvents(ctx, e.reader(), query, p.AfterSeq, categories, jsonList(p.Types), p.Partitions, p.Partition, p.Limit, jsonList(p.Tags))
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
	err := e.inWriteTx(ctx, func(q querier) error {
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

func (e *executor) Lag(ctx context.Context, schema string, row *meowmxdriver.SubscriptionRow, limit int64) (int64, time.Time, error) {
	var (
		count  int64
		oldest sql.NullInt64
	)
	args := []any{row.Seq, jsonList(row.Categories), jsonList(row.Types), row.Partitions, row.Partition, jsonList(row.Tags)}
	query := e.driver.statements(schema).sub.lag
	if limit > 0 {
		query, args = e.driver.statements(schema).sub.lagBounded, append(args, limit)
	}
	err := e.reader().QueryRowContext(ctx, query, args...).Scan(&count, &oldest)
	return count, fromMicros(oldest), mapError(err)
}

func (e *executor) Pending(ctx context.Context, schema string, row *meowmxdriver.SubscriptionRow, untilTxID uint64, untilSeq int64) (bool, error) {
	if untilTxID != 0 {
		return false, errForeignPosition
	}
	var pending bool
	err := e.reader().QueryRowContext(ctx, e.driver.statements(schema).sub.pending, row.Seq,
		jsonList(row.Categories), jsonList(row.Types), row.Partitions, row.Partition, untilSeq, jsonList(row.Tags)).Scan(&pending)
	return pending, mapError(err)
}

func (e *executor) Park(ctx context.Context, p *meowmxdriver.ParkParams) error {
	st := &e.driver.statements(p.Schema).sub
	return e.inWriteTx(ctx, func(q querier) error {
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
		scan := eventRow{ev: &r.Event}
		var parkedAt int64
		if err := rows.Scan(append([]any{&r.Subscription, &r.Partition, &r.Error, &r.Attempts, &r.Replay, &parkedAt}, scan.dest()...)...); err != nil {
			return nil, mapError(err)
		}
		if err := scan.finish(); err != nil {
			return nil, err
		}
		r.ParkedAt = time.UnixMicro(parkedAt).UTC()
		out = append(out, r)
	}
	return out, mapError(rows.Err())
}

func (e *executor) RequestReplay(ctx context.Context, schema, name string) (int, error) {
	st := &e.driver.statements(schema).sub
	var n int64
	err := e.inWriteTx(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, st.replay, name)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

func (e *executor) DeleteSubscription(ctx context.Context, schema, name string) (int, error) {
	st := &e.driver.statements(schema).sub
	var n int64
	err := e.inWriteTx(ctx, func(q querier) error {
		for _, query := range st.deleteSubscription {
			res, err := q.ExecContext(ctx, query, name)
			if err != nil {
				return err
			}
			if n, err = res.RowsAffected(); err != nil {
				return err
			}
		}
		return nil
	})
	return int(n), err
}

func (e *executor) Unpark(ctx context.Context, schema, name string, eventID [16]byte) error {
	st := &e.driver.statements(schema).sub
	return e.inWriteTx(ctx, func(q querier) error {
		_, err := q.ExecContext(ctx, st.unpark, name, uuid.UUID(eventID).String())
		return err
	})
}
