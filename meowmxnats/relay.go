package meowmxnats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/meowmx/meowmx"
)

const (
	// StreamDefault is the default Config.Stream.
	StreamDefault = "MEOWMX"
	// SubjectPrefixDefault is the default Config.SubjectPrefix.
	SubjectPrefixDefault = "meowmx"
	// SubscriptionDefault is the default Config.Subscription.
	SubscriptionDefault = "nats-relay"
	// PublishTimeoutDefault is the default Config.PublishTimeout: short,
	// since the batch's transaction waits meanwhile (on SQLite, holding
	// the store's writer).
	PublishTimeoutDefault = 5 * time.Second
	// DuplicateWindowDefault is the duplicate window of a stream the relay
	// creates, when RequiredDuplicateWindow asks for no more: JetStream's
	// own default.
	DuplicateWindowDefault = 2 * time.Minute
)

// Config configures a Relay. The zero value relays every category.
type Config struct {
	// Stream is the JetStream stream the events go to; Start creates it
	// (file storage, subjects SubjectPrefix.>) when it does not exist.
	// Defaults to StreamDefault.
	Stream string
	// SubjectPrefix starts every subject. Defaults to SubjectPrefixDefault.
	SubjectPrefix string
	// Subscription names the meowmx subscription that records what was
	// relayed. Defaults to SubscriptionDefault.
	Subscription string
	// Categories limits the relay to these categories (all when empty).
	Categories []string
	// Partitions splits the work among relays running at once (see
	// meowmx.SubscriptionConfig.Partitions): each stream stays with one.
	Partitions int
	// BatchSize is the most events per batch (meowmx.BatchSizeDefault
	// when 0).
	BatchSize int
	// Lease is the subscription's lease (meowmx.LeaseDefault when 0): a
	// relay that dies hands its partitions over after it.
	Lease time.Duration
	// PublishTimeout bounds the wait for one round of acknowledgements.
	// Defaults to PublishTimeoutDefault.
	PublishTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *Config) withDefaults() Config {
	out := Config{}
	if c != nil {
		out = *c
	}
	if out.Stream == "" {
		out.Stream = StreamDefault
	}
	if out.SubjectPrefix == "" {
		out.SubjectPrefix = SubjectPrefixDefault
	}
	if out.Subscription == "" {
		out.Subscription = SubscriptionDefault
	}
	if out.Lease == 0 {
		out.Lease = meowmx.LeaseDefault
	}
	if out.PublishTimeout == 0 {
		out.PublishTimeout = PublishTimeoutDefault
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out
}

// RequiredDuplicateWindow is the shortest duplicate window the JetStream
// stream must have for cfg. JetStream's de-duplication backs up the
// relay's own look-ups (see the package comment) when a relay dies after
// publishing and another takes its partition over, after the lease: the
// window must cover the lease, two rounds of the publish timeout, and a
// minute of margin for clocks and slow disks.
func RequiredDuplicateWindow(cfg *Config) time.Duration {
	c := cfg.withDefaults()
	return c.Lease + 2*c.PublishTimeout + time.Minute
}

// Relay relays a store's events to JetStream. Create it with New, run it
// with Start and Stop.
type Relay[TTx any] struct {
	store  *meowmx.Store[TTx]
	js     jetstream.JetStream
	cfg    Config
	sub    *meowmx.Subscription[TTx]
	stream jetstream.Stream

	// acked holds, per stream, the version of the last event this relay
	// saw JetStream acknowledge (or found stored). A batch whose first
	// event of a stream does not follow it (after a failed publish or
	// commit, a reset) first asks JetStream for that subject's last
	// message. For a stream it does not hold, the relay asks only until a
	// batch of the stream's partition has been published without a
	// failure (clean): at start, another relay, or this one before it
	// crashed, may have published what follows the checkpoint. Both are
	// cleared when acked grows past ackedMax streams.
	mu    sync.Mutex
	acked map[meowmx.Stream]int64
	clean map[int]bool
}

// ackedMax bounds Relay.acked.
const ackedMax = 100_000

// MaxBatchSize is the largest Config.BatchSize: a round of publishes stays
// under the client's limit of pending asynchronous publishes (4,000).
const MaxBatchSize = 1000

// New returns a relay of store's events to js. Give js an asynchronous
// publish timeout (jetstream.WithPublishAsyncTimeout, such as
// Config.PublishTimeout), so that acknowledgements lost without a
// reconnection do not pile up in the client.
func New[TTx any](store *meowmx.Store[TTx], js jetstream.JetStream, cfg *Config) (*Relay[TTx], error) {
	if store == nil || js == nil {
		return nil, errors.New("meowmxnats: nil store or JetStream")
	}
	c := cfg.withDefaults()
	if strings.ContainsAny(c.Stream, ". *>") || strings.ContainsAny(c.SubjectPrefix, " *>") || strings.HasSuffix(c.SubjectPrefix, ".") {
		return nil, fmt.Errorf("meowmxnats: invalid stream %q or subject prefix %q", c.Stream, c.SubjectPrefix)
	}
	if c.BatchSize > MaxBatchSize {
		return nil, fmt.Errorf("meowmxnats: Config.BatchSize %d is over %d", c.BatchSize, MaxBatchSize)
	}
	r := &Relay[TTx]{store: store, js: js, cfg: c, acked: map[meowmx.Stream]int64{}, clean: map[int]bool{}}
	sub, err := store.Subscribe(meowmx.SubscriptionConfig[TTx]{
		Name: c.Subscription, Categories: c.Categories, Partitions: c.Partitions,
		BatchSize: c.BatchSize, Lease: c.Lease, Logger: c.Logger,
		// An event that can never be relayed stops the relay: parking it
		// would leave a gap in its subject, filled out of order later.
		OnFailure: meowmx.StopSubscription,
		Handler:   r.handle,
	})
	if err != nil {
		return nil, err
	}
	r.sub = sub
	return r, nil
}

// Start creates the JetStream stream if it does not exist, or checks that
// it takes the relay's subjects with a long enough duplicate window, then
// starts the subscription in the background.
func (r *Relay[TTx]) Start(ctx context.Context) error {
	need := RequiredDuplicateWindow(&r.cfg)
	subjects := r.cfg.SubjectPrefix + ".>"
	stream, err := r.js.Stream(ctx, r.cfg.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		stream, err = r.js.CreateStream(ctx, jetstream.StreamConfig{
			Name: r.cfg.Stream, Subjects: []string{subjects}, Storage: jetstream.FileStorage,
			Duplicates: max(need, DuplicateWindowDefault),
		})
		if err != nil {
			return fmt.Errorf("meowmxnats: create stream %s: %w", r.cfg.Stream, err)
		}
	case err != nil:
		return fmt.Errorf("meowmxnats: stream %s: %w", r.cfg.Stream, err)
	default:
		cfg := stream.CachedInfo().Config
		if cfg.Duplicates < need {
			return fmt.Errorf("meowmxnats: stream %s has a duplicate window of %s; the relay needs at least %s (lease %s + 2 × publish timeout %s + 1m)",
				r.cfg.Stream, cfg.Duplicates, need, r.cfg.Lease, r.cfg.PublishTimeout)
		}
		if !slices.ContainsFunc(cfg.Subjects, func(f string) bool { return covers(f, r.cfg.SubjectPrefix) }) {
			return fmt.Errorf("meowmxnats: stream %s takes subjects %v, not %s", r.cfg.Stream, cfg.Subjects, subjects)
		}
	}
	r.stream = stream
	return r.sub.Start(ctx)
}

// covers reports whether the subject filter f takes every subject the
// relay publishes under prefix: the prefix's tokens, then two more (the
// category and the stream ID), whatever they are.
func covers(f, prefix string) bool {
	template := append(strings.Split(prefix, "."), "", "") // "": any token
	ft := strings.Split(f, ".")
	for i, tok := range ft {
		switch {
		case i >= len(template):
			return false
		case tok == ">":
			return i == len(ft)-1
		case tok == "*":
		case template[i] == "" || tok != template[i]:
			return false
		}
	}
	return len(ft) == len(template)
}

// Stop stops the relay: the batch in flight finishes (its publishes are
// acknowledged and its checkpoint committed) unless ctx ends first.
func (r *Relay[TTx]) Stop(ctx context.Context) error { return r.sub.Stop(ctx) }

// Stopped is closed once the relay has stopped.
func (r *Relay[TTx]) Stopped() <-chan struct{} { return r.sub.Stopped() }

// Err says why the relay stopped by itself, if it did: an event it cannot
// publish (too large for the stream, a subject taken by another store).
func (r *Relay[TTx]) Err() error { return r.sub.Err() }

// handle publishes a batch and returns once JetStream has acknowledged
// every event of it. A failed publish is the error meowmx.ErrUnavailable:
// the subscription rolls the batch back and retries it with backoff for as
// long as it takes, without counting attempts (a relay never skips an
// event because NATS is away). An event that can never be published (too
// large) is the handler's own error: after the subscription's attempts it
// stops the relay.
func (r *Relay[TTx]) handle(ctx context.Context, _ TTx, events []meowmx.RecordedEvent) error {
	msgs := make([]*publish, len(events))
	for i := range events {
		m, err := message(r.cfg.SubjectPrefix, r.cfg.Stream, &events[i])
		if err != nil {
			return err
		}
		msgs[i] = &publish{event: &events[i], msg: m}
	}
	partition := 0
	if n := r.cfg.Partitions; n > 1 {
		partition = int(meowmx.StreamHash(events[0].Stream) % int64(n))
	}
	var err error
	if status := r.js.Conn().Status(); status != nats.CONNECTED {
		// Fail at once rather than buffer the batch for a reconnection
		// while its transaction waits (on SQLite, holding the writer).
		err = fmt.Errorf("the NATS connection is %s", status)
	} else {
		err = r.publishAll(ctx, msgs, partition)
	}
	r.mu.Lock()
	r.clean[partition] = err == nil
	r.mu.Unlock()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errTooLarge), errors.Is(err, errForeign):
		return err
	}
	return fmt.Errorf("meowmxnats: %w: %w", meowmx.ErrUnavailable, err)
}

// publish is one event to publish, its message (which publishing leaves
// as it is: the client sends a copy), and whether JetStream holds it.
type publish struct {
	event *meowmx.RecordedEvent
	msg   *nats.Msg
	done  bool
}

var (
	errTooLarge = errors.New("meowmxnats: event too large for the NATS server or stream")
	errForeign  = errors.New("meowmxnats: the subject holds another event at this version (another store relays to it?)")
)

// publishAll publishes the messages not done yet: in rounds, each taking
// the next event of every stream concurrently, so that a stream's events
// are stored in version order whatever fails.
func (r *Relay[TTx]) publishAll(ctx context.Context, msgs []*publish, partition int) error {
	if err := r.skipStored(ctx, msgs, partition); err != nil {
		return err
	}
	queues := map[meowmx.Stream][]*publish{}
	var order []meowmx.Stream
	for _, p := range msgs {
		if p.done {
			continue
		}
		if _, ok := queues[p.event.Stream]; !ok {
			order = append(order, p.event.Stream)
		}
		queues[p.event.Stream] = append(queues[p.event.Stream], p)
	}
	for round := 0; ; round++ {
		var batch []*publish
		for _, s := range order {
			if q := queues[s]; round < len(q) {
				batch = append(batch, q[round])
			}
		}
		if len(batch) == 0 {
			return nil
		}
		if err := r.round(ctx, batch); err != nil {
			return err
		}
	}
}

// round publishes messages of distinct streams at once and waits for
// their acknowledgements.
func (r *Relay[TTx]) round(ctx context.Context, batch []*publish) error {
	futures := make([]jetstream.PubAckFuture, len(batch))
	for i, p := range batch {
		f, err := r.js.PublishMsgAsync(p.msg)
		if err != nil {
			if errors.Is(err, nats.ErrMaxPayload) {
				return fmt.Errorf("%w: event %s: %w", errTooLarge, p.event.ID, err)
			}
			return err
		}
		futures[i] = f
	}
	timeout := time.NewTimer(r.cfg.PublishTimeout)
	defer timeout.Stop()
	var firstErr error
	for i, f := range futures {
		select {
		case <-f.Ok():
			batch[i].done = true
			r.ack(batch[i].event.Stream, batch[i].event.Version)
		case err := <-f.Err():
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum {
				return fmt.Errorf("%w: event %s: %w", errTooLarge, batch[i].event.ID, err)
			}
			if firstErr == nil {
				firstErr = fmt.Errorf("publish event %s: %w", batch[i].event.ID, err)
			}
		case <-timeout.C:
			return fmt.Errorf("publish: no acknowledgement within %s", r.cfg.PublishTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return firstErr
}

// ack records that JetStream holds stream's events up to version.
func (r *Relay[TTx]) ack(stream meowmx.Stream, version int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.acked) >= ackedMax {
		clear(r.acked)
		clear(r.clean)
	}
	r.acked[stream] = version
}

// skipStored marks done the events JetStream already holds. For each
// stream of the batch whose first event does not follow the last version
// this relay saw acknowledged (or that it does not know, until the
// partition is clean), it reads the last message on the stream's subject
// and marks done the events up to its version; if that version is among
// the batch's, the message must carry the same event ID.
func (r *Relay[TTx]) skipStored(ctx context.Context, msgs []*publish, partition int) error {
	check := map[meowmx.Stream]bool{}
	r.mu.Lock()
	clean := r.clean[partition]
	for _, p := range msgs {
		s := p.event.Stream
		if _, seen := check[s]; seen {
			continue
		}
		last, ok := r.acked[s]
		check[s] = ok && p.event.Version != last+1 || !ok && !clean
	}
	r.mu.Unlock()
	// The look-ups run at once, a few dozen at a time.
	var (
		wg      sync.WaitGroup
		smu     sync.Mutex
		stored  = map[meowmx.Stream]*jetstream.RawStreamMsg{}
		lookErr error
		slots   = make(chan struct{}, 32)
	)
	for s, lookUp := range check {
		if !lookUp {
			continue
		}
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			ctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
			m, err := r.stream.GetLastMsgForSubject(ctx, Subject(r.cfg.SubjectPrefix, s))
			cancel()
			smu.Lock()
			defer smu.Unlock()
			switch {
			case errors.Is(err, jetstream.ErrMsgNotFound):
				stored[s] = nil
			case err != nil:
				if lookErr == nil {
					lookErr = fmt.Errorf("look up the last event of %s: %w", s, err)
				}
			default:
				stored[s] = m
			}
		})
	}
	wg.Wait()
	if lookErr != nil {
		return lookErr
	}
	for _, p := range msgs {
		m, ok := stored[p.event.Stream]
		if !ok || m == nil {
			continue
		}
		last, err := strconv.ParseInt(m.Header.Get(HeaderVersion), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: the last message of %s has no version: %w", errForeign, m.Subject, err)
		}
		switch {
		case p.event.Version == last && m.Header.Get(jetstream.MsgIDHeader) != p.event.ID.String():
			return fmt.Errorf("%w: %s version %d is event %s there, %s here",
				errForeign, m.Subject, last, m.Header.Get(jetstream.MsgIDHeader), p.event.ID)
		case p.event.Version <= last:
			p.done = true
		}
	}
	// What JetStream holds is the truth, higher or lower than this relay
	// remembered (a reset, another relay's publishes).
	for s, m := range stored {
		if m == nil {
			r.ack(s, -1)
		} else if v, err := strconv.ParseInt(m.Header.Get(HeaderVersion), 10, 64); err == nil {
			r.ack(s, v)
		}
	}
	return nil
}
