package meowmx

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
)

// Codec turns event values into bytes and back. The default is JSON.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSONCodec is the default Codec: encoding/json.
type JSONCodec struct{}

// Marshal encodes v as JSON.
func (JSONCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON into v.
func (JSONCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// Upcaster turns a recorded event of an old type or shape into a newer
// one, when it is read: it returns the new type name and data. Old events
// in the store are never rewritten.
type Upcaster func(data json.RawMessage) (typ string, upcast json.RawMessage, err error)

// Registry maps event type names to Go types, so that events are appended
// from Go values and read back as them. It is safe for concurrent use.
//
//	registry := meowmx.NewRegistry()
//	meowmx.Register[OrderPlaced](registry, "OrderPlaced")
//	event, err := registry.Encode(OrderPlaced{Total: 42})
type Registry struct {
	codec Codec

	mu        sync.RWMutex
	types     map[string]reflect.Type // name -> Go type
	names     map[reflect.Type]string // Go type -> name
	upcasters map[string]Upcaster     // old name -> upcaster
}

// NewRegistry returns an empty registry with the JSON codec.
func NewRegistry() *Registry {
	return &Registry{
		codec: JSONCodec{}, types: map[string]reflect.Type{},
		names: map[reflect.Type]string{}, upcasters: map[string]Upcaster{},
	}
}

// WithCodec sets the codec and returns the registry.
func (r *Registry) WithCodec(codec Codec) *Registry {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.codec = codec
	return r
}

// Register records the Go type T under the event type name. A name or a
// type can be registered once.
func Register[T any](r *Registry, name string) error {
	t := reflect.TypeFor[T]()
	if name == "" {
		return invalidf("register %s: empty event type name", t)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.types[name]; ok {
		return invalidf("event type %q is already registered for %s", name, prev)
	}
	if prev, ok := r.names[t]; ok {
		return invalidf("%s is already registered as %q", t, prev)
	}
	if _, ok := r.upcasters[name]; ok {
		return invalidf("event type %q has an upcaster: it is an old name", name)
	}
	r.types[name] = t
	r.names[t] = name
	return nil
}

// Upcast registers fn to turn recorded events of the type oldName into a
// newer type (which may itself be upcast again, up to the registered one).
func (r *Registry) Upcast(oldName string, fn Upcaster) error {
	if oldName == "" || fn == nil {
		return invalidf("upcast: want an event type name and a function")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.types[oldName]; ok {
		return invalidf("event type %q is registered to a Go type: it cannot also be upcast", oldName)
	}
	if _, ok := r.upcasters[oldName]; ok {
		return invalidf("event type %q already has an upcaster", oldName)
	}
	r.upcasters[oldName] = fn
	return nil
}

// Encode turns a value of a registered type into an Event to append.
func (r *Registry) Encode(v any) (Event, error) {
	r.mu.RLock()
	name, ok := r.names[reflect.TypeOf(v)]
	codec := r.codec
	r.mu.RUnlock()
	if !ok {
		return Event{}, fmt.Errorf("%w: no event type registered for %T", ErrUnknownEventType, v)
	}
	data, err := codec.Marshal(v)
	if err != nil {
		return Event{}, fmt.Errorf("meowmx: encode %s: %w", name, err)
	}
	return Event{Type: name, Data: data}, nil
}

// EncodeAll encodes several values.
func (r *Registry) EncodeAll(values ...any) ([]Event, error) {
	events := make([]Event, len(values))
	for i, v := range values {
		ev, err := r.Encode(v)
		if err != nil {
			return nil, err
		}
		events[i] = ev
	}
	return events, nil
}

// maxUpcasts bounds a chain of upcasters, against cycles.
const maxUpcasts = 32

// Decode turns a recorded event into a value of its registered Go type (a
// T, not a *T), upcasting old types first. An event type without a Go type
// gives ErrUnknownEventType.
func (r *Registry) Decode(ev RecordedEvent) (any, error) {
	typ, data := ev.Type, json.RawMessage(ev.Data)
	r.mu.RLock()
	codec := r.codec
	t, ok := r.types[typ]
	for i := 0; !ok; i++ {
		up, has := r.upcasters[typ]
		if !has {
			break
		}
		if i == maxUpcasts {
			r.mu.RUnlock()
			return nil, fmt.Errorf("meowmx: upcasting %s: more than %d steps (a cycle?)", ev.Type, maxUpcasts)
		}
		r.mu.RUnlock()
		var err error
		if typ, data, err = up(data); err != nil {
			return nil, fmt.Errorf("meowmx: upcast event %s (%s version %d) from %s: %w", ev.ID, ev.Stream, ev.Version, ev.Type, err)
		}
		r.mu.RLock()
		t, ok = r.types[typ]
	}
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q (event %s of %s version %d)", ErrUnknownEventType, typ, ev.ID, ev.Stream, ev.Version)
	}
	ptr := reflect.New(t)
	if err := codec.Unmarshal(data, ptr.Interface()); err != nil {
		return nil, fmt.Errorf("meowmx: decode event %s (%s version %d) as %s: %w", ev.ID, ev.Stream, ev.Version, typ, err)
	}
	return ptr.Elem().Interface(), nil
}
