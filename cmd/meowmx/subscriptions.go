package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/meowmx/meowmx"
)

// cmdSubscriptions runs "meowmx subscriptions": it prints the status of
// every subscription's partitions, or hands over to the subcommands reset,
// parked and replay.
func cmdSubscriptions(e *env) error {
	if len(e.args) > 0 {
		switch e.args[0] {
		case "reset":
			return cmdSubscriptionsReset(e)
		case "parked":
			return cmdSubscriptionsParked(e)
		case "replay":
			return cmdSubscriptionsReplay(e)
		case "delete":
			return cmdSubscriptionsDelete(e)
		}
	}
	fs := newFlagSet(e, "subscriptions", `Usage: meowmx subscriptions [NAME]
       meowmx subscriptions reset NAME --to POS|start|end
       meowmx subscriptions parked NAME
       meowmx subscriptions replay NAME
       meowmx subscriptions delete NAME

Prints each subscription's partitions: checkpoint, lag, owner, parked events,
and a warning when a long-running transaction holds the horizon back.

Examples:
  meowmx subscriptions
  meowmx subscriptions reset order-summary --to start
  meowmx subscriptions parked shipping
  meowmx subscriptions --format json`)
	format := fs.String("format", "text", "text, or json for one JSON line per partition")
	args, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return usagef("--format %q: want text or json", *format)
	}
	name := ""
	if len(args) > 1 {
		return usagef("unknown subcommand %q of subscriptions: want reset, parked, replay or delete, or one subscription NAME", args[0])
	} else if len(args) == 1 {
		name = args[0]
	}
	b, err := openMigrated(e)
	if err != nil {
		return err
	}
	defer b.close()
	statuses, err := b.api.SubscriptionStatuses(e.ctx, name)
	if err != nil {
		return err
	}
	if name != "" && len(statuses) == 0 {
		return fmt.Errorf("no subscription %s in %s", name, b.label)
	}
	if *format == "json" {
		return printStatusLines(e.stdout, statuses)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPARTITION\tCHECKPOINT\tLAG\tBEHIND\tOWNER\tPARKED\tHORIZON")
	for _, st := range statuses {
		owner := st.Owner
		if owner == "" {
			owner = "-"
		}
		horizon := "ok"
		if st.HorizonHeld {
			horizon = fmt.Sprintf("held by pid %d for %s", st.Horizon.PID, st.Horizon.Age.Round(time.Second))
		}
		fmt.Fprintf(tw, "%s\t%d of %d\t%s\t%d\t%s\t%s\t%d\t%s\n", st.Name, st.Partition, st.Partitions, st.Checkpoint,
			st.Lag, st.TimeBehind.Round(time.Millisecond), owner, st.Parked, horizon)
	}
	return tw.Flush()
}

// statusLine is the JSON form of a subscription partition's status.
type statusLine struct {
	Name          string  `json:"name"`
	Partition     int     `json:"partition"`
	Partitions    int     `json:"partitions"`
	Checkpoint    string  `json:"checkpoint"`
	Lag           int64   `json:"lag"`
	SecondsBehind float64 `json:"seconds_behind"`
	Owner         string  `json:"owner"`
	LeaseUntil    string  `json:"lease_until,omitempty"`
	Parked        int64   `json:"parked"`
	HorizonHeldBy *int    `json:"horizon_held_by_pid"`
}

// printStatusLines writes one JSON line per subscription partition.
func printStatusLines(w io.Writer, statuses []meowmx.SubscriptionStatus) error {
	for _, st := range statuses {
		line := statusLine{
			Name: st.Name, Partition: st.Partition, Partitions: st.Partitions, Checkpoint: st.Checkpoint.String(),
			Lag: st.Lag, SecondsBehind: st.TimeBehind.Seconds(), Owner: st.Owner, Parked: st.Parked,
		}
		if !st.LeaseUntil.IsZero() {
			line.LeaseUntil = st.LeaseUntil.UTC().Format(time.RFC3339Nano)
		}
		if st.HorizonHeld {
			line.HorizonHeldBy = &st.Horizon.PID
		}
		data, err := json.Marshal(line)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "%s\n", data); err != nil {
			return err
		}
	}
	return nil
}

// cmdSubscriptionsReset runs "meowmx subscriptions reset": it moves a
// subscription's checkpoints to the start, the end or a position.
func cmdSubscriptionsReset(e *env) error {
	fs := newFlagSet(e, "subscriptions reset", `Usage: meowmx subscriptions reset NAME --to POS|start|end

Moves every partition of the subscription to a position: start handles
everything again (to rebuild a read model), end skips to now.`)
	to := fs.String("to", "", "start, end or a position (required)")
	args, err := parse(fs, e.args[1:])
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef("want the subscription NAME")
	}
	var from meowmx.SubscriptionFrom
	switch *to {
	case "":
		return usagef("--to is required: start, end or a position")
	case "start":
		from = meowmx.FromStart
	case "end":
		from = meowmx.FromEnd
	default:
		pos, err := meowmx.ParsePosition(*to)
		if err != nil {
			return usagef("--to: %v", err)
		}
		from = meowmx.FromPosition(pos)
	}
	b, err := openMigrated(e)
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.api.ResetSubscription(e.ctx, args[0], from); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "subscription %s reset to %s\n", args[0], from)
	return nil
}

// cmdSubscriptionsParked runs "meowmx subscriptions parked": it prints a
// subscription's parked events.
func cmdSubscriptionsParked(e *env) error {
	fs := newFlagSet(e, "subscriptions parked", `Usage: meowmx subscriptions parked NAME [--format text|json]

Prints the subscription's parked events: a table, or with --format json one
JSON line per event with the event's fields (as read prints them) and
partition, attempts, error, parked_at and replay (whether a replay was
asked for).`)
	format := fs.String("format", "text", "text, or json for one JSON line per parked event")
	b, name, err := openForSubscription(e, fs)
	if err != nil {
		return err
	}
	defer b.close()
	if err := checkListFlags(*format, 0); err != nil {
		return err
	}
	parked, err := b.api.ParkedEvents(e.ctx, name)
	if err != nil {
		return err
	}
	if *format == "json" {
		for _, pe := range parked {
			if err := writeJSONLine(e.stdout, pe); err != nil {
				return err
			}
		}
		return nil
	}
	if len(parked) == 0 {
		_, err := fmt.Fprintf(e.stdout, "subscription %s has no parked events\n", name)
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POSITION\tSTREAM\tVERSION\tTYPE\tPARTITION\tATTEMPTS\tPARKED AT\tREPLAY\tERROR")
	for _, pe := range parked {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%s\t%t\t%s\n", pe.Event.Position, pe.Event.Stream, pe.Event.Version,
			pe.Event.Type, pe.Partition, pe.Attempts, formatTime(pe.ParkedAt), pe.Replay, oneLine(pe.Error, 80))
	}
	return tw.Flush()
}

// cmdSubscriptionsReplay runs "meowmx subscriptions replay": it asks the
// running workers to handle the parked events again.
func cmdSubscriptionsReplay(e *env) error {
	fs := newFlagSet(e, "subscriptions replay", `Usage: meowmx subscriptions replay NAME

Asks the subscription's running workers to handle its parked events again.`)
	b, name, err := openForSubscription(e, fs)
	if err != nil {
		return err
	}
	defer b.close()
	n, err := b.api.ReplayParked(e.ctx, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d parked events of %s will be replayed by its workers\n", n, name)
	return nil
}

// cmdSubscriptionsDelete runs "meowmx subscriptions delete": it deletes a
// subscription's checkpoints, workers and parked events.
func cmdSubscriptionsDelete(e *env) error {
	fs := newFlagSet(e, "subscriptions delete", `Usage: meowmx subscriptions delete NAME

Deletes the subscription: its checkpoints, its workers' heartbeats and its
parked events. Stop its workers first: a worker still running makes it
again, from where its configuration starts.`)
	b, name, err := openForSubscription(e, fs)
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.api.DeleteSubscription(e.ctx, name); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "subscription %s deleted\n", name)
	return nil
}

// openForSubscription parses a subscriptions subcommand that takes one NAME
// and opens the store, failing when there is no such subscription.
func openForSubscription(e *env, fs *flagSet) (*backend, string, error) {
	args, err := parse(fs, e.args[1:])
	if err != nil {
		return nil, "", err
	}
	if len(args) != 1 {
		return nil, "", usagef("want the subscription NAME")
	}
	b, err := openMigrated(e)
	if err != nil {
		return nil, "", err
	}
	statuses, err := b.api.SubscriptionStatuses(e.ctx, args[0])
	if err == nil && len(statuses) == 0 {
		err = fmt.Errorf("no subscription %s in %s", args[0], b.label)
	}
	if err != nil {
		b.close()
		return nil, "", err
	}
	return b, args[0], nil
}
