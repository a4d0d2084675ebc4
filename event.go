package meowmx

import (
	"encoding/json"
	"hash/fnv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx/meowmxtype"
)

// StreamSeparator joins a stream's category and ID in its name
// ("order-1234"). A category cannot contain it; an ID can.
const StreamSeparator = meowmxtype.StreamSeparator

// Limits on the text an application gives meowmx, in bytes of UTF-8. Both
// drivers enforce them, so that what SQLite accepts PostgreSQL accepts too:
// PostgreSQL's indexes cannot hold keys of more than about 2.7 KB.
const (
	// MaxCategoryLength is the longest category.
	MaxCategoryLength = 255
	// MaxStreamIDLength is the longest stream ID.
	MaxStreamIDLength = 1024
	// MaxTypeLength is the longest event type.
	MaxTypeLength = 255
	// MaxTagLength is the longest tag.
	MaxTagLength = 255
	// MaxTags is the most tags one event carries.
	MaxTags = 64
	// MaxNameLength is the longest subscription name.
	MaxNameLength = 255
)

// Stream identifies a stream: a category, such as "order", and an ID within
// it, any non-empty string.
type Stream = meowmxtype.Stream

// NewStream returns the stream of category and id.
func NewStream(category, id string) Stream { return meowmxtype.NewStream(category, id) }

// ParseStream parses a stream name, splitting it at the first separator.
func ParseStream(name string) (Stream, error) {
	category, id, ok := strings.Cut(name, StreamSeparator)
	if !ok {
		return Stream{}, invalidf("stream name %q: want CATEGORY%sID", name, StreamSeparator)
	}
	s := Stream{Category: category, ID: id}
	return s, validateStream(s)
}

func validateStream(s Stream) error {
	if err := validateCategory(s.Category); err != nil {
		return err
	}
	if s.ID == "" {
		return invalidf("stream %q: empty ID", s.String())
	}
	return validText("stream ID", s.ID, MaxStreamIDLength)
}

func validateCategory(category string) error {
	if category == "" {
		return invalidf("empty category")
	}
	if strings.Contains(category, StreamSeparator) {
		return invalidf("category %q contains the stream separator %q", category, StreamSeparator)
	}
	return validText("category", category, MaxCategoryLength)
}

// validText rejects what PostgreSQL's text type cannot hold, and text over
// max bytes.
func validText(what, s string, max int) error {
	if len(s) > max {
		return invalidf("%s of %d bytes is over the limit of %d (%.40q...)", what, len(s), max, s)
	}
	if !utf8.ValidString(s) {
		return invalidf("%s %q is not valid UTF-8", what, s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return invalidf("%s %q contains a NUL byte", what, s)
	}
	return nil
}

// validTypes checks an event type filter.
func validTypes(what string, types []string) error {
	for _, t := range types {
		if t == "" {
			return invalidf("empty event type in %s", what)
		}
		if err := validText("event type in "+what, t, MaxTypeLength); err != nil {
			return err
		}
	}
	return nil
}

// validName checks a subscription name.
func validName(name string) error {
	if name == "" {
		return invalidf("empty subscription name")
	}
	return validText("subscription name", name, MaxNameLength)
}

// StreamHash is the stable hash of a stream that places it in a partition of
// a partitioned subscription: partition = StreamHash(s) % partitions. It is
// the 64-bit FNV-1a hash of the stream's name with the top bit cleared, so
// it is the same on every driver, process and version of meowmx.
func StreamHash(s Stream) int64 {
	h := fnv.New64a()
	h.Write([]byte(s.Category))
	h.Write([]byte(StreamSeparator))
	h.Write([]byte(s.ID))
	return int64(h.Sum64() & (1<<63 - 1))
}

// ExpectedVersion is what an append requires of the stream: an exact
// version (that of its last event, >= 0), or Any, NoStream or StreamExists.
type ExpectedVersion = meowmxtype.ExpectedVersion

const (
	// Any appends whatever the stream's version.
	Any = meowmxtype.Any
	// NoStream requires that the stream has no events.
	NoStream = meowmxtype.NoStream
	// StreamExists requires that the stream has at least one event.
	StreamExists = meowmxtype.StreamExists
)

func validateExpected(v ExpectedVersion) error {
	if v < StreamExists {
		return invalidf("expected version %d: want >= 0, Any, NoStream or StreamExists", int64(v))
	}
	return nil
}

// Event is an event to append.
type Event struct {
	// ID identifies the event across the store; a retried append with the
	// same IDs is recognised and not recorded twice. Zero means generate
	// one (a time-ordered UUIDv7).
	ID uuid.UUID
	// Type names the event, such as "OrderPlaced". Required.
	Type string
	// Data is the event's JSON. Required.
	Data json.RawMessage
	// Metadata is optional JSON, such as correlation and causation IDs.
	Metadata json.RawMessage
	// Tags are optional labels, such as "course:c1" or "student:s7", that
	// queries select events by (ReadQuery), across streams. Each is
	// non-empty text, at most MaxTagLength bytes, without repeats; an
	// event carries at most MaxTags.
	Tags []string
}

// RecordedEvent is an event as the store recorded it.
type RecordedEvent = meowmxtype.RecordedEvent
