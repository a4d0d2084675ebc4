package meowmxdriver

import "sync"

// PerSchema holds one value per schema, built on first use: a driver's
// statements, rendered once for each schema it serves.
type PerSchema[T any] struct {
	build  func(schema string) *T
	values sync.Map // schema -> *T
}

// NewPerSchema returns a PerSchema that builds each schema's value with build.
func NewPerSchema[T any](build func(schema string) *T) *PerSchema[T] {
	return &PerSchema[T]{build: build}
}

// Get returns schema's value, building it the first time.
func (p *PerSchema[T]) Get(schema string) *T {
	if v, ok := p.values.Load(schema); ok {
		return v.(*T)
	}
	v, _ := p.values.LoadOrStore(schema, p.build(schema))
	return v.(*T)
}
