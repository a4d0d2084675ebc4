package pgdriver

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/meowmx/meowmx/meowmxtype"
)

// TestQueryUnionArgs: queryUnionArgs gives queryUnion's arguments, in its
// order, and conditional statements cached by shape are the ones built for
// each condition.
func TestQueryUnionArgs(t *testing.T) {
	st := newStatements("s")
	queries := []meowmxtype.Query{
		{Items: []meowmxtype.QueryItem{{Tags: []string{"a"}}}},
		{Items: []meowmxtype.QueryItem{{Tags: []string{"a", "b"}}}},
		{Items: []meowmxtype.QueryItem{{Tags: []string{"a", "b", "c"}, Types: []string{"T"}}}},
		{Items: []meowmxtype.QueryItem{{Types: []string{"T", "U"}}}},
		{Items: []meowmxtype.QueryItem{{}}},
		{Items: []meowmxtype.QueryItem{{Tags: []string{"a"}}, {Types: []string{"T"}}, {Tags: []string{"x", "y"}, Types: []string{"U"}}, {}}},
	}
	for i, q := range queries {
		var b strings.Builder
		built := &argList{}
		queryUnion(&b, "s", q, "$1", "$2", "1", false, false, built)
		mirrored := &argList{}
		queryUnionArgs(q, mirrored)
		if !reflect.DeepEqual(built.args, mirrored.args) {
			t.Errorf("query %d: queryUnion's arguments %v, queryUnionArgs's %v", i, built.args, mirrored.args)
		}
		for _, mode := range [][2]bool{{false, false}, {false, true}, {true, false}} {
			c := &meowmxtype.AppendCondition{FailIfEventsMatch: q, After: meowmxtype.Position{TransactionID: 7, Seq: 3}}
			wantSQL, wantArgs := buildConditionalAppendSQL(st, c, mode[0], mode[1])
			for range 2 { // built, then cached
				sql, args := conditionalAppendSQL(st, c, mode[0], mode[1])
				if sql != wantSQL || fmt.Sprint(args) != fmt.Sprint(wantArgs) {
					t.Fatalf("query %d, mode %v: the cached statement or its arguments differ from the built ones", i, mode)
				}
			}
		}
	}
	// Queries of different shapes never share a statement.
	seen := map[string]int{}
	for i, q := range queries {
		sql, _ := conditionalAppendSQL(st, &meowmxtype.AppendCondition{FailIfEventsMatch: q}, false, false)
		if j, ok := seen[sql]; ok {
			t.Errorf("queries %d and %d share a statement", j, i)
		}
		seen[sql] = i
	}
}
