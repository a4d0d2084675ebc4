package meowmx_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/meowmx/meowmx"
	"github.com/meowmx/meowmx/meowmxpgxv5"
	"github.com/meowmx/meowmx/meowmxsqlite"
)

func TestPositionString(t *testing.T) {
	t.Parallel()
	for _, p := range []meowmx.Position{meowmx.Start, {TransactionID: 7615, Seq: 120}, {Seq: 3}, {TransactionID: 1<<64 - 1, Seq: 1<<63 - 1}} {
		parsed, err := meowmx.ParsePosition(p.String())
		if err != nil || parsed != p {
			t.Errorf("ParsePosition(%q) = %v, %v", p.String(), parsed, err)
		}
		text, _ := p.MarshalText()
		var q meowmx.Position
		if err := q.UnmarshalText(text); err != nil || q != p {
			t.Errorf("UnmarshalText(%q) = %v, %v", text, q, err)
		}
	}
	for _, bad := range []string{"", "12", "/", "1/", "/1", "a/1", "1/b", "-1/1", "1/-1", "+1/1", "1/+1", "1/2/3", " 1/2", "18446744073709551616/1"} {
		if _, err := meowmx.ParsePosition(bad); !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Errorf("ParsePosition(%q): err = %v, want ErrInvalidInput", bad, err)
		}
	}
}

func TestPositionCompare(t *testing.T) {
	t.Parallel()
	a := meowmx.Position{TransactionID: 5, Seq: 100}
	b := meowmx.Position{TransactionID: 6, Seq: 1}
	c := meowmx.Position{TransactionID: 6, Seq: 2}
	if a.Compare(b) != -1 || b.Compare(c) != -1 || c.Compare(a) != 1 || b.Compare(b) != 0 {
		t.Fatal("positions order by transaction id, then sequence")
	}
}

func TestParseStream(t *testing.T) {
	t.Parallel()
	s, err := meowmx.ParseStream("order-7f3a-11")
	if err != nil || s != meowmx.NewStream("order", "7f3a-11") {
		t.Fatalf("ParseStream = %+v, %v", s, err)
	}
	for _, bad := range []string{"order", "-1", "order-", ""} {
		if _, err := meowmx.ParseStream(bad); !errors.Is(err, meowmx.ErrInvalidInput) {
			t.Errorf("ParseStream(%q): err = %v", bad, err)
		}
	}
}

func TestExpectedVersionString(t *testing.T) {
	t.Parallel()
	for v, want := range map[meowmx.ExpectedVersion]string{meowmx.Any: "any", meowmx.NoStream: "no stream", meowmx.StreamExists: "stream exists", 4: "version 4"} {
		if v.String() != want {
			t.Errorf("%d.String() = %q, want %q", int64(v), v.String(), want)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	driver := meowmxsqlite.New(nil)
	cases := map[string]struct {
		cfg  meowmx.Config
		want string
	}{
		"schema":         {meowmx.Config{Schema: "Bad Name"}, "Config.Schema"},
		"schema quote":   {meowmx.Config{Schema: `x"; drop`}, "Config.Schema"},
		"max event size": {meowmx.Config{MaxEventSize: -1}, "Config.MaxEventSize"},
		"append retries": {meowmx.Config{AppendRetries: -2}, "Config.AppendRetries"},
		"replica driver": {meowmx.Config{Replica: meowmxpgxv5.NewReplica(nil)}, "Config.Replica is a postgres replica"},
	}
	for name, tc := range cases {
		if _, err := meowmx.New(driver, &tc.cfg); !errors.Is(err, meowmx.ErrInvalidInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrInvalidInput naming %s", name, err, tc.want)
		}
	}
	if _, err := meowmx.New(driver, nil); err != nil {
		t.Fatalf("default config: %v", err)
	}
}

// TestStreamHashStable: partitions of stored subscriptions depend on this
// value never changing.
func TestStreamHashStable(t *testing.T) {
	t.Parallel()
	if got := meowmx.StreamHash(meowmx.NewStream("order", "1")); got != 6837731555528337517 {
		t.Fatalf("StreamHash(order-1) = %d: the hash changed, which would move streams between partitions", got)
	}
	if meowmx.StreamHash(meowmx.NewStream("a", "b-c")) != meowmx.StreamHash(meowmx.NewStream("a", "b-c")) {
		t.Fatal("not deterministic")
	}
}

// TestRecordedEventJSON: the JSON form the command prints and the HTTP API
// serves reads back to the same event; metadata is null when there is none.
func TestRecordedEventJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 29, 12, 0, 0, 123456789, time.UTC)
	for _, e := range []meowmx.RecordedEvent{
		{ID: uuid.New(), Stream: meowmx.NewStream("order", "o-1"), Version: 3, Position: meowmx.Position{TransactionID: 1<<64 - 1, Seq: 7},
			Type: "Placed", Data: json.RawMessage(`{"a":1}`), Metadata: json.RawMessage(`{"m":true}`), Tags: []string{"course:c1"}, RecordedAt: at},
		{ID: uuid.New(), Stream: meowmx.NewStream("order", "o-2"), Type: "Paid", Data: json.RawMessage(`[]`), RecordedAt: at},
		{ID: uuid.New(), Stream: meowmx.NewStream("c\"at", "id\\ \t\x01\u2028é<>&"), Type: "T\"\n", Tags: []string{"a:\"b\"", "日本"},
			Data: json.RawMessage("{\n  \"a\": \"x\\ny\",\r\n  \"b\": [1, 2]\n}"), Metadata: json.RawMessage(`"\u2028"`), RecordedAt: at},
	} {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var back meowmx.RecordedEvent
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !json.Valid(b) || strings.ContainsAny(string(b), "\n\r") {
			t.Fatalf("not one line of JSON: %q", b)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, e.Data); err != nil {
			t.Fatal(err)
		}
		if string(back.Data) == string(compact.Bytes()) {
			back.Data = e.Data // the data, compacted where it spanned lines
		}
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("%s read back as %+v, want %+v", b, back, e)
		}
		if e.Metadata == nil && !strings.Contains(string(b), `"metadata":null`) {
			t.Fatalf("no null metadata in %s", b)
		}
	}
}
