package meowmxtype

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// RecordedEvent is an event as the store recorded it.
type RecordedEvent struct {
	ID     uuid.UUID
	Stream Stream
	// Version is the event's place in its stream, from 0, without gaps.
	Version int64
	// Position is the event's place in the global order.
	Position Position
	Type     string
	// Data and Metadata are the event's JSON. PostgreSQL stores them as
	// jsonb, so what it returns is equivalent JSON, normalized (key order,
	// spacing), not the same bytes. Metadata is nil when there was none.
	Data     json.RawMessage
	Metadata json.RawMessage
	// Tags are the event's tags, nil when it has none.
	Tags       []string
	RecordedAt time.Time
}

// Horizon describes the oldest running transaction holding the visibility
// horizon back (PostgreSQL only): events appended by transactions that
// started after it stay invisible to ReadAll, ReadCategory and
// subscriptions until it ends. A long-running or forgotten transaction
// anywhere in the PostgreSQL cluster, any database, shows up here.
type Horizon struct {
	// PID is the backend's process id (0 for a prepared transaction).
	PID int
	// TransactionID is its 32-bit transaction id, as pg_stat_activity shows.
	TransactionID uint64
	// Age is how long its transaction has been running.
	Age time.Duration
	// Database is the database it is connected to.
	Database string
	// State is its pg_stat_activity state, or "prepared".
	State string
	// Query is the start of its last query (the gid of a prepared one).
	Query string
}
