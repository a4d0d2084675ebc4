// Package testsignal carries test hooks into meowmx's background workers,
// so that a test waits for the moment it needs ("the worker has nothing
// left to read and sleeps") instead of sleeping and hoping. Only code of
// this module can set them: production code never does, and a nil hook
// costs one comparison.
package testsignal

import "context"

// Hooks are called by a subscription worker started with a context that
// carries them, and by an Append given such a context.
type Hooks struct {
	// Idle is called when a partition runner has read everything there
	// is and goes to sleep until its next poll or a wake-up.
	Idle func(partition int)
	// Queued is called when an Append with a context that carries the
	// hooks waits in line for its group (see group.go).
	Queued func()
}

type key struct{}

// With returns ctx carrying hooks.
func With(ctx context.Context, hooks *Hooks) context.Context {
	return context.WithValue(ctx, key{}, hooks)
}

// From returns the hooks ctx carries, or empty ones.
func From(ctx context.Context) *Hooks {
	if h, ok := ctx.Value(key{}).(*Hooks); ok && h != nil {
		return h
	}
	return &Hooks{}
}

// Idle returns hooks whose Idle sends the partition on a channel (without
// blocking the worker when nobody listens), and the channel.
func Idle() (*Hooks, <-chan int) {
	ch := make(chan int, 64)
	return &Hooks{Idle: func(partition int) {
		select {
		case ch <- partition:
		default:
		}
	}}, ch
}
