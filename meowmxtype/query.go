package meowmxtype

import "slices"

// Query selects events across streams, as Dynamic Consistency Boundaries
// define it: an event matches a query when it matches any of its items.
// A query without items matches no event.
type Query struct {
	Items []QueryItem
}

// QueryItem matches an event whose type is one of Types (any type when
// Types is empty) and that carries every tag of Tags (any tags when Tags is
// empty). An item with neither matches every event.
type QueryItem struct {
	Types []string
	Tags  []string
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
