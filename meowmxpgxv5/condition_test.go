package meowmxpgxv5_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meowmx/meowmx"
)

// TestConditionsUnderStricterDefault: a server, database or role whose
// default_transaction_isolation is REPEATABLE READ or SERIALIZABLE does not
// weaken conditional appends: their transactions are READ COMMITTED, so
// that the check's snapshot follows the locks. Writers race to claim one
// name, alone and grouped: exactly one wins each round.
func TestConditionsUnderStricterDefault(t *testing.T) {
	t.Parallel()
	for _, level := range []string{"repeatable read", "serializable"} {
		t.Run(level, func(t *testing.T) {
			t.Parallel()
			pool := configuredPool(t, func(cfg *pgxpool.Config) {
				cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = level
			})
			store := newStore(t, pool)
			ctx := t.Context()
			for round := range 10 {
				tag := fmt.Sprint("username:u", round)
				q := meowmx.Query{Items: []meowmx.QueryItem{{Types: []string{"Registered"}, Tags: []string{tag}}}}
				var winners atomic.Int64
				var wg sync.WaitGroup
				for range 12 {
					wg.Go(func() {
						_, err := store.AppendEvents(ctx, &meowmx.AppendCondition{FailIfEventsMatch: q},
							meowmx.Event{Type: "Registered", Data: data, Tags: []string{tag}})
						switch {
						case err == nil:
							winners.Add(1)
						case !errors.Is(err, meowmx.ErrAppendConditionFailed):
							t.Error(err)
						}
					})
				}
				wg.Wait()
				if n := winners.Load(); n != 1 {
					t.Fatalf("round %d: %d writers claimed the name", round, n)
				}
			}
		})
	}
}
