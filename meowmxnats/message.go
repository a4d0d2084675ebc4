// Package meowmxnats relays a meowmx store's events to NATS JetStream,
// exactly once and in version order per stream, and turns the messages
// back into events.
//
// A Relay is a meowmx subscription whose handler publishes each event to
// the subject PREFIX.<category>.<stream id> (each token encoded by
// SubjectToken) of a JetStream stream, with the event ID as Nats-Msg-Id,
// waits for JetStream's acknowledgements, and only then lets the
// subscription commit its checkpoint. Events published again (after a
// crash, a failure, a partition taken over, a reset) are not stored twice:
// the relay remembers the last version JetStream acknowledged per stream,
// and where a batch does not follow it, it reads the last message on the
// stream's subject and skips what JetStream holds; JetStream's
// de-duplication by event ID, within the stream's duplicate window, backs
// that up. The events of one stream are published one after the other (the
// next once the previous is acknowledged), those of different streams
// concurrently: JetStream keeps each subject in version order even when a
// connection drops mid-batch.
//
// Event turns a received message back into a meowmx.RecordedEvent.
package meowmxnats

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/meowmx/meowmx"
)

// The headers of a relayed event's message (besides jetstream.MsgIDHeader,
// the event ID). Tags are repeated values of HeaderTag.
const (
	HeaderStream     = "Meowmx-Stream"
	HeaderType       = "Meowmx-Type"
	HeaderVersion    = "Meowmx-Version"
	HeaderPosition   = "Meowmx-Position"
	HeaderRecordedAt = "Meowmx-Recorded-At"
	HeaderTag        = "Meowmx-Tag"
	HeaderMetadata   = "Meowmx-Metadata"
)

// SubjectToken encodes s as one token of a NATS subject: letters, digits
// and - _ : = @ + ~ stay as they are, and every other byte (the dot, spaces,
// the wildcards, %) becomes %XX, so that distinct stream IDs give distinct
// tokens and any ID gives a valid one.
func SubjectToken(s string) string {
	plain := true
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			plain = false
			break
		}
	}
	if plain && s != "" {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; tokenByte(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() == 0 {
		return "%"
	}
	return b.String()
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == ':' || c == '=' || c == '@' || c == '+' || c == '~'
}

// Subject is the subject of stream's events under prefix.
func Subject(prefix string, stream meowmx.Stream) string {
	return prefix + "." + SubjectToken(stream.Category) + "." + SubjectToken(stream.ID)
}

// message makes the message of a recorded event.
func message(prefix, jsStream string, ev *meowmx.RecordedEvent) (*nats.Msg, error) {
	m := nats.NewMsg(Subject(prefix, ev.Stream))
	m.Header.Set(jetstream.MsgIDHeader, ev.ID.String())
	m.Header.Set(jetstream.ExpectedStreamHeader, jsStream)
	m.Header.Set(HeaderStream, headerValue(ev.Stream.String()))
	m.Header.Set(HeaderType, headerValue(ev.Type))
	m.Header.Set(HeaderVersion, strconv.FormatInt(ev.Version, 10))
	m.Header.Set(HeaderPosition, ev.Position.String())
	m.Header.Set(HeaderRecordedAt, ev.RecordedAt.UTC().Format(time.RFC3339Nano))
	for _, tag := range ev.Tags {
		m.Header.Add(HeaderTag, headerValue(tag))
	}
	if len(ev.Metadata) > 0 {
		// One line: a header value cannot hold a line break.
		var meta bytes.Buffer
		if err := json.Compact(&meta, ev.Metadata); err != nil {
			return nil, fmt.Errorf("meowmxnats: event %s: metadata: %w", ev.ID, err)
		}
		m.Header.Set(HeaderMetadata, meta.String())
	}
	m.Data = ev.Data
	return m, nil
}

// headerValue encodes s for a header, which NATS keeps on one line and
// trims: '%', control characters and a space or tab at either end become
// %XX; anything else stays as it is.
func headerValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' || c < 0x20 || c == 0x7f || (c == ' ' || c == '\t') && (i == 0 || i == len(s)-1) {
			if b.Len() == 0 && i > 0 {
				b.WriteString(s[:i])
			}
			fmt.Fprintf(&b, "%%%02X", c)
		} else if b.Len() > 0 {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return s
	}
	return b.String()
}

// unescape decodes headerValue's %XX.
func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Event turns a message a Relay published back into the event it carries.
func Event(header nats.Header, data []byte) (meowmx.RecordedEvent, error) {
	var ev meowmx.RecordedEvent
	id, err := uuid.Parse(header.Get(jetstream.MsgIDHeader))
	if err != nil {
		return ev, fmt.Errorf("meowmxnats: %s: %w", jetstream.MsgIDHeader, err)
	}
	stream, err := meowmx.ParseStream(unescape(header.Get(HeaderStream)))
	if err != nil {
		return ev, fmt.Errorf("meowmxnats: %s: %w", HeaderStream, err)
	}
	version, err := strconv.ParseInt(header.Get(HeaderVersion), 10, 64)
	if err != nil {
		return ev, fmt.Errorf("meowmxnats: %s: %w", HeaderVersion, err)
	}
	position, err := meowmx.ParsePosition(header.Get(HeaderPosition))
	if err != nil {
		return ev, fmt.Errorf("meowmxnats: %s: %w", HeaderPosition, err)
	}
	at, err := time.Parse(time.RFC3339Nano, header.Get(HeaderRecordedAt))
	if err != nil {
		return ev, fmt.Errorf("meowmxnats: %s: %w", HeaderRecordedAt, err)
	}
	typ := unescape(header.Get(HeaderType))
	if typ == "" {
		return ev, fmt.Errorf("meowmxnats: no %s header", HeaderType)
	}
	ev = meowmx.RecordedEvent{
		ID: id, Stream: stream, Version: version, Position: position, Type: typ,
		Data: json.RawMessage(data), RecordedAt: at,
	}
	for _, tag := range header.Values(HeaderTag) {
		ev.Tags = append(ev.Tags, unescape(tag))
	}
	if meta := header.Get(HeaderMetadata); meta != "" {
		ev.Metadata = json.RawMessage(meta)
	}
	return ev, nil
}

// MsgEvent is Event of a message received from JetStream.
func MsgEvent(m jetstream.Msg) (meowmx.RecordedEvent, error) {
	return Event(m.Headers(), m.Data())
}
