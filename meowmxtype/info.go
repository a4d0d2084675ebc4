package meowmxtype

import "time"

// StreamInfo describes a stream by its last event.
type StreamInfo struct {
	Stream Stream
	// Version is the version of the stream's last event: the stream holds
	// Version+1 events.
	Version int64
	// LastPosition and LastRecordedAt are those of its last event.
	LastPosition   Position
	LastRecordedAt time.Time
}

// CategoryInfo describes a category: how many events and streams it holds,
// and its last event in the global order.
type CategoryInfo struct {
	Category string
	Events   int64
	Streams  int64
	// LastPosition and LastRecordedAt are those of its event that is last
	// in the global order.
	LastPosition   Position
	LastRecordedAt time.Time
}
