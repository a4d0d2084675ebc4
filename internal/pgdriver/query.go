package pgdriver

import (
	"context"
	"fmt"
	"strings"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

func (e *executor) ReadQuery(ctx context.Context, p *meowmxdriver.ReadQueryParams) ([]meowmxtype.RecordedEvent, error) {
	return e.events(ctx, p.Schema, p.Limit, func(st *statements) (string, []any) {
		return readQuerySQL(st.ident, p, true)
	})
}

// readQuerySQL builds the statement of a query: the events of queryUnion,
// in global order (reversed when p.Backward), limited. bounded keeps them
// below the visibility horizon; a condition's check reads every committed
// event. The positions are sorted and limited first, then each event is
// read by its position: planned as a join, a query of several items had a
// generic plan that merged the positions with a walk of the events'
// primary key from the start of the log. The LIMIT 1 keeps the LATERAL
// subquery from being flattened into a join again, so the plan is a probe
// per position whatever the estimates. The statement's first line names it
// for the tests of its plans.
func readQuerySQL(schema string, p *meowmxdriver.ReadQueryParams, bounded bool) (string, []any) {
	args := &argList{args: []any{p.AfterTxID, p.AfterSeq, p.Limit}}
	order := "transaction_id, seq"
	if p.Backward {
		order = "transaction_id DESC, seq DESC"
	}
	var b strings.Builder
	b.WriteString("/* query read */ SELECT e.* FROM (SELECT * FROM (")
	queryUnion(&b, schema, p.Query, "$1", "$2", "$3", bounded, p.Backward, args)
	fmt.Fprintf(&b, `
) u ORDER BY %[1]s LIMIT $3) p
 CROSS JOIN LATERAL (SELECT %[2]s FROM %[3]s.events
                      WHERE transaction_id = p.transaction_id AND seq = p.seq LIMIT 1) e
 ORDER BY p.%[4]s`, order, eventColumns, schema, strings.ReplaceAll(order, ", ", ", p."))
	return b.String(), args.args
}

// argList numbers the arguments of a statement being built.
type argList struct{ args []any }

// add appends v and returns its placeholder.
func (a *argList) add(v any) string {
	a.args = append(a.args, v)
	return fmt.Sprintf("$%d", len(a.args))
}

// queryUnion writes the positions of the events matching query after the
// position (afterTx, afterSeq) (placeholders), limit of them per item: one
// branch per item, each found through the index that serves it. An item
// with tags walks event_tags for its first tag, in position order, and
// checks its other tags there and its types on the event; an item without
// tags walks the events from the position, checking their types. bounded
// keeps the events below the visibility horizon. backward takes the events
// before the position instead, the newest first. The text depends only on
// the query's shape (how many items, which have tags or types), so that
// pgx prepares one statement per shape.
func queryUnion(b *strings.Builder, schema string, query meowmxtype.Query, afterTx, afterSeq, limit string, bounded, backward bool, args *argList) {
	cmp, order := ">", ""
	if backward {
		cmp, order = "<", " DESC"
	}
	horizon := func(col string) string {
		if !bounded {
			return ""
		}
		return fmt.Sprintf(" AND %s < %s.visible_horizon()", col, schema)
	}
	for i, item := range query.Items {
		if i > 0 {
			b.WriteString("\n  UNION ")
		}
		if len(item.Tags) > 0 {
			fmt.Fprintf(b, `(SELECT t.transaction_id, t.seq FROM %[1]s.event_tags t
     WHERE t.tag = %[2]s AND (t.transaction_id, t.seq) %[6]s (%[3]s, %[4]s)%[5]s`,
				schema, args.add(item.Tags[0]), afterTx, afterSeq, horizon("t.transaction_id"), cmp)
			if rest := item.Tags[1:]; len(rest) > 0 {
				fmt.Fprintf(b, `
       AND (SELECT count(*) FROM %[1]s.event_tags u
             WHERE u.tag = ANY(%[2]s::text[]) AND u.transaction_id = t.transaction_id AND u.seq = t.seq) = %[3]d`,
					schema, args.add(rest), len(rest))
			}
			if len(item.Types) > 0 {
				fmt.Fprintf(b, `
       AND EXISTS (SELECT FROM %[1]s.events e
                    WHERE e.transaction_id = t.transaction_id AND e.seq = t.seq AND e.type = ANY(%[2]s::text[]))`,
					schema, args.add(item.Types))
			}
			fmt.Fprintf(b, "\n     ORDER BY t.transaction_id%[1]s, t.seq%[1]s LIMIT %[2]s)", order, limit)
			continue
		}
		fmt.Fprintf(b, `(SELECT e.transaction_id, e.seq FROM %[1]s.events e
     WHERE (e.transaction_id, e.seq) %[5]s (%[2]s, %[3]s)%[4]s`, schema, afterTx, afterSeq, horizon("e.transaction_id"), cmp)
		if len(item.Types) > 0 {
			fmt.Fprintf(b, " AND e.type = ANY(%s::text[])", args.add(item.Types))
		}
		fmt.Fprintf(b, "\n     ORDER BY e.transaction_id%[1]s, e.seq%[1]s LIMIT %[2]s)", order, limit)
	}
}

// queryUnionArgs appends to args the arguments queryUnion adds for query,
// in its order, without building its text.
func queryUnionArgs(query meowmxtype.Query, args *argList) {
	for _, item := range query.Items {
		if len(item.Tags) > 0 {
			args.args = append(args.args, item.Tags[0])
			if rest := item.Tags[1:]; len(rest) > 0 {
				args.args = append(args.args, rest)
			}
		}
		if len(item.Types) > 0 {
			args.args = append(args.args, item.Types)
		}
	}
}
