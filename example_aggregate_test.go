package meowmx_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/meowmxsqlite"
)

// The events of a bank account, as Go types.
type AccountOpened struct {
	Owner string `json:"owner"`
}

type MoneyDeposited struct {
	Amount int `json:"amount"`
}

type MoneyWithdrawn struct {
	Amount int `json:"amount"`
}

// Account is the state the events build.
type Account struct {
	Owner   string `json:"owner"`
	Balance int    `json:"balance"`
}

func evolveAccount(a Account, event any) Account {
	switch e := event.(type) {
	case AccountOpened:
		a.Owner = e.Owner
	case MoneyDeposited:
		a.Balance += e.Amount
	case MoneyWithdrawn:
		a.Balance -= e.Amount
	}
	return a
}

var errInsufficientFunds = errors.New("insufficient funds")

func withdraw(amount int) meowmx.Decide[Account] {
	return func(a Account, version int64) ([]any, error) {
		if a.Balance < amount {
			return nil, errInsufficientFunds
		}
		return []any{MoneyWithdrawn{Amount: amount}}, nil
	}
}

// A bank account as an aggregate: typed events, a decide function per
// command, optimistic concurrency retried for you, snapshots every 100
// events.
func ExampleAggregate() {
	ctx := context.Background()
	db, cleanup := exampleDB()
	defer cleanup()
	store, err := meowmx.New(meowmxsqlite.New(db), nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	registry := meowmx.NewRegistry()
	_ = meowmx.Register[AccountOpened](registry, "AccountOpened")
	_ = meowmx.Register[MoneyDeposited](registry, "MoneyDeposited")
	_ = meowmx.Register[MoneyWithdrawn](registry, "MoneyWithdrawn")

	accounts, err := meowmx.NewAggregate(store, meowmx.AggregateConfig[Account]{
		Category:        "account",
		Registry:        registry,
		Evolve:          evolveAccount,
		SnapshotEvery:   100,
		SnapshotVersion: 1,
	})
	if err != nil {
		log.Fatal(err)
	}

	_, _, err = accounts.Execute(ctx, "acc-1", func(a Account, version int64) ([]any, error) {
		return []any{AccountOpened{Owner: "Ada"}, MoneyDeposited{Amount: 100}}, nil
	})
	if err != nil {
		log.Fatal(err)
	}
	account, recorded, err := accounts.Execute(ctx, "acc-1", withdraw(30))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(account.Owner, account.Balance, "after", recorded[0].Type, "at version", recorded[0].Version)

	_, _, err = accounts.Execute(ctx, "acc-1", withdraw(500))
	fmt.Println(errors.Is(err, errInsufficientFunds))

	account, version, _ := accounts.Load(ctx, "acc-1")
	fmt.Println(account.Balance, version)
	// Output:
	// Ada 70 after MoneyWithdrawn at version 2
	// true
	// 70 2
}
