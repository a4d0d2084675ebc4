package meowmx

import (
	"context"
	"encoding/json"
	"testing"
)

// TestAddEntries: an observer's metadata entries are added to an event's
// metadata object without replacing the event's own keys; metadata that is
// not an object is left alone.
func TestAddEntries(t *testing.T) {
	kv := []string{"traceparent", "00-abc-def-01", "tracestate", "k=v"}
	for _, c := range []struct{ in, want string }{
		{``, `{"traceparent":"00-abc-def-01","tracestate":"k=v"}`},
		{`null`, `{"traceparent":"00-abc-def-01","tracestate":"k=v"}`},
		{`{}`, `{"traceparent":"00-abc-def-01","tracestate":"k=v"}`},
		{` { "user" : "u1" } `, `{"traceparent":"00-abc-def-01","tracestate":"k=v","user" : "u1"}`},
		{`{"traceparent":"mine"}`, `{"tracestate":"k=v","traceparent":"mine"}`},
		{`{"note":"traceparent"}`, `{"traceparent":"00-abc-def-01","tracestate":"k=v","note":"traceparent"}`},
		{`{"traceparent":"a","tracestate":"b"}`, `{"traceparent":"a","tracestate":"b"}`},
		{`[1,2]`, `[1,2]`},
		{`"text"`, `"text"`},
		{`{"a":1} x`, `{"a":1} x`},
	} {
		got := addEntries(json.RawMessage(c.in), kv)
		if string(got) != c.want {
			t.Errorf("addEntries(%s) = %s, want %s", c.in, got, c.want)
		}
		if json.Valid([]byte(c.in)) != json.Valid(got) && c.in != "" {
			t.Errorf("addEntries(%s) = %s: not JSON", c.in, got)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"k=a&b<c>", `"k=a&b<c>"`},
		{`q"b\`, `"q\"b\\"`},
		{"tab\tnl\n", `"tab\tnl\n"`},
		{"é", `"é"`},
	} {
		if got := string(appendJSONString(nil, c.in)); got != c.want {
			t.Errorf("appendJSONString(%q) = %s, want %s", c.in, got, c.want)
		}
	}
	events := []Event{{Type: "A", Metadata: json.RawMessage(`{"a":1}`)}}
	out := withMetadata(events, kv)
	if string(events[0].Metadata) != `{"a":1}` {
		t.Errorf("withMetadata changed the caller's event: %s", events[0].Metadata)
	}
	if string(out[0].Metadata) != `{"traceparent":"00-abc-def-01","tracestate":"k=v","a":1}` {
		t.Errorf("withMetadata: %s", out[0].Metadata)
	}
}

type oddInjector struct{ NopObserver }

func (oddInjector) MetadataEntries(_ context.Context, dst []string) []string {
	return append(dst, "k", "v", "lonely")
}

// TestMetadataEntriesOdd: a key without a value is dropped, not a panic.
func TestMetadataEntriesOdd(t *testing.T) {
	kv := metadataEntries(context.Background(), oddInjector{})
	if len(kv) != 2 || kv[0] != "k" || kv[1] != "v" {
		t.Fatalf("entries %q", kv)
	}
	if got := string(withMetadata([]Event{{}}, kv)[0].Metadata); got != `{"k":"v"}` {
		t.Fatalf("metadata %s", got)
	}
}
