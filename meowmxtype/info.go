package meowmxtype

import (
	"encoding/json"
	"time"
)

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

// streamInfoJSON is the JSON form of a StreamInfo.
type streamInfoJSON struct {
	Stream         string `json:"stream"`
	Category       string `json:"category"`
	StreamID       string `json:"stream_id"`
	Events         int64  `json:"events"`
	Version        int64  `json:"version"`
	LastPosition   string `json:"last_position"`
	LastRecordedAt string `json:"last_recorded_at"`
}

// MarshalJSON writes the stream as the command prints it and the HTTP
// API serves it: stream, category, stream_id, events, version,
// last_position and last_recorded_at.
func (s StreamInfo) MarshalJSON() ([]byte, error) {
	return json.Marshal(streamInfoJSON{
		Stream: s.Stream.String(), Category: s.Stream.Category, StreamID: s.Stream.ID,
		Events: s.Version + 1, Version: s.Version, LastPosition: s.LastPosition.String(),
		LastRecordedAt: s.LastRecordedAt.UTC().Format(time.RFC3339Nano),
	})
}

// categoryInfoJSON is the JSON form of a CategoryInfo.
type categoryInfoJSON struct {
	Category       string `json:"category"`
	Events         int64  `json:"events"`
	Streams        int64  `json:"streams"`
	LastPosition   string `json:"last_position"`
	LastRecordedAt string `json:"last_recorded_at"`
}

// MarshalJSON writes the category as the command prints it and the HTTP
// API serves it: category, events, streams, last_position and
// last_recorded_at.
func (c CategoryInfo) MarshalJSON() ([]byte, error) {
	return json.Marshal(categoryInfoJSON{
		Category: c.Category, Events: c.Events, Streams: c.Streams,
		LastPosition: c.LastPosition.String(), LastRecordedAt: c.LastRecordedAt.UTC().Format(time.RFC3339Nano),
	})
}
