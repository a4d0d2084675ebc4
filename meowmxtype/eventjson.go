package meowmxtype

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// recordedEventJSON is the JSON form of a RecordedEvent: the one the
// command prints and the HTTP API serves. The position is a string
// ("TX/SEQ", see Position.String): its transaction part can exceed what a
// JSON number holds exactly in many languages.
type recordedEventJSON struct {
	Position   string          `json:"position"`
	Category   string          `json:"category"`
	StreamID   string          `json:"stream_id"`
	Version    int64           `json:"version"`
	Type       string          `json:"type"`
	Data       json.RawMessage `json:"data"`
	Metadata   json.RawMessage `json:"metadata"`
	EventID    string          `json:"event_id"`
	RecordedAt string          `json:"recorded_at"`
	Tags       []string        `json:"tags,omitempty"`
}

// MarshalJSON writes the event as an object with position, category,
// stream_id, version, type, data, metadata (null when none), event_id,
// recorded_at (RFC 3339, UTC) and tags (left out when none).
func (e RecordedEvent) MarshalJSON() ([]byte, error) {
	metadata := e.Metadata
	if metadata == nil {
		metadata = json.RawMessage("null")
	}
	data := e.Data
	if data == nil {
		data = json.RawMessage("null")
	}
	return json.Marshal(recordedEventJSON{
		Position: e.Position.String(), Category: e.Stream.Category, StreamID: e.Stream.ID,
		Version: e.Version, Type: e.Type, Data: data, Metadata: metadata,
		EventID: e.ID.String(), RecordedAt: e.RecordedAt.UTC().Format(time.RFC3339Nano), Tags: e.Tags,
	})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (e *RecordedEvent) UnmarshalJSON(b []byte) error {
	var j recordedEventJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	pos, err := ParsePosition(j.Position)
	if err != nil {
		return err
	}
	id, err := uuid.Parse(j.EventID)
	if err != nil {
		return fmt.Errorf("event_id: %w", err)
	}
	at, err := time.Parse(time.RFC3339Nano, j.RecordedAt)
	if err != nil {
		return fmt.Errorf("recorded_at: %w", err)
	}
	metadata := j.Metadata
	if string(metadata) == "null" {
		metadata = nil
	}
	*e = RecordedEvent{
		ID: id, Stream: NewStream(j.Category, j.StreamID), Version: j.Version, Position: pos,
		Type: j.Type, Data: j.Data, Metadata: metadata, Tags: j.Tags, RecordedAt: at,
	}
	return nil
}
