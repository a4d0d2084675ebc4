package meowmxtype

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

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
	return e.AppendJSON(make([]byte, 0, 256+len(e.Data)+len(e.Metadata))), nil
}

// AppendJSON appends MarshalJSON's object to dst, on one line: without
// the reflection and the second pass of encoding/json, for servers that
// write many events.
func (e *RecordedEvent) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"position":"`...)
	dst = strconv.AppendUint(dst, e.Position.TransactionID, 10)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, e.Position.Seq, 10)
	dst = append(dst, `","category":`...)
	dst = appendJSONString(dst, e.Stream.Category)
	dst = append(dst, `,"stream_id":`...)
	dst = appendJSONString(dst, e.Stream.ID)
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendInt(dst, e.Version, 10)
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, e.Type)
	dst = append(dst, `,"data":`...)
	dst = appendJSONValue(dst, e.Data)
	dst = append(dst, `,"metadata":`...)
	dst = appendJSONValue(dst, e.Metadata)
	dst = append(dst, `,"event_id":"`...)
	var id [36]byte
	dst = append(dst, hexUUID(&id, e.ID)...)
	dst = append(dst, `","recorded_at":"`...)
	dst = e.RecordedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	if len(e.Tags) > 0 {
		dst = append(dst, `,"tags":[`...)
		for i, tag := range e.Tags {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, tag)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// appendJSONValue appends stored JSON, null for none, compacted when it
// spans lines so that the object stays on one (a Server-Sent Events data
// line, a JSON line).
func appendJSONValue(dst, v []byte) []byte {
	if len(v) == 0 {
		return append(dst, "null"...)
	}
	if !json.Valid(v) {
		// Written by something else than meowmx (SQLite has no JSON
		// type): keep the object valid, as a string.
		return appendJSONString(dst, string(v))
	}
	if bytes.IndexByte(v, '\n') < 0 && bytes.IndexByte(v, '\r') < 0 {
		return append(dst, v...)
	}
	buf := bytes.NewBuffer(dst)
	if err := json.Compact(buf, v); err != nil {
		return appendJSONString(dst, string(v))
	}
	return buf.Bytes()
}

// appendJSONString appends s as a JSON string. Text in events is valid
// UTF-8 without NUL (checked when appended); control characters, quotes,
// backslashes and U+2028/U+2029 are escaped.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// hexUUID writes id in its canonical form into buf.
func hexUUID(buf *[36]byte, id uuid.UUID) []byte {
	const hex = "0123456789abcdef"
	j := 0
	for i, b := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			buf[j] = '-'
			j++
		}
		buf[j], buf[j+1] = hex[b>>4], hex[b&0xf]
		j += 2
	}
	return buf[:]
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
