package meowmxsqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

// querier is what a connection and a transaction have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type executor struct {
	driver *Driver
	tx     *sql.Tx // nil: the executor works on the database itself
}

// SingleWriter: SQLite writes one transaction at a time.
func (e *executor) SingleWriter() bool { return true }

func (e *executor) reader() querier {
	if e.tx != nil {
		return e.tx
	}
	return e.driver.db
}

func (e *executor) ReadStream(ctx context.Context, p *meowmxdriver.ReadStreamParams) ([]meowmxtype.RecordedEvent, error) {
	st := e.driver.statements(p.Schema)
	query := st.readStreamFwd
	if p.Backward {
		query = st.readStreamBack
	}
	limit := p.Limit
	if limit <= 0 {
		limit = -1 // no limit
	}
	rows, err := queryEvents(ctx, e.reader(), query, p.Category, p.StreamID, p.From, limit)
	return rows, mapError(err)
}

func (e *executor) ReadGlobal(ctx context.Context, p *meowmxdriver.ReadGlobalParams) ([]meowmxtype.RecordedEvent, error) {
	st := e.driver.statements(p.Schema)
	types := p.Types
	if types == nil {
		types = []string{}
	}
	typesJSON, err := json.Marshal(types)
	if err != nil {
		return nil, err
	}
	args := []any{int64(p.AfterTxID), p.AfterSeq, string(typesJSON), p.Limit}
	query := st.readAll
	if p.Category != "" {
		query = st.readCategory
		args = append(args, p.Category)
	}
	rows, err := queryEvents(ctx, e.reader(), query, args...)
	return rows, mapError(err)
}

func queryEvents(ctx context.Context, q querier, query string, args ...any) ([]meowmxtype.RecordedEvent, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var events []meowmxtype.RecordedEvent
	for rows.Next() {
		var row meowmxtype.RecordedEvent
		scan := eventRow{ev: &row}
		if err := rows.Scan(scan.dest()...); err != nil {
			return nil, err
		}
		if err := scan.finish(); err != nil {
			return nil, err
		}
		events = append(events, row)
	}
	return events, rows.Err()
}

// eventRow scans the columns of eventColumns into ev.
type eventRow struct {
	ev             *meowmxtype.RecordedEvent
	id             string
	data           []byte
	metadata, tags sql.NullString
	recordedAt     int64
}

// dest is what rows.Scan takes, in eventColumns' order.
func (r *eventRow) dest() []any {
	ev := r.ev
	return []any{&ev.Position.Seq, &ev.Stream.Category, &ev.Stream.ID, &ev.Version, &r.id, &ev.Type,
		&r.data, &r.metadata, &r.recordedAt, &r.tags}
}

// finish decodes what dest scanned.
func (r *eventRow) finish() error {
	ev := r.ev
	parsed, err := uuid.Parse(strings.TrimSpace(r.id))
	if err != nil {
		return fmt.Errorf("event %d: stored event id %q: %w", ev.Position.Seq, r.id, err)
	}
	ev.ID, ev.Data = parsed, r.data
	if r.metadata.Valid {
		ev.Metadata = []byte(r.metadata.String)
	}
	if r.tags.Valid {
		if err := json.Unmarshal([]byte(r.tags.String), &ev.Tags); err != nil {
			return fmt.Errorf("event %d: stored tags %q: %w", ev.Position.Seq, r.tags.String, err)
		}
	}
	ev.RecordedAt = time.UnixMicro(r.recordedAt).UTC()
	return nil
}

func (e *executor) StreamVersion(ctx context.Context, schema, category, streamID string) (int64, error) {
	var version int64
	err := e.reader().QueryRowContext(ctx, e.driver.statements(schema).lastVersion, category, streamID).Scan(&version)
	return version, mapError(err)
}

// Horizon is always nil: SQLite's writers are serialized, so nothing can
// commit behind a reader's position.
func (e *executor) Horizon(ctx context.Context) (*meowmxtype.Horizon, error) {
	return nil, ctx.Err()
}

func (e *executor) Streams(ctx context.Context, p *meowmxdriver.StreamsParams) ([]meowmxtype.StreamInfo, error) {
	st := e.driver.statements(p.Schema)
	query, first := st.streams, p.After.Category
	if p.Category != "" {
		query, first = st.categoryStreams, p.Category
	}
	rows, err := e.reader().QueryContext(ctx, query, first, p.After.ID, p.Limit)
	if err != nil {
		return nil, mapError(err)
	}
	defer rows.Close()
	var infos []meowmxtype.StreamInfo
	for rows.Next() {
		var (
			in         meowmxtype.StreamInfo
			recordedAt int64
		)
		if err := rows.Scan(&in.Stream.Category, &in.Stream.ID, &in.Version, &in.LastPosition.Seq, &recordedAt); err != nil {
			return nil, mapError(err)
		}
		in.LastRecordedAt = time.UnixMicro(recordedAt).UTC()
		infos = append(infos, in)
	}
	return infos, mapError(rows.Err())
}

// categoryCountsSaveAfter is how many events a listing of categories
// counts after a category's stored counts before it stores them again: a
// listing writes rarely, and counts at most about that many events more
// than the page holds.
const categoryCountsSaveAfter = 1000

func (e *executor) Categories(ctx context.Context, p *meowmxdriver.CategoriesParams) ([]meowmxtype.CategoryInfo, error) {
	st := e.driver.statements(p.Schema)
	rows, err := e.reader().QueryContext(ctx, st.categories, p.After, p.Limit)
	if err != nil {
		return nil, mapError(err)
	}
	defer rows.Close()
	var (
		infos []meowmxtype.CategoryInfo
		save  []meowmxtype.CategoryInfo
	)
	for rows.Next() {
		var (
			in         meowmxtype.CategoryInfo
			recordedAt int64
			counted    int64
		)
		if err := rows.Scan(&in.Category, &in.Events, &in.Streams, &in.LastPosition.Seq, &recordedAt, &counted); err != nil {
			return nil, mapError(err)
		}
		in.LastRecordedAt = time.UnixMicro(recordedAt).UTC()
		infos = append(infos, in)
		if counted >= categoryCountsSaveAfter {
			save = append(save, in)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, mapError(err)
	}
	rows.Close()
	if len(save) == 0 {
		return infos, nil
	}
	if e.tx != nil {
		return infos, nil // the caller's transaction is the caller's
	}
	// The counts are of the events up to the last one, read in one
	// snapshot: they hold whatever was appended since. Storing them only
	// spares later listings some counting: a failure (the database busy
	// with another process's write) leaves them unstored.
	_ = e.inWriteTx(ctx, func(q querier) error {
		for _, in := range save {
			if _, err := q.ExecContext(ctx, st.saveCategories, in.Category, in.LastPosition.Seq, in.Events, in.Streams); err != nil {
				return err
			}
		}
		return nil
	})
	return infos, nil
}

// PositionNumbers returns the sequence numbers: SQLite's positions are
// numbers already.
func (e *executor) PositionNumbers(ctx context.Context, schema string, positions []meowmxtype.Position) ([]int64, error) {
	numbers := make([]int64, len(positions))
	for i, p := range positions {
		if p.TransactionID != 0 {
			return nil, meowmxtype.Invalid("position %s has no number: it is a PostgreSQL position", p)
		}
		numbers[i] = p.Seq
	}
	return numbers, ctx.Err()
}

// NumberPosition returns the position of sequence number n.
func (e *executor) NumberPosition(ctx context.Context, schema string, n int64) (meowmxtype.Position, error) {
	return meowmxtype.Position{Seq: max(n, 0)}, ctx.Err()
}
