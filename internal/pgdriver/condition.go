package pgdriver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

// Conditional appends (Dynamic Consistency Boundaries).
//
// A condition says: fail if an event matching the query exists after the
// position the caller read up to. Two appends whose conditions cover each
// other's events must not both commit, and no writer may be serialized
// behind an unrelated one. The scheme is advisory locks of the
// transaction, one key per tag (and schema):
//
//   - Every append of tagged events takes, before it inserts its first row, a
//     shared lock on the key of each tag of its events (sharedTagLocks in its
//     statement; in the caller's transaction, lockSQL in a statement before).
//   - A conditional append takes, in a statement of its own before its
//     check, an exclusive lock on the key of each item's first tag: an event
//     that matches the item carries that tag, so its writer took a shared
//     lock on the same key. It takes the shared keys of its own events in the
//     same statement, every key in sorted order, so that two conditional
//     appends never wait for each other in a cycle.
//   - Then, with a snapshot taken after the locks, one statement checks the
//     condition over every committed event (without the visibility horizon)
//     and inserts the events only if nothing matches.
//
// A writer of a covered event either committed before the conditional
// append got its lock, and the check sees its event, or it waits at its
// shared lock until the conditional append commits or rolls back. A writer
// in a transaction of its own takes its transaction id afterwards, so that
// its events follow; one in a caller's transaction that took its id before
// is refused (tagsNotTooOld), since its events would land before. Writers
// of other tags share no key and never wait.
//
// Keys are per tag, not per (type, tag): a condition on one type of a tag
// also waits for writers of the tag's other types. Keys per (type, tag)
// need a second key per tag (for items without types), and measured slower:
// 8 writers of conditional appends on disjoint tags that also shared one
// tag cost 165 µs of CPU per append (client and server) with two keys per
// tag, 128 µs with one, against 126 µs for the same appends without a
// condition (BenchmarkAppendTaggedConcurrent): shared locks on a key that
// every writer takes contend in the server's lock manager.
//
// An item without tags names no key that its events would lock: a condition
// with one locks the events table in SHARE ROW EXCLUSIVE mode instead,
// which waits for every writer in progress and holds every new one until
// the conditional append ends. Correct, and serial: give items tags. A
// caller's transaction that took its id before and inserts only after the
// lock is gone would still land before it: the append records its id in
// table_lock_fence, and notTooOld refuses such a transaction.

// tagKey is the advisory lock key of the events that carry tag, in schema.
// Two tags whose keys collide only make unrelated appends wait for each
// other.
func tagKey(schema, tag string) int64 {
	h := fnv.New64a()
	h.Write([]byte("meowmx.tag\x00"))
	h.Write([]byte(schema))
	h.Write([]byte{0})
	h.Write([]byte(tag))
	return int64(h.Sum64())
}

// eventTagKeys returns the keys that appending events locks shared, sorted,
// each once; nil for events without tags.
func eventTagKeys(schema string, events []meowmxdriver.EventInsert) []int64 {
	var keys []int64
	for _, ev := range events {
		for _, tag := range ev.Tags {
			keys = append(keys, tagKey(schema, tag))
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// eventTags returns every tag of events, each once.
func eventTags(events []meowmxdriver.EventInsert) []string {
	tags := []string{}
	for _, ev := range events {
		for _, tag := range ev.Tags {
			if !slices.Contains(tags, tag) {
				tags = append(tags, tag)
			}
		}
	}
	return tags
}

// appendLocks are the locks an append takes in lockSQL.
type appendLocks struct {
	keys      []int64 // sorted
	exclusive []bool  // per key
	// table: an item of the condition has no tags; lock the events table.
	table bool
}

// locksOf returns the locks of an append: shared keys for its events' tags,
// exclusive keys for its condition's items.
func locksOf(schema string, p *meowmxdriver.AppendParams) appendLocks {
	mode := map[int64]bool{}
	for _, k := range eventTagKeys(schema, p.Events) {
		mode[k] = false
	}
	var l appendLocks
	if p.Condition != nil {
		for _, item := range p.Condition.FailIfEventsMatch.Items {
			if len(item.Tags) == 0 {
				l.table = true
				continue
			}
			mode[tagKey(schema, item.Tags[0])] = true
		}
	}
	if l.table {
		// The table's lock shuts out every other writer until the append
		// ends, and a writer's insert takes its snapshot after it: no
		// advisory lock is needed, and taking some after the table's lock
		// could close a cycle with a writer that holds one and waits to
		// insert.
		return l
	}
	return appendLocksOf(mode)
}

// appendLocksOf returns the locks of keys, exclusive or not.
func appendLocksOf(mode map[int64]bool) appendLocks {
	var l appendLocks
	for k := range mode {
		l.keys = append(l.keys, k)
	}
	slices.Sort(l.keys)
	l.exclusive = make([]bool, len(l.keys))
	for i, k := range l.keys {
		l.exclusive[i] = mode[k]
	}
	return l
}

// groupConditions are the arguments of groupConditionsFailed: one element
// per condition item.
type groupConditions struct {
	members  []int32
	tags     []string
	afterTx  []string
	afterSeq []int64
	rest     [][]byte
	types    [][]byte
}

// add adds the items of the condition of append m (from 1).
func (g *groupConditions) add(m int32, c *meowmxtype.AppendCondition) {
	for _, item := range c.FailIfEventsMatch.Items {
		g.members = append(g.members, m)
		g.tags = append(g.tags, item.Tags[0])
		g.afterTx = append(g.afterTx, strconv.FormatUint(c.After.TransactionID, 10))
		g.afterSeq = append(g.afterSeq, c.After.Seq)
		g.rest = append(g.rest, jsonList(item.Tags[1:]))
		g.types = append(g.types, jsonList(item.Types))
	}
}

// jsonList is a JSON array of values, or nil (NULL) for none.
func jsonList(values []string) []byte {
	if len(values) == 0 {
		return nil
	}
	b, _ := json.Marshal(values) // strings always marshal
	return b
}

// lockSQL takes an append's advisory locks, in the order of the keys, and
// returns the transaction's isolation level and, if the transaction has an
// id already, its position transaction id.
const lockSQL = `SELECT current_setting('transaction_isolation'),
       CASE WHEN pg_current_xact_id_if_assigned() IS NULL THEN NULL ELSE {{schema}}.current_position_txid() END,
       (SELECT count(CASE WHEN l.x THEN pg_advisory_xact_lock(l.k)::text ELSE pg_advisory_xact_lock_shared(l.k)::text END)
          FROM unnest($1::bigint[], $2::bool[]) AS l(k, x))`

// conditionalAppendSQL is the statement of a conditional append: appendSQL,
// with notTooOld and tagsNotTooOld in the caller's transaction, that
// inserts only when no committed event matches the condition after its
// position, and records the events' tags. args are its arguments after the
// 9 (10 in the caller's transaction) of appendSQL.
//
// With an exact expected version in a transaction of its own (exact), it is
// appendAtSQL instead, which leaves the version and the event IDs to the
// unique indexes, with 10 arguments (the last, its shared locks, empty:
// lockSQL took them).
//
// The text depends only on the condition's shape: it is built once per
// shape and schema (a regular expression and a dozen formatted parts cost
// more client CPU than the rest of the append), and queryUnionArgs gives
// the arguments in the order queryUnion numbers them.
func conditionalAppendSQL(st *statements, c *meowmxtype.AppendCondition, inTx, exact bool) (sql string, args []any) {
	list := &argList{args: make([]any, 0, 2+3*len(c.FailIfEventsMatch.Items))}
	list.args = append(list.args, c.After.TransactionID, c.After.Seq)
	queryUnionArgs(c.FailIfEventsMatch, list)
	key := shapeOf(c.FailIfEventsMatch, inTx, exact)
	if cached, ok := st.conditional.Load(key); ok {
		return cached.(string), list.args
	}
	sql, built := buildConditionalAppendSQL(st, c, inTx, exact)
	if len(built) != len(list.args) {
		panic(fmt.Sprintf("meowmx: a condition's statement takes %d arguments, queryUnionArgs gives %d", len(built), len(list.args)))
	}
	st.conditional.Store(key, sql)
	return sql, list.args
}

// shapeOf names what the text of a conditional append's statement depends
// on.
func shapeOf(q meowmxtype.Query, inTx, exact bool) string {
	b := make([]byte, 0, 2+3*len(q.Items))
	b = strconv.AppendBool(b, inTx)
	b = strconv.AppendBool(b, exact)
	for _, item := range q.Items {
		b = append(b, '|')
		b = strconv.AppendInt(b, int64(len(item.Tags)), 10)
		b = strconv.AppendBool(b, len(item.Types) > 0)
	}
	return string(b)
}

func buildConditionalAppendSQL(st *statements, c *meowmxtype.AppendCondition, inTx, exact bool) (sql string, args []any) {
	base := 9
	insert, tail := appendSQL, appendTail
	switch {
	case inTx:
		base = 10
		insert += notTooOld + tagsNotTooOld
	case exact:
		base = 10
		const order = "\n ORDER BY i.ord\n"
		at := strings.Index(appendAtSQL, order)
		if at < 0 {
			panic("meowmx: appendAtSQL without " + order)
		}
		insert, tail = appendAtSQL[:at], appendAtSQL[at:]
	}
	list := &argList{args: make([]any, base)}
	afterTx, afterSeq := list.add(c.After.TransactionID), list.add(c.After.Seq)
	var b strings.Builder
	b.WriteString(insert)
	b.WriteString("\n   AND NOT EXISTS (")
	queryUnion(&b, "{{schema}}", c.FailIfEventsMatch, afterTx, afterSeq, "1", false, false, list)
	b.WriteString(")")
	b.WriteString(tail)
	sql = strings.ReplaceAll(withTags(b.String()), "{{schema}}", st.ident)
	return sql, list.args[base:]
}

// firstMatch returns the first committed event matching c after its
// position, or nil.
func firstMatch(ctx context.Context, db Querier, st *statements, c *meowmxtype.AppendCondition) (*meowmxtype.RecordedEvent, error) {
	sql, args := readQuerySQL(st.ident, &meowmxdriver.ReadQueryParams{
		Query: c.FailIfEventsMatch, AfterTxID: c.After.TransactionID, AfterSeq: c.After.Seq, Limit: 1,
	}, false)
	events, err := queryEvents(ctx, db, 1, sql, args...)
	if err != nil || len(events) == 0 {
		return nil, err
	}
	return &events[0], nil
}

// appendConditional records a conditional append (p.Condition is set): in
// a transaction of its own, one round trip of BEGIN, the locks, the
// conditional insert and COMMIT; in the caller's transaction, the locks,
// then the insert. When it records nothing, the verdict says why.
func (e *executor) appendConditional(ctx context.Context, db Querier, st *statements, p *meowmxdriver.AppendParams, ids [][16]byte, types []string, data, metadata [][]byte) (*meowmxdriver.AppendResult, error) {
	n := len(p.Events)
	tags := make([][]byte, n)
	for i, ev := range p.Events {
		var err error
		if tags[i], err = tagsJSON(ev.Tags); err != nil {
			return nil, err
		}
	}
	inTx := e.tx != nil
	locks := locksOf(st.schema, p)
	exact := !inTx && p.Expected >= -1
	sql, condArgs := conditionalAppendSQL(st, p.Condition, inTx, exact)
	args := []any{p.Category, p.StreamID, p.StreamHash, p.Expected, ids, types, data, metadata, tags}
	switch {
	case inTx:
		args = append(args, eventTags(p.Events))
	case exact:
		args = append(args, []int64{})
	}
	args = append(args, condArgs...)

	for attempt := 0; ; attempt++ {
		var rows []meowmxtype.RecordedEvent
		var err error
		if inTx {
			rows, err = e.conditionalInTx(ctx, db, st, p, ids, locks, sql, args)
		} else {
			rows, err = conditionalAlone(ctx, db, st, p, ids, locks, sql, args)
		}
		var result *meowmxdriver.AppendResult
		refused := err // a unique index refused a row: the verdict says why
		switch {
		case errors.Is(err, errTooOld):
			return &meowmxdriver.AppendResult{Status: meowmxdriver.AppendTooOld}, nil
		case err != nil && (inTx || !errors.Is(err, meowmxdriver.ErrVersionTaken) && !errors.Is(err, meowmxtype.ErrDuplicateEventID)):
			return nil, err
		case len(rows) > 0:
			return &meowmxdriver.AppendResult{Status: meowmxdriver.AppendRecorded, Rows: rows}, nil
		}
		// Nothing recorded: a recorded event ID, a matching event, the
		// stream's version or, in the caller's transaction, its age.
		if result, err = appendVerdict(ctx, db, st, p, ids, inTx); err != nil || result.Status == meowmxdriver.AppendExisting {
			return result, err
		}
		match, err := firstMatch(ctx, db, st, p.Condition)
		if err != nil {
			return nil, err
		}
		if match != nil {
			return &meowmxdriver.AppendResult{Status: meowmxdriver.AppendConditionFailed, Rows: []meowmxtype.RecordedEvent{*match}}, nil
		}
		if result.Status != meowmxdriver.AppendRecorded {
			return result, nil
		}
		if refused != nil {
			// Nothing in the way of the first event ID, the condition or
			// the expected version: a lost race for the version (Any,
			// StreamExists) or a later event ID recorded. The caller knows
			// what to do with either, as after an unconditional append.
			return nil, refused
		}
		if attempt >= 10 {
			return nil, errors.New("conditional append recorded nothing, with nothing in its way, 10 times")
		}
	}
}

// errTooOld: the caller's transaction has an id below the condition's
// position, so its events would not follow the events the condition covered.
var errTooOld = errors.New("transaction too old for the condition")

// conditionalAlone runs a conditional append in a transaction of its own:
// one batch.
func conditionalAlone(ctx context.Context, db Querier, st *statements, p *meowmxdriver.AppendParams, ids [][16]byte, locks appendLocks, sql string, args []any) ([]meowmxtype.RecordedEvent, error) {
	// BEGIN, the locks (the table's and the fence, or the tags'), the insert,
	// COMMIT.
	batch := &pgx.Batch{}
	batch.Queue(beginReadCommitted)
	if locks.table {
		batch.Queue(st.lockEventsShared)
		batch.Queue(st.raiseFence)
	} else {
		batch.Queue(st.lockTags, locks.keys, locks.exclusive)
	}
	before := batch.Len()
	batch.Queue(sql, args...)
	batch.Queue("COMMIT")
	br := db.SendBatch(ctx, batch)
	var rows []meowmxtype.RecordedEvent
	err := func() error {
		for range before {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		r, err := br.Query()
		if rows, err = scanRows(r, err, p, ids); err != nil {
			return err
		}
		_, err = br.Exec() // COMMIT
		return err
	}()
	if refused, err := finishBatch(ctx, db, br, err); err != nil {
		if !refused && !errors.Is(err, meowmxdriver.ErrVersionTaken) && !errors.Is(err, meowmxtype.ErrDuplicateEventID) {
			return nil, fmt.Errorf("meowmx: the conditional append's outcome is unknown, its events may be recorded (retrying with the same event IDs is safe): %w", err)
		}
		return nil, err
	}
	return rows, nil
}

// conditionalInTx runs a conditional append in the caller's transaction,
// which must be READ COMMITTED: at a higher isolation level, the check's
// snapshot would be the transaction's first one, blind to what committed
// since.
func (e *executor) conditionalInTx(ctx context.Context, db Querier, st *statements, p *meowmxdriver.AppendParams, ids [][16]byte, locks appendLocks, sql string, args []any) ([]meowmxtype.RecordedEvent, error) {
	if locks.table {
		for _, sql := range []string{st.lockEventsShared, st.raiseFence} {
			if _, err := db.Exec(ctx, sql); err != nil {
				return nil, mapError(err)
			}
		}
	}
	var isolation string
	var txID *uint64
	var count int64
	if err := db.QueryRow(ctx, st.lockTags, locks.keys, locks.exclusive).Scan(&isolation, &txID, &count); err != nil {
		return nil, mapError(err)
	}
	if isolation != "read committed" {
		return nil, meowmxtype.Invalid("a conditional append in the caller's transaction needs isolation level READ COMMITTED, not %s: "+
			"a later snapshot would not see what committed after the transaction's first", strings.ToUpper(isolation))
	}
	if txID != nil && *txID < p.Condition.After.TransactionID {
		// The transaction took its id before the condition's position:
		// its events would come before events the condition covered.
		return nil, errTooOld
	}
	r, err := db.Query(ctx, sql, args...)
	return scanRows(r, err, p, ids)
}
