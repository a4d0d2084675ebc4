package meowmxpgxv5_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/meowmxdriver"
)

// statementRecorder keeps the text of every statement that reads or writes
// events.
type statementRecorder struct {
	mu   sync.Mutex
	sqls map[string]bool
}

func (r *statementRecorder) record(sql string) {
	if strings.Contains(sql, ".events") && !strings.HasPrefix(sql, "EXPLAIN") && !strings.HasPrefix(sql, "PREPARE") {
		r.mu.Lock()
		r.sqls[sql] = true
		r.mu.Unlock()
	}
}

func (r *statementRecorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	r.record(data.SQL)
	return ctx
}
func (r *statementRecorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// The statements of batches (a group's) too.
func (r *statementRecorder) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (r *statementRecorder) TraceBatchQuery(_ context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	r.record(data.SQL)
}
func (r *statementRecorder) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

var paramPattern = regexp.MustCompile(`\$(\d+)`)

// TestAppendPlansUseStreamIndex: on a new events table, with a few rows and
// no statistics, the generic plan of every statement an append runs finds
// the stream's events through the (category, stream_id, version) index,
// never through the category index: a generic plan made while the table is
// small is kept as it grows, and reading a stream through the category index
// reads every event of the category.
func TestAppendPlansUseStreamIndex(t *testing.T) {
	t.Parallel()
	recorder := &statementRecorder{sqls: map[string]bool{}}
	pool := configuredPool(t, func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = recorder })
	store := newStore(t, pool)
	ctx := context.Background()
	stream := meowmx.NewStream("plan", "1")
	ev := func(tags ...string) meowmx.Event { return meowmx.Event{Type: "T", Data: data, Tags: tags} }
	for i := range 6 {
		if _, err := store.Append(ctx, stream, meowmx.ExpectedVersion(i-1), ev()); err != nil {
			t.Fatal(err)
		}
	}
	appends := []struct {
		expected meowmx.ExpectedVersion
		events   []meowmx.Event
	}{
		{5, []meowmx.Event{ev("a")}}, {6, []meowmx.Event{ev(), ev()}}, {8, []meowmx.Event{ev("a"), ev()}},
		{meowmx.Any, []meowmx.Event{ev()}}, {meowmx.Any, []meowmx.Event{ev("b")}}, {meowmx.StreamExists, []meowmx.Event{ev()}},
	}
	for _, a := range appends {
		if _, err := store.Append(ctx, stream, a.expected, a.events...); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.AppendTx(ctx, tx, stream, meowmx.Any, ev("c")); err != nil {
		t.Fatal(err)
	}
	if _, err := store.AppendTx(ctx, tx, stream, meowmx.Any, ev()); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tags := range [][]string{nil, {"g"}} {
		group := []*meowmxdriver.AppendParams{
			{Schema: store.Schema(), Category: "plan", StreamID: "1", Expected: meowmx.Any,
				Events: []meowmxdriver.EventInsert{{ID: newID(t), Type: "T", Data: data, Tags: tags}}},
			{Schema: store.Schema(), Category: "plan", StreamID: "2", Expected: meowmx.Any,
				Events: []meowmxdriver.EventInsert{{ID: newID(t), Type: "T", Data: data}}},
		}
		if _, err := store.Driver().Executor().AppendGroup(ctx, group); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.StreamVersion(ctx, stream); err != nil {
		t.Fatal(err)
	}

	plans := recorder.plans(t, pool, "stream_id = ")
	for sql, plan := range plans {
		if strings.Contains(plan, "events_category_position_idx") {
			t.Errorf("the generic plan of\n%s\nreads the category index:\n%s", sql, plan)
		}
	}
	if checked := len(plans); checked < 6 {
		t.Fatalf("checked the plans of %d statements, want the 6 kinds of append at least", checked)
	}
}

func newID(t *testing.T) [16]byte {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// plans returns the generic plans of the statements recorded so far whose
// text contains part, by statement, and forgets what it recorded (the
// plans are made with statements too).
func (r *statementRecorder) plans(t *testing.T, pool *pgxpool.Pool, part string) map[string]string {
	t.Helper()
	r.mu.Lock()
	sqls := r.sqls
	r.sqls = map[string]bool{}
	r.mu.Unlock()
	plans := map[string]string{}
	for sql := range sqls {
		if strings.Contains(sql, part) {
			plans[sql] = genericPlanOf(t, pool, sql)
		}
	}
	return plans
}

// genericPlanOf returns the generic plan of sql, as EXPLAIN prints it, or
// fails the test.
func genericPlanOf(t *testing.T, pool *pgxpool.Pool, sql string) string {
	t.Helper()
	params := 0
	for _, m := range paramPattern.FindAllStringSubmatch(sql, -1) {
		var n int
		fmt.Sscan(m[1], &n)
		params = max(params, n)
	}
	plan, err := genericPlan(context.Background(), pool, sql, params)
	if err != nil {
		t.Fatalf("plan of\n%s\n%v", sql, err)
	}
	return plan
}

// genericPlan returns the generic plan of sql, a statement of params
// parameters, as EXPLAIN prints it.
func genericPlan(ctx context.Context, pool *pgxpool.Pool, sql string, params int) (string, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return "", err
	}
	// PREPARE outlives the transaction: the statement goes with it.
	defer func() {
		_, _ = tx.Exec(ctx, "DEALLOCATE plan_check", pgx.QueryExecModeSimpleProtocol)
		_ = tx.Rollback(ctx)
	}()
	for _, step := range []string{"SET LOCAL plan_cache_mode = force_generic_plan", "PREPARE plan_check AS " + sql} {
		if _, err := tx.Exec(ctx, step, pgx.QueryExecModeSimpleProtocol); err != nil {
			return "", err
		}
	}
	nulls := strings.TrimSuffix(strings.Repeat("NULL, ", params), ", ")
	rows, err := tx.Query(ctx, "EXPLAIN EXECUTE plan_check("+nulls+")", pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return "", err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return strings.Join(lines, "\n"), err
}

// TestGroupConditionPlanProbesEvents: on a new events table, the generic
// plan of a group's statement with conditions reads each event a condition
// finds by its position, never a hash of the whole events table (which an
// EXISTS on the events of the types became, planned while the table was
// small, and kept as it grows).
func TestGroupConditionPlanProbesEvents(t *testing.T) {
	t.Parallel()
	recorder := &statementRecorder{sqls: map[string]bool{}}
	pool := configuredPool(t, func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = recorder })
	store := newStore(t, pool)
	ctx := context.Background()
	cond := &meowmx.AppendCondition{FailIfEventsMatch: meowmx.Query{Items: []meowmx.QueryItem{{Types: []string{"T"}, Tags: []string{"course:c1", "student:s1"}}}}}
	group := make([]*meowmxdriver.AppendParams, 2)
	for i := range group {
		group[i] = &meowmxdriver.AppendParams{Schema: store.Schema(), Category: "plan", StreamID: fmt.Sprint(i), Expected: meowmx.Any,
			Condition: cond, Events: []meowmxdriver.EventInsert{{ID: newID(t), Type: "T", Data: data, Tags: []string{fmt.Sprint("seat:", i)}}}}
	}
	if _, err := store.Driver().Executor().AppendGroup(ctx, group); err != nil {
		t.Fatal(err)
	}
	plans := recorder.plans(t, pool, "failed AS MATERIALIZED")
	for sql, plan := range plans {
		if strings.Contains(plan, "hashed SubPlan") || strings.Contains(plan, "Seq Scan on events") {
			t.Errorf("the generic plan of\n%s\nhashes or scans the events table:\n%s", sql, plan)
		}
	}
	if len(plans) == 0 {
		t.Fatal("no group statement with conditions ran")
	}
}

// TestQueryReadPlansUseIndexes: the generic plans of query reads, forward
// and backward, find a tag's events through event_tags in position order
// and the events of types without tags through the events' primary key
// from the position, then each event by its position: never a scan of
// either table, nor a walk of an index from its start.
func TestQueryReadPlansUseIndexes(t *testing.T) {
	t.Parallel()
	recorder := &statementRecorder{sqls: map[string]bool{}}
	pool := configuredPool(t, func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = recorder })
	store := newStore(t, pool)
	ctx := context.Background()
	// 200,000 events, each tagged with one of 50 courses and a student of
	// its own: the size at which reading a table whole costs more than
	// finding a page of events through the indexes.
	schema := pgx.Identifier{store.Schema()}.Sanitize()
	for _, step := range []string{
		`INSERT INTO ` + schema + `.events (category, stream_id, stream_hash, version, event_id, type, data, tags)
		 SELECT 'plan', g::text, 0, 0, gen_random_uuid(), 'T' || g % 3, '{}', ARRAY['course:c' || g % 50, 'student:s' || g]
		   FROM generate_series(1, 200000) g`,
		`INSERT INTO ` + schema + `.event_tags (tag, transaction_id, seq) SELECT unnest(tags), transaction_id, seq FROM ` + schema + `.events`,
		`ANALYZE ` + schema + `.events`,
		`ANALYZE ` + schema + `.event_tags`,
	} {
		if _, err := pool.Exec(ctx, step); err != nil {
			t.Fatal(err)
		}
	}
	queries := []meowmx.Query{
		{Items: []meowmx.QueryItem{{Types: []string{"T1"}, Tags: []string{"course:c1", "student:s51"}}}},
		{Items: []meowmx.QueryItem{{Tags: []string{"course:c2"}}, {Types: []string{"T2"}}}},
	}
	for _, q := range queries {
		for _, backward := range []bool{false, true} {
			from := meowmx.Start
			if backward {
				from = meowmx.End
			}
			if _, err := store.ReadQuery(ctx, q, from, &meowmx.ReadQueryOpts{Backward: backward}); err != nil {
				t.Fatal(err)
			}
		}
	}
	plans := recorder.plans(t, pool, "/* query read */")
	for sql, plan := range plans {
		if strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Merge Join") || strings.Contains(plan, "Hash Join") {
			t.Errorf("the generic plan of\n%s\nscans or joins a table whole:\n%s", sql, plan)
		}
		lines := strings.Split(plan, "\n")
		for i, line := range lines {
			if (strings.Contains(line, "Index Scan") || strings.Contains(line, "Index Only Scan")) && (i+1 == len(lines) || !strings.Contains(lines[i+1], "Index Cond")) {
				t.Errorf("the generic plan of\n%s\nwalks an index with no bound:\n%s", sql, plan)
			}
		}
	}
	if len(plans) != 4 {
		t.Fatalf("checked the plans of %d query reads, want 4 (2 shapes, forward and backward)", len(plans))
	}
}
