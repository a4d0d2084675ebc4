package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // --sql-driver pgx
	_ "github.com/lib/pq"              // --sql-driver postgres

	"github.com/meowmx/meowmx/internal/bench"
)

// benchDefaultDB is bench's database when neither --db nor $MEOWMX_DB is
// given: the local PostgreSQL of the tests.
const benchDefaultDB = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func cmdBench(e *env) error {
	fs := newFlagSet(e, "bench", `Usage: meowmx bench [--scenario NAME[,NAME...]|all] [--duration 10s] [--json FILE] [--chart FILE.svg] [--otel]

Measures meowmx against a baseline of raw SQL on the same database, with the
same connections, payloads and durability settings, in the same run, and
prints meowmx's figure, the baseline's and their ratio (above 1: meowmx is
faster). Scenarios:

  append-1     single-event appends with an exact expected version, to
               distinct streams, at 1, 8, 32 and 64 writers; baseline: a
               bare autocommit INSERT into a table with a bigserial key and a
               unique (stream, version) index, each writer on its own
               connection (target on PostgreSQL: ratio ≥ 0.95 at 1 writer,
               ≥ 1.5 above, where appends are grouped; on SQLite ≥ 0.9 and
               ≥ 3; and a p99 latency at most 1.5× the baseline's)
  append-100   100-event appends; baseline: a 100-row INSERT (target ≥ 1.0)
  contention   8 writers on 10 hot streams, retrying conflicts; baseline:
               INSERT, and on a unique violation read the version and retry
  dcb          conditional appends without a stream, on disjoint tags (1 and
               8 writers) and on one hot tag (8 writers, reading again when
               a condition fails); baseline: the same appends without a
               condition (target at 8 writers on disjoint tags: ≥ 0.9)
  read-stream  read a 1,000-event stream; baseline: the plain SELECT
  catch-up     a subscription consumes 1,000,000 stored events; baseline: an
               ordered keyset scan in pages of the same size (target ≥ 0.3)
  latency      append to handler at 1,000 events/s, p50/p95/p99; baseline:
               INSERT with NOTIFY, received by LISTEN (target: p99 ≤ 10 ms)
  growth       append-1 and read-stream with 0, 1 and 5 million events
               stored (target: within 10% of the empty table's figures)

With --otel, append-1 and catch-up measure the cost of instrumentation
instead: a store observed by meowmxotel (spans through the SDK's
synchronous processor to an in-memory exporter that counts them, metrics
aggregated) against the same store without it (target ≥ 0.95); append-1
once more with meowmxotel's RequireParentSpan (its appends have no caller's
span, so only their metrics are recorded). catch-up's events are appended
by the instrumented store, so that they carry the trace context its
handler links to.

The database is --db or $MEOWMX_DB (default: the local test PostgreSQL,
postgres://postgres@127.0.0.1:5432/test?sslmode=disable);
SQLite runs every scenario but latency's baseline. With --sql-driver pgx
(pgx's stdlib) or --sql-driver postgres (lib/pq), PostgreSQL is reached
through database/sql: meowmx through meowmxdatabasesql, the baselines
through the same *sql.DB (latency's baseline and --replica need pgx). The
benchmark drops and
recreates its schema (--schema, default meowmx_bench; the name must contain
"bench"), so never point it at data you keep.

Examples:
  meowmx bench
  meowmx bench --scenario append-1,append-100 --duration 5s --chart append.svg
  meowmx bench --scenario all --json results.json --chart results.svg
  meowmx bench --db sqlite:bench.db --scenario append-1,read-stream
  meowmx bench --otel --scenario append-1,catch-up --writers 1,8
  meowmx bench --sql-driver postgres --scenario append-1,catch-up
  meowmx bench --db postgres://primary/app --replica postgres://standby/app --scenario catch-up`)
	scenario := fs.String("scenario", "all", "scenarios to run, comma-separated, or all")
	duration := fs.Duration("duration", 10*time.Second, "measuring time per setting and side")
	jsonFile := fs.String("json", "", "write the results as JSON to FILE")
	chartFile := fs.String("chart", "", "write an SVG chart of append throughput against writers to FILE")
	writers := fs.String("writers", "1,8,32,64", "append-1's writer counts")
	batchWriters := fs.String("batch-writers", "1,8", "append-100's writer counts")
	events := fs.Int("events", 1_000_000, "catch-up's stored events")
	growth := fs.String("growth", "0,1000000,5000000", "growth's stored event counts")
	rate := fs.Int("rate", 1000, "latency's events per second")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	otelCost := fs.Bool("otel", false, "measure append-1 and catch-up with meowmxotel on against off")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the command (meowmx's client side and the baselines') to FILE")
	sqlDriver := fs.String("sql-driver", "", "reach PostgreSQL through database/sql with this driver: pgx or postgres (lib/pq)")
	args, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	opts := &bench.Options{Duration: *duration, CatchUpEvents: *events, LatencyRate: *rate, Otel: *otelCost, Out: e.stdout, Progress: e.stderr}
	if *quiet {
		opts.Progress = nil
	}
	if *scenario != "all" {
		opts.Scenarios = strings.Split(*scenario, ",")
	} else if *otelCost {
		opts.Scenarios = bench.OtelScenarios
	}
	for _, list := range []struct {
		flag string
		in   string
		out  *[]int
	}{{"writers", *writers, &opts.Writers}, {"batch-writers", *batchWriters, &opts.BatchWriters}, {"growth", *growth, &opts.GrowthSizes}} {
		if *list.out, err = intList(list.in); err != nil {
			return usagef("--%s: %s", list.flag, err)
		}
	}
	if *duration <= 0 || *events < 1 || *rate < 1 {
		return usagef("--duration, --events and --rate must be positive")
	}
	if err := opts.Validate(); err != nil {
		return &usageError{msg: err.Error()}
	}
	if *chartFile != "" && *scenario != "all" && !strings.Contains(*scenario, "append-") {
		return usagef("--chart draws append-1 and append-100: run at least one of them")
	}
	schema := e.schema
	if schema == "" {
		schema = "meowmx_bench"
	}
	if !strings.Contains(schema, "bench") {
		return usagef("bench drops and recreates its schema: its name must contain \"bench\", got %q", schema)
	}
	url := e.db
	if e.dbDefault {
		url = benchDefaultDB
	}

	target, err := parseDatabase(url)
	if err != nil {
		return err
	}
	var db *bench.Database
	switch {
	case *sqlDriver != "" && *sqlDriver != "pgx" && *sqlDriver != "postgres":
		return usagef("--sql-driver is pgx or postgres, got %q", *sqlDriver)
	case *sqlDriver != "" && !target.postgres:
		return usagef("--sql-driver needs PostgreSQL")
	case *sqlDriver != "":
		db, err = bench.OpenPostgresSQL(e.ctx, *sqlDriver, target.conn, schema, opts.MaxWriters()+4)
		if err != nil {
			return fmt.Errorf("cannot connect to %s: %s", target.label, target.mask(err.Error()))
		}
	case target.postgres:
		// Every writer has its connection, plus the subscriptions' and
		// the notifications'.
		db, err = bench.OpenPostgres(e.ctx, target.conn, schema, opts.MaxWriters()+4)
		if err != nil {
			return fmt.Errorf("cannot connect to %s: %s", target.label, target.mask(err.Error()))
		}
	default:
		db, err = bench.OpenSQLite(e.ctx, target.conn, schema)
		if err != nil {
			return fmt.Errorf("cannot open %s: %w", target.label, err)
		}
	}
	defer db.Close()
	if e.replica != "" {
		standby, err := parseDatabase(e.replica)
		if err != nil {
			return err
		}
		if !target.postgres || !standby.postgres {
			return usagef("--replica needs PostgreSQL, for both it and --db")
		}
		if err := db.AddReplica(e.ctx, standby.conn); err != nil {
			return fmt.Errorf("replica %s: %s", standby.label, standby.mask(err.Error()))
		}
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	report, err := bench.Run(e.ctx, db, opts)
	if report != nil && *jsonFile != "" {
		if werr := writeFile(*jsonFile, report.WriteJSON); werr != nil && err == nil {
			err = werr
		}
	}
	if report != nil && *chartFile != "" && err == nil {
		if werr := writeFile(*chartFile, report.WriteChart); werr != nil {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	if missed := report.Missed(); len(missed) > 0 {
		fmt.Fprintf(e.stdout, "\n%d of %d results below target (see BENCHMARKS.md for why)\n", len(missed), len(report.Results))
	}
	return nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(part, "_", "")))
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", part)
		}
		out = append(out, n)
	}
	return out, nil
}

func writeFile(path string, write func(w io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
