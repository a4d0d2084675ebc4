// Command meowmx runs the demo and inspects and operates a meowmx event
// store: migrate, append, read, work, subscriptions, demo, version.
//
// The database is --db or $MEOWMX_DB: postgres://..., postgresql://... or
// key/value pairs (host=... dbname=...) for PostgreSQL, sqlite:PATH or a
// path without a scheme for SQLite, sqlite:meowmx.db by default; any other
// scheme is refused. --schema (or $MEOWMX_SCHEMA) chooses the schema.
// --replica (or $MEOWMX_REPLICA) names a hot standby of a PostgreSQL --db
// that serves the reads, and --listen-db (or $MEOWMX_LISTEN_DB) where to
// listen for appends when --db goes through a pooler in transaction mode.
// All four are accepted before and after the command name.
//
// Exit codes: 0 success, 1 error, 2 usage error or bad input, 3 version
// conflict, 130 interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/meowmx/meowmx"
)

const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitConflict = 3
	// exitInterrupted is 128 + SIGINT, as shells report an interrupted
	// command.
	exitInterrupted = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is what a command gets: its arguments, the streams, and the database
// settings.
type env struct {
	ctx    context.Context
	args   []string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	db     string
	schema string
	// replica is the hot standby that serves reads (--replica), or "".
	replica string
	// listenDB is where to LISTEN instead of --db (--listen-db), "none"
	// behind a transaction pooler with no way around it, or "".
	listenDB string
	// dbDefault: neither --db nor $MEOWMX_DB was given.
	dbDefault bool
	// flags is the flag set the command made last (for completion).
	flags *flag.FlagSet
	// observer, when set, goes into the store's config (--metrics).
	observer meowmx.Observer
}

// usageError is bad usage or input: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

type command struct {
	name    string
	summary string
	run     func(e *env) error
}

var commands []command

func init() {
	commands = []command{
		{"migrate", "create or upgrade the schema", cmdMigrate},
		{"append", "append events to a stream", cmdAppend},
		{"read", "read a stream, a category or everything", cmdRead},
		{"work", "run a subscription worker that prints what it handles", cmdWork},
		{"relay", "relay the log to NATS JetStream, exactly once", cmdRelay},
		{"serve", "serve the store's HTTP API", cmdServe},
		{"streams", "list streams with their event counts and last activity", cmdStreams},
		{"categories", "list categories with their event and stream counts", cmdCategories},
		{"status", "show the store at a glance: events, subscriptions, horizon", cmdStatus},
		{"subscriptions", "list, reset and repair subscriptions", cmdSubscriptions},
		{"demo", "run the order workflow demo (the main job)", cmdDemo},
		{"bench", "measure meowmx against raw SQL on the same database", cmdBench},
		{"version", "print the version", cmdVersion},
		{"completion", "print a shell completion script (bash, zsh or fish)", cmdCompletion},
	}
}

const mainUsage = `meowmx: an event store on PostgreSQL and SQLite.

Usage:
  meowmx [--db DATABASE] [--schema NAME] COMMAND [ARGS] [FLAGS]

Commands:
%s
Global flags (before or after the command):
%s
Run "meowmx COMMAND --help" for a command's flags and examples.
`

func printMainUsage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, mainUsage, b.String(), globalFlags)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr,
		db: os.Getenv("MEOWMX_DB"), schema: os.Getenv("MEOWMX_SCHEMA"), replica: os.Getenv("MEOWMX_REPLICA"), listenDB: os.Getenv("MEOWMX_LISTEN_DB")}
	rest, err := extractGlobals(args, e)
	if err != nil {
		fmt.Fprintln(stderr, "meowmx:", err)
		return exitUsage
	}
	if e.db == "" {
		e.db, e.dbDefault = "sqlite:meowmx.db", true
	}
	if len(rest) == 0 {
		printMainUsage(stderr)
		return exitUsage
	}
	name := rest[0]
	if name == "-h" || name == "--help" || name == "help" {
		printMainUsage(stdout)
		return exitOK
	}
	e.args = rest[1:]
	for _, c := range commands {
		if c.name == name {
			return exitCode(ctx, stderr, c.name, c.run(e))
		}
	}
	fmt.Fprintf(stderr, "meowmx: unknown command %q (run \"meowmx --help\")\n", name)
	return exitUsage
}

// exitCode prints err as one line and turns it into the exit status.
func exitCode(ctx context.Context, stderr io.Writer, name string, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		// Stopped by Ctrl-C or SIGTERM: the shell's code for an interrupt.
		fmt.Fprintf(stderr, "meowmx %s: interrupted\n", name)
		return exitInterrupted
	}
	msg := strings.Join(strings.Fields(err.Error()), " ")
	msg = strings.ReplaceAll(msg, "meowmx: ", "")
	fmt.Fprintf(stderr, "meowmx %s: %s\n", name, msg)
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case isConflict(err):
		return exitConflict
	case isInvalidInput(err):
		return exitUsage
	}
	return exitError
}

// extractGlobals takes --db, --schema, --replica and --listen-db out of
// args, wherever they are.
func extractGlobals(args []string, e *env) ([]string, error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if !strings.HasPrefix(arg, "-") || (name != "db" && name != "schema" && name != "replica" && name != "listen-db") {
			rest = append(rest, arg)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			value = args[i]
		}
		switch name {
		case "db":
			e.db = value
		case "schema":
			e.schema = value
		case "listen-db":
			e.listenDB = value
		default:
			e.replica = value
		}
	}
	return rest, nil
}

// parse parses a command's flags, allowing them before, between and after
// positional arguments, and returns the positional ones.
func parse(fs *flagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.help()
				return nil, err
			}
			return nil, &usageError{msg: err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// flagSet is a command's flags with the help that --help prints for them.
type flagSet struct {
	*flag.FlagSet
	// help prints the command's usage text and flags to its stdout.
	help func()
}

// newFlagSet returns the flags of the command name, with usage as the text
// of its help. Parse errors are left to parse, which reports them in one line.
func newFlagSet(e *env, name, usage string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	e.flags = fs
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // errors are reported in one line; --help prints usage
	return &flagSet{FlagSet: fs, help: func() {
		fmt.Fprintf(e.stdout, "%s\n", strings.TrimSpace(usage))
		var b strings.Builder
		fs.VisitAll(func(f *flag.Flag) {
			kind, text := flag.UnquoteUsage(f)
			fmt.Fprintf(&b, "  --%s", f.Name)
			if kind != "" {
				fmt.Fprintf(&b, " %s", kind)
			}
			fmt.Fprintf(&b, "\n      %s", text)
			switch {
			case f.DefValue == "" || f.DefValue == "false" || f.DefValue == "0":
			case kind == "string":
				fmt.Fprintf(&b, " (default %q)", f.DefValue)
			default:
				fmt.Fprintf(&b, " (default %s)", f.DefValue)
			}
			b.WriteString("\n")
		})
		if b.Len() > 0 {
			fmt.Fprintf(e.stdout, "\nFlags:\n%s", b.String())
		}
		fmt.Fprint(e.stdout, "\nGlobal flags (before or after the command):\n"+globalFlags)
	}}
}

// globalFlags describes --db and --schema, for every help text.
const globalFlags = `  --db DATABASE   PostgreSQL: postgres://..., postgresql://... or key/value
                  pairs ("host=127.0.0.1 dbname=app user=app"); SQLite:
                  sqlite:PATH, or a PATH without a scheme; any other
                  scheme is refused (default $MEOWMX_DB, else
                  sqlite:meowmx.db); passwords are masked in messages
  --schema NAME   schema (PostgreSQL) or table prefix (SQLite)
                  (default $MEOWMX_SCHEMA, else meowmx)
  --replica DATABASE
                  a hot standby of the PostgreSQL --db that serves reads
                  (read, browse, and the reads of work and relay);
                  writes, checkpoints and leases stay on --db
                  (default $MEOWMX_REPLICA)
  --listen-db DATABASE
                  when the PostgreSQL --db goes through a pooler in
                  transaction mode (PgBouncer): a connection that bypasses
                  it, to listen for other processes' appends, or "none" to
                  poll instead (default $MEOWMX_LISTEN_DB)
`
