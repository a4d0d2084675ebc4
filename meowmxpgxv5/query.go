package meowmxpgxv5

import (
	"context"
	"fmt"
	"strings"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

func (e *executor) ReadQuery(ctx context.Context, p *meowmxdriver.ReadQueryParams) ([]meowmxtype.RecordedEvent, error) {
	return e.events(ctx, p.Schema, p.Limit, func(st *statements) (string, []any) {
		return readQuerySQL(st.ident, p)
	})
}

// readQuerySQL builds the statement of a query: one branch per item, each
// the first Limit events after the position that match the item, below the
// visibility horizon, found through the index that serves it; then the
// events of their union, in global order, limited. An item with tags walks
// event_tags for its first tag, in position order, and checks its other
// tags there and its types on the event; an item without tags walks the
// events from the position, checking their types. The statement's text
// depends only on the query's shape (how many items, which have tags or
// types), so that pgx prepares one per shape.
func readQuerySQL(schema string, p *meowmxdriver.ReadQueryParams) (string, []any) {
	args := []any{p.AfterTxID, p.AfterSeq, p.Limit}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "SELECT %s FROM %s.events WHERE (transaction_id, seq) IN (", eventColumns, schema)
	for i, item := range p.Query.Items {
		if i > 0 {
			b.WriteString("\n  UNION ")
		}
		if len(item.Tags) > 0 {
			fmt.Fprintf(&b, `(SELECT t.transaction_id, t.seq FROM %[1]s.event_tags t
     WHERE t.tag = %[2]s AND (t.transaction_id, t.seq) > ($1, $2) AND t.transaction_id < %[1]s.visible_horizon()`,
				schema, arg(item.Tags[0]))
			if rest := item.Tags[1:]; len(rest) > 0 {
				fmt.Fprintf(&b, `
       AND (SELECT count(*) FROM %[1]s.event_tags u
             WHERE u.tag = ANY(%[2]s::text[]) AND u.transaction_id = t.transaction_id AND u.seq = t.seq) = %[3]d`,
					schema, arg(rest), len(rest))
			}
			if len(item.Types) > 0 {
				fmt.Fprintf(&b, `
       AND EXISTS (SELECT FROM %[1]s.events e
                    WHERE e.transaction_id = t.transaction_id AND e.seq = t.seq AND e.type = ANY(%[2]s::text[]))`,
					schema, arg(item.Types))
			}
			b.WriteString("\n     ORDER BY t.transaction_id, t.seq LIMIT $3)")
			continue
		}
		fmt.Fprintf(&b, `(SELECT e.transaction_id, e.seq FROM %[1]s.events e
     WHERE (e.transaction_id, e.seq) > ($1, $2) AND e.transaction_id < %[1]s.visible_horizon()`, schema)
		if len(item.Types) > 0 {
			fmt.Fprintf(&b, " AND e.type = ANY(%s::text[])", arg(item.Types))
		}
		b.WriteString("\n     ORDER BY e.transaction_id, e.seq LIMIT $3)")
	}
	b.WriteString(")\n ORDER BY transaction_id, seq\n LIMIT $3")
	return b.String(), args
}
