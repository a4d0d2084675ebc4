package pgdriver

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

func scanSubscriptions(rows pgx.Rows) ([]*meowmxdriver.SubscriptionRow, error) {
	defer rows.Close()
	var out []*meowmxdriver.SubscriptionRow
	for rows.Next() {
		row := &meowmxdriver.SubscriptionRow{}
		var lease *time.Time
		if err := rows.Scan(&row.Name, &row.Partition, &row.Partitions, &row.Categories, &row.Types, &row.Tags,
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

func (e *executor) InitSubscription(ctx context.Context, p *meowmxdriver.InitSubscriptionParams) ([]*meowmxdriver.SubscriptionRow, error) {
	db, release, err := e.acquire(ctx, p.Schema)
	if err != nil {
		return nil, err
	}
	defer release()
	st := &e.driver.statements(p.Schema).sub
	var out []*meowmxdriver.SubscriptionRow
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, st.initLock, pgx.StrictNamedArgs{"schema": p.Schema, "name": p.Name}); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, st.initInsert, pgx.StrictNamedArgs{
			"name": p.Name, "partitions": p.Partitions, "categories": nonNil(p.Categories), "types": nonNil(p.Types),
			"tags": nonNil(p.Tags), "transaction_id": p.AfterTxID, "seq": p.AfterSeq,
		}); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, st.rows, pgx.StrictNamedArgs{"name": p.Name})
		if err != nil {
			return err
		}
		out, err = scanSubscriptions(rows)
		return err
	})
	return out, mapError(err)
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
		return st.sub.heartbeat, []any{pgx.StrictNamedArgs{"name": name, "worker": worker, "ttl": ttl}}
	}, func(rows pgx.Rows) (err error) {
		workers, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	return workers, err
}

func (e *executor) RemoveWorker(ctx context.Context, schema, name, worker string) error {
	_, err := e.exec(ctx, schema, func(st *statements) (string, []any) {
		return st.sub.removeWorker, []any{pgx.StrictNamedArgs{"name": name, "worker": worker}}
	})
	return err
}

func (e *executor) Claim(ctx context.Context, p *meowmxdriver.ClaimParams) ([]*meowmxdriver.SubscriptionRow, error) {
	return e.subscriptions(ctx, p.Schema, func(st *statements) (string, []any) {
		return st.sub.claim, []any{pgx.StrictNamedArgs{"name": p.Name, "worker": p.Worker, "want": p.Want, "lease": p.Lease}}
	})
}

func (e *executor) Release(ctx context.Context, schema, name, worker string, partitions []int) error {
	_, err := e.exec(ctx, schema, func(st *statements) (string, []any) {
		return st.sub.release, []any{pgx.StrictNamedArgs{"name": name, "worker": worker, "partitions": partitions}}
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
	return e.events(ctx, p.Schema, p.Limit, func(st *statements) (string, []any) {
		query := st.sub.readSubAll
		switch len(p.Categories) {
		case 0:
		case 1:
			query = st.sub.readSubCategory
		default:
			query = st.sub.readSubCategories
		}
		return query, []any{p.AfterTxID, p.AfterSeq, nonNil(p.Categories), nonNil(p.Types), p.Partitions, p.Partition, p.Limit, nonNil(p.Tags)}
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
		return st.sub.reset, []any{pgx.StrictNamedArgs{"name": name, "transaction_id": txID, "seq": seq}}
	})
	return int(n), err
}

func (e *executor) Subscriptions(ctx context.Context, schema, name string) ([]*meowmxdriver.SubscriptionRow, error) {
	return e.subscriptions(ctx, schema, func(st *statements) (string, []any) {
		return st.sub.list, []any{pgx.StrictNamedArgs{"name": name}}
	})
}

func (e *executor) Lag(ctx context.Context, schema string, row *meowmxdriver.SubscriptionRow, limit int64) (int64, time.Time, error) {
	var (
		count  int64
		oldest *time.Time
	)
	err := e.row(ctx, schema, func(st *statements) (string, []any) {
		if limit > 0 {
			return st.sub.lagBounded, []any{coveredBy(row, pgx.StrictNamedArgs{"limit": limit})}
		}
		return st.sub.lag, []any{coveredBy(row, nil)}
	}, &count, &oldest)
	if err != nil || oldest == nil {
		return count, time.Time{}, err
	}
	return count, *oldest, nil
}

func (e *executor) Pending(ctx context.Context, schema string, row *meowmxdriver.SubscriptionRow, untilTxID uint64, untilSeq int64) (bool, error) {
	var pending bool
	err := e.row(ctx, schema, func(st *statements) (string, []any) {
		return st.sub.pending, []any{coveredBy(row, pgx.StrictNamedArgs{"until_transaction_id": untilTxID, "until_seq": untilSeq})}
	}, &pending)
	return pending, err
}

func (e *executor) Park(ctx context.Context, p *meowmxdriver.ParkParams) error {
	_, err := e.exec(ctx, p.Schema, func(st *statements) (string, []any) {
		return st.sub.park, []any{pgx.StrictNamedArgs{
			"name": p.Name, "partition": p.Partition, "event_id": p.EventID, "error": p.Error, "attempts": p.Attempts,
		}}
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
		return st.sub.parked, []any{pgx.StrictNamedArgs{"name": p.Name, "only_replay": p.OnlyReplay, "partition": p.Partition, "limit": limit}}
	}, func(rows pgx.Rows) error {
		for rows.Next() {
			r := &meowmxdriver.ParkedRow{}
			ev := &r.Event
			if err := rows.Scan(&r.Subscription, &r.Partition, &r.Error, &r.Attempts, &r.Replay, &r.ParkedAt,
				&ev.Position.TransactionID, &ev.Position.Seq, &ev.Stream.Category, &ev.Stream.ID, &ev.Version, &ev.ID, &ev.Type, &ev.Data, &ev.Metadata, &ev.RecordedAt, &ev.Tags); err != nil {
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
		return st.sub.replay, []any{pgx.StrictNamedArgs{"name": name}}
	})
	return int(n), err
}

func (e *executor) DeleteSubscription(ctx context.Context, schema, name string) (int, error) {
	n, err := e.exec(ctx, schema, func(st *statements) (string, []any) {
		return st.sub.deleteSubscription, []any{pgx.StrictNamedArgs{"name": name}}
	})
	return int(n), err
}

func (e *executor) Unpark(ctx context.Context, schema, name string, eventID [16]byte) error {
	_, err := e.exec(ctx, schema, func(st *statements) (string, []any) {
		return st.sub.unpark, []any{pgx.StrictNamedArgs{"name": name, "event_id": eventID}}
	})
	return err
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

// coveredBy is the arguments of subscriptionFilter and of the position after
// which row's events are pending, with more added.
func coveredBy(row *meowmxdriver.SubscriptionRow, more pgx.StrictNamedArgs) pgx.StrictNamedArgs {
	args := pgx.StrictNamedArgs{
		"transaction_id": row.TransactionID, "seq": row.Seq,
		"categories": nonNil(row.Categories), "types": nonNil(row.Types), "tags": nonNil(row.Tags),
		"partitions": row.Partitions, "partition": row.Partition,
	}
	maps.Copy(args, more)
	return args
}
