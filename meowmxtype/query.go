package meowmxtype

import (
	"fmt"
	"slices"
)

// Query selects events across streams, as Dynamic Consistency Boundaries
// define it: an event matches a query when it matches any of its items.
// A query without items matches no event.
type Query struct {
	Items []QueryItem `json:"items"`
}

// QueryItem matches an event whose type is one of Types (any type when
// Types is empty) and that carries every tag of Tags (any tags when Tags is
// empty). An item with neither matches every event.
type QueryItem struct {
	Types []string `json:"types,omitempty"`
	Tags  []string `json:"tags,omitempty"`
}

// Matches reports whether an event of type typ with tags matches q.
// Drivers that select in SQL mirror it.
func (q Query) Matches(typ string, tags []string) bool {
	for _, item := range q.Items {
		if item.Matches(typ, tags) {
			return true
		}
	}
	return false
}

// Matches reports whether an event of type typ with tags matches the item.
func (item QueryItem) Matches(typ string, tags []string) bool {
	if len(item.Types) > 0 && !slices.Contains(item.Types, typ) {
		return false
	}
	for _, tag := range item.Tags {
		if !slices.Contains(tags, tag) {
			return false
		}
	}
	return true
}

// AppendCondition makes an append conditional, as Dynamic Consistency
// Boundaries define it: the append records nothing, and fails with an
// *AppendConditionFailedError, if an event matching FailIfEventsMatch exists
// after position After.
//
// After is the position up to which the caller read the events its decision
// rests on: the Position of the last event ReadQuery returned for the same
// query, or Start when it read none.
type AppendCondition struct {
	FailIfEventsMatch Query
	After             Position
}

// AppendConditionFailedError is the error of a conditional append that found
// an event matching its condition after the condition's position.
// errors.Is(err, ErrAppendConditionFailed) reports true for it.
type AppendConditionFailedError struct {
	Stream Stream // the stream appended to
	After  Position
	// Event is the first matching event after After, as recorded.
	Event RecordedEvent
}

func (e *AppendConditionFailedError) Error() string {
	return fmt.Sprintf("meowmx: append condition failed on %s: event %s of type %q at %s, in %s, matches after %s",
		e.Stream, e.Event.ID, e.Event.Type, e.Event.Position, e.Event.Stream, e.After)
}

// Is reports whether target is ErrAppendConditionFailed.
func (e *AppendConditionFailedError) Is(target error) bool { return target == ErrAppendConditionFailed }
