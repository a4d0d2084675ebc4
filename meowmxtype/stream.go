package meowmxtype

import "strconv"

// StreamSeparator joins a stream's category and ID in its name
// ("order-1234"). A category cannot contain it; an ID can.
const StreamSeparator = "-"

// Stream identifies a stream: a category, such as "order", and an ID within
// it, any non-empty string.
type Stream struct {
	Category string
	ID       string
}

// NewStream returns the stream of category and id.
func NewStream(category, id string) Stream { return Stream{Category: category, ID: id} }

// String returns the stream's name, category-ID.
func (s Stream) String() string { return s.Category + StreamSeparator + s.ID }

// ExpectedVersion is what an append requires of the stream: an exact
// version (that of its last event, >= 0), or Any, NoStream or StreamExists.
type ExpectedVersion int64

const (
	// Any appends whatever the stream's version.
	Any ExpectedVersion = -2
	// NoStream requires that the stream has no events.
	NoStream ExpectedVersion = -1
	// StreamExists requires that the stream has at least one event.
	StreamExists ExpectedVersion = -3
)

// String returns "any", "no stream", "stream exists" or "version N".
func (v ExpectedVersion) String() string {
	switch v {
	case Any:
		return "any"
	case NoStream:
		return "no stream"
	case StreamExists:
		return "stream exists"
	}
	return "version " + strconv.FormatInt(int64(v), 10)
}

// Matches reports whether a stream whose last version is current (-1 for
// none) satisfies v. Drivers that check in SQL mirror it.
func (v ExpectedVersion) Matches(current int64) bool {
	switch v {
	case Any:
		return true
	case NoStream:
		return current == -1
	case StreamExists:
		return current >= 0
	default:
		return current == int64(v)
	}
}
