package meowmx

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/meowmx/meowmx/internal/testsignal"
	"github.com/meowmx/meowmx/meowmxdriver"
)

// Group commit: concurrent Appends of a store go to the database together.
//
// At most groupsInFlight appends or groups of appends are in flight at once.
// An Append that finds them all busy queues; when one returns, its caller
// hands its place to the oldest queued append, which takes with it every
// append queued behind it (up to groupMaxEvents events and groupMaxBytes
// bytes, at most one per stream) and records them together: one statement
// and one commit on PostgreSQL, one transaction and one disk flush on
// SQLite. Nothing waits on a timer: a lone writer's append goes at once,
// alone, as it would without grouping, and the more writers wait, the
// larger the groups. An append that finds a place free while another is in
// flight, or after a group of several returned, yields the processor once
// (runtime.Gosched) before it takes its group: the appenders that are ready
// to run queue behind it in that time. Without the yield, the first member
// of a returning group to append again went alone, and the others queued
// for the next trip: at 8 writers 21% of the appends went alone and the
// groups held about 3 (see BENCHMARKS.md).
//
// Each append stays all or nothing on its own. One that the group recorded
// nothing of (a conflict, a recorded event ID, a lost race) is made again
// alone by its caller, which learns why as it would have without grouping;
// an error of the group (a dropped connection) is every member's, and
// nothing of the group was written.

const (
	// groupsInFlight is how many appends or groups of a store run at once:
	// one being recorded while the next forms. A database that writes one
	// transaction at a time (meowmxdriver.SingleWriter) gets one.
	groupsInFlight = 2
	// groupableEvents is the largest append that is grouped. A larger
	// batch already spreads a statement's cost over its events, and the
	// group statement looks up each event's stream once per event: 100-event
	// appends grouped at 8 writers measured 0.37× to 0.41× of the baseline,
	// against 0.62× to 0.67× one by one.
	groupableEvents = 16
	// groupMaxEvents and groupMaxBytes bound a group.
	groupMaxEvents = 1000
	groupMaxBytes  = 4 << 20
)

// appendGroups queues a store's concurrent appends.
type appendGroups struct {
	exec meowmxdriver.Executor
	obs  Observer // nil: none

	limit int // groupsInFlight, or 1

	mu       sync.Mutex
	inFlight int
	queue    []*groupMember
	streams  map[Stream]int // streams of the appends in flight
	// lastSize is the number of appends of the group that returned last.
	lastSize int
}

// groupMember is one append waiting in the queue, or in flight.
type groupMember struct {
	params *meowmxdriver.AppendParams
	stream Stream
	size   int
	// ctx is the caller's, until the append is taken into a group.
	ctx  context.Context
	done chan groupTurn // one message
}

// groupTurn is what a queued append learns: to lead a group, or the
// outcome of the group it was in.
type groupTurn struct {
	lead   bool
	result *meowmxdriver.AppendResult // nil: make the append alone
	err    error
}

func newAppendGroups(exec meowmxdriver.Executor, obs Observer) *appendGroups {
	limit := groupsInFlight
	if w, ok := exec.(meowmxdriver.SingleWriter); ok && w.SingleWriter() {
		limit = 1
	}
	return &appendGroups{exec: exec, obs: obs, limit: limit, streams: map[Stream]int{}}
}

func appendSize(p *meowmxdriver.AppendParams) int {
	size := 0
	for _, ev := range p.Events {
		size += len(ev.Data) + len(ev.Metadata) + len(ev.Type) + 16
		for _, tag := range ev.Tags {
			size += len(tag) + 4
		}
	}
	return size
}

// append records params, with others if they are queued at the same time.
// A nil result with a nil error says that the append recorded nothing and
// must be made alone.
func (g *appendGroups) append(ctx context.Context, params *meowmxdriver.AppendParams) (*meowmxdriver.AppendResult, error) {
	me := &groupMember{
		params: params, stream: Stream{Category: params.Category, ID: params.StreamID},
		size: appendSize(params), ctx: ctx, done: make(chan groupTurn, 1),
	}
	g.mu.Lock()
	if g.inFlight < g.limit && g.streams[me.stream] == 0 {
		g.inFlight++
		g.streams[me.stream]++
		concurrent := g.inFlight > 1 || g.lastSize > 1
		g.mu.Unlock()
		if concurrent {
			// Another append is in flight, or the last group held several:
			// writers are concurrent. Let the goroutines ready to run (the
			// members of a group that just returned, appending again) queue
			// behind this append before it takes its group, rather than
			// behind it in the next one.
			runtime.Gosched()
		}
		return g.lead(me)
	}
	g.queue = append(g.queue, me)
	g.mu.Unlock()
	if queued := testsignal.From(ctx).Queued; queued != nil {
		queued()
	}

	var turn groupTurn
	select {
	case turn = <-me.done:
	case <-ctx.Done():
		g.mu.Lock()
		if i := g.indexOf(me); i >= 0 {
			// Still queued: it leaves the line, nothing written.
			g.queue = append(g.queue[:i], g.queue[i+1:]...)
			g.mu.Unlock()
			return nil, ctx.Err()
		}
		g.mu.Unlock()
		// Taken into a group already: its outcome is the caller's.
		turn = <-me.done
		if turn.lead {
			g.finish(me) // give the turn to the next in line
			return nil, ctx.Err()
		}
	}
	if turn.lead {
		return g.lead(me)
	}
	return turn.result, turn.err
}

func (g *appendGroups) indexOf(m *groupMember) int {
	for i, q := range g.queue {
		if q == m {
			return i
		}
	}
	return -1
}

// lead records leader's append, with the appends queued behind it, then
// hands the turn on.
func (g *appendGroups) lead(leader *groupMember) (result *meowmxdriver.AppendResult, err error) {
	if err := leader.ctx.Err(); err != nil {
		g.finish(leader) // the turn goes to the next in line
		return nil, err
	}
	members := g.take(leader)
	answered := false
	defer func() {
		if answered {
			return
		}
		// The driver panicked: free the place in flight and answer every
		// member, so that no append waits forever, then panic on.
		g.finish(members...)
		for _, m := range members[1:] {
			m.done <- groupTurn{err: errGroupPanicked}
		}
	}()
	var (
		began   time.Time
		decided []bool // the members the trip decided (recorded, or refused with a verdict)
	)
	if g.obs != nil {
		began = time.Now()
		defer func() {
			data := AppendGroupData{Duration: time.Since(began)}
			for i, m := range members {
				if i < len(decided) && decided[i] {
					data.Appends++
					data.Events += len(m.params.Events)
				}
			}
			g.obs.AppendGroupDone(leader.ctx, &data)
		}()
	}
	if len(members) == 1 {
		result, err = g.exec.Append(leader.ctx, leader.params)
		answered = true
		g.finish(leader)
		decided = []bool{err == nil && result != nil}
		return result, err
	}
	ctx, cancel := allDone(members)
	params := make([]*meowmxdriver.AppendParams, len(members))
	for i, m := range members {
		params[i] = m.params
	}
	results, err := g.exec.AppendGroup(ctx, params)
	cancel()
	answered = true
	if err == nil && g.obs != nil {
		decided = make([]bool, len(members))
		for i, r := range results {
			decided[i] = r != nil
		}
	}
	g.finish(members...)
	for i, m := range members[1:] {
		if err != nil {
			m.done <- groupTurn{err: err}
		} else {
			m.done <- groupTurn{result: results[i+1]}
		}
	}
	if err != nil {
		return nil, err
	}
	return results[0], nil
}

// errGroupPanicked is the error of the members of a group whose leader's
// driver call panicked.
var errGroupPanicked = errors.New("meowmx: the append's group failed: the driver panicked")

// take removes from the queue the appends that go with leader's: in their
// order, within the group's bounds, at most one per stream, none to a
// stream of another append in flight.
func (g *appendGroups) take(leader *groupMember) []*groupMember {
	members := []*groupMember{leader}
	events, bytes := len(leader.params.Events), leader.size
	g.mu.Lock()
	defer g.mu.Unlock()
	kept := g.queue[:0]
	for _, m := range g.queue {
		n := len(m.params.Events)
		if g.streams[m.stream] > 0 || events+n > groupMaxEvents || bytes+m.size > groupMaxBytes || m.ctx.Err() != nil {
			kept = append(kept, m)
			continue
		}
		g.streams[m.stream]++
		events, bytes = events+n, bytes+m.size
		members = append(members, m)
	}
	clear(g.queue[len(kept):])
	g.queue = kept
	return members
}

// finish marks members' appends done and gives their place in flight to
// the oldest queued append whose stream is free, if any.
func (g *appendGroups) finish(members ...*groupMember) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastSize = len(members)
	for _, m := range members {
		if g.streams[m.stream]--; g.streams[m.stream] == 0 {
			delete(g.streams, m.stream)
		}
	}
	for i, m := range g.queue {
		// A member whose caller has gone leaves the line by itself.
		if g.streams[m.stream] == 0 && m.ctx.Err() == nil {
			g.queue = append(g.queue[:i], g.queue[i+1:]...)
			g.streams[m.stream]++
			m.done <- groupTurn{lead: true}
			return
		}
	}
	g.inFlight--
}

// allDone returns a context that ends when every member's context has
// ended: the group is cancelled only when none of its callers waits.
func allDone(members []*groupMember) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(members[0].ctx))
	var mu sync.Mutex
	left := len(members)
	stops := make([]func() bool, len(members))
	for i, m := range members {
		stops[i] = context.AfterFunc(m.ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			if left--; left == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}
