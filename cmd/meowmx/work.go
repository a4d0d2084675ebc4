package main

import (
	"context"
	"sync"
	"time"

	"github.com/meowmx/meowmx"
)

// cmdWork runs "meowmx work": a subscription worker that prints the events
// it handles, until interrupted or, with --until-idle, until it is idle.
func cmdWork(e *env) error {
	fs := newFlagSet(e, "work", `Usage: meowmx work --subscription NAME (--category C | --all) [--tag T ...] [--partitions N] [--batch N] [--until-idle DURATION] [--metrics HOST:PORT]

Runs a worker of the subscription NAME (created at the start of the log if
new) that prints every event it handles as a JSON line and commits its
checkpoint. Run several at once to share the work. SIGINT or SIGTERM stops
it gracefully; --until-idle exits with status 0 once the worker has caught
up with the log as it was at the start and nothing new has arrived for that
long. --metrics serves the store's metrics in the Prometheus text format at
http://HOST:PORT/metrics while it runs (see "Metrics" in the README).

Examples:
  meowmx work --subscription audit --all
  meowmx work --subscription audit --all --metrics 127.0.0.1:9464
  meowmx work --subscription orders --category order --partitions 4 --until-idle 2s
  meowmx work --subscription c1-roster --category course --tag course:c1`)
	name := fs.String("subscription", "", "subscription name (required)")
	category := fs.String("category", "", "the category to read")
	all := fs.Bool("all", false, "read every category")
	partitions := fs.Int("partitions", 1, "number of partitions of a new subscription")
	batch := fs.Int("batch", meowmx.BatchSizeDefault, "most events per batch")
	idle := fs.Duration("until-idle", 0, "exit once caught up and nothing has arrived for this long (0: run until interrupted)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9464)")
	var tags []string
	fs.Func("tag", "handle only events that carry this tag (repeat: all of them), fixed when the subscription is created", func(tag string) error {
		tags = append(tags, tag)
		return nil
	})
	args, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	switch {
	case len(args) > 0:
		return usagef("unexpected argument %q", args[0])
	case *name == "":
		return usagef("--subscription is required")
	case (*category == "") == !*all:
		return usagef("give --category C or --all")
	case *idle < 0:
		return usagef("--until-idle must not be negative")
	}
	var categories []string
	if *category != "" {
		categories = []string{*category}
	}
	b, closeAll, err := openObserved(e, *metricsAddr)
	if err != nil {
		return err
	}
	defer closeAll()
	p, _ := newPrinter(e.stdout, "json")
	w := workSpec{name: *name, categories: categories, tags: tags, partitions: *partitions, batch: *batch, idle: *idle, printer: p}
	if b.pg != nil {
		return runWork(e.ctx, b.pg, w)
	}
	return runWork(e.ctx, b.lite, w)
}

// workSpec is what "meowmx work" was asked to run.
type workSpec struct {
	name       string
	categories []string
	tags       []string
	partitions int
	batch      int
	idle       time.Duration
	printer    *printer
}

// runWork runs the worker of w on store until ctx is done, the
// subscription stops, or the worker has been idle for w.idle after catching
// up.
func runWork[TTx any](ctx context.Context, store *meowmx.Store[TTx], w workSpec) error {
	var (
		mu   sync.Mutex
		last = time.Now()
	)
	sub, err := store.Subscribe(meowmx.SubscriptionConfig[TTx]{
		Name: w.name, Categories: w.categories, Tags: w.tags, Partitions: w.partitions, BatchSize: w.batch,
		PollInterval: 200 * time.Millisecond,
		Handler: func(ctx context.Context, tx TTx, events []meowmx.RecordedEvent) error {
			mu.Lock()
			last = time.Now()
			mu.Unlock()
			return w.printer.print(events...)
		},
	})
	if err != nil {
		return err
	}
	if err := sub.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	stop := func() error {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sub.Stop(stopCtx); err != nil {
			return err
		}
		return sub.Err()
	}
	// --until-idle counts from the moment the worker has caught up with
	// the log as it was at the start, however long that takes.
	caughtUp := make(chan error, 1)
	waitCtx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	if w.idle > 0 {
		go func() { caughtUp <- store.WaitCaughtUp(waitCtx, w.name) }()
	}
	caught := false
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return stop()
		case <-sub.Stopped():
			return sub.Err()
		case err := <-caughtUp:
			if err != nil && ctx.Err() == nil {
				_ = stop()
				return err
			}
			caught = true
			mu.Lock()
			last = time.Now()
			mu.Unlock()
		case <-tick.C:
			if !caught {
				continue
			}
			mu.Lock()
			quiet := time.Since(last)
			mu.Unlock()
			if quiet >= w.idle {
				return stop()
			}
		}
	}
}
