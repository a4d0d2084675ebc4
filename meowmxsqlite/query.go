package meowmxsqlite

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/meowmx/meowmx/meowmxdriver"
	"github.com/meowmx/meowmx/meowmxtype"
)

func (e *executor) ReadQuery(ctx context.Context, p *meowmxdriver.ReadQueryParams) ([]meowmxtype.RecordedEvent, error) {
	if p.AfterTxID != 0 {
		// A position with a transaction id is PostgreSQL's, after every
		// SQLite event, as in ReadGlobal.
		if !p.Backward {
			return nil, ctx.Err()
		}
		end := *p
		end.AfterTxID, end.AfterSeq = 0, math.MaxInt64
		p = &end
	}
	query, args := readQuerySQL(e.driver.statements(p.Schema).prefix, p)
	events, err := queryEvents(ctx, e.reader(), query, args...)
	return events, mapError(err)
}

// readQuerySQL builds the statement of a query: one branch per item, each
// the first Limit events after the position that match the item, found
// through the index that serves it; then the events of their union, in
// global order, limited. An item with tags walks event_tags for its first
// tag, in seq order, and checks its other tags there and its types on the
// event; an item without tags walks the events from the position, checking
// their types. p.Backward reads the events before the position instead,
// the newest first.
func readQuerySQL(prefix string, p *meowmxdriver.ReadQueryParams) (string, []any) {
	args := []any{p.AfterSeq, p.Limit}
	list := func(values []string) string {
		marks := make([]string, len(values))
		for i, v := range values {
			args = append(args, v)
			marks[i] = fmt.Sprintf("?%d", len(args))
		}
		return strings.Join(marks, ", ")
	}
	cmp, order := ">", ""
	if p.Backward {
		cmp, order = "<", " DESC"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "SELECT %s FROM %sevents WHERE seq IN (", eventColumns, prefix)
	for i, item := range p.Query.Items {
		if i > 0 {
			b.WriteString("\n  UNION ")
		}
		if len(item.Tags) > 0 {
			fmt.Fprintf(&b, `SELECT * FROM (SELECT t.seq FROM %[1]sevent_tags t
     WHERE t.tag = %[2]s AND t.seq %[3]s ?1`, prefix, list(item.Tags[:1]), cmp)
			if rest := item.Tags[1:]; len(rest) > 0 {
				fmt.Fprintf(&b, `
       AND (SELECT count(*) FROM %[1]sevent_tags u WHERE u.tag IN (%[2]s) AND u.seq = t.seq) = %[3]d`,
					prefix, list(rest), len(rest))
			}
			if len(item.Types) > 0 {
				fmt.Fprintf(&b, `
       AND EXISTS (SELECT 1 FROM %[1]sevents e WHERE e.seq = t.seq AND e.type IN (%[2]s))`, prefix, list(item.Types))
			}
			fmt.Fprintf(&b, "\n     ORDER BY t.seq%s LIMIT ?2)", order)
			continue
		}
		fmt.Fprintf(&b, `SELECT * FROM (SELECT e.seq FROM %[1]sevents e WHERE e.seq %[2]s ?1`, prefix, cmp)
		if len(item.Types) > 0 {
			fmt.Fprintf(&b, " AND e.type IN (%s)", list(item.Types))
		}
		fmt.Fprintf(&b, " ORDER BY e.seq%s LIMIT ?2)", order)
	}
	fmt.Fprintf(&b, ")\n ORDER BY seq%s\n LIMIT ?2", order)
	return b.String(), args
}
