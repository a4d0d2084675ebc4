package jsoncheck_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/meowmx/meowmx/internal/jsoncheck"
)

// Cases lists documents with the verdict PostgreSQL's jsonb gives them
// (checked against a server by the PostgreSQL driver's tests).
var Cases = jsoncheck.Cases

func TestCases(t *testing.T) {
	for _, tc := range Cases {
		err := jsoncheck.Check([]byte(tc.JSON))
		if (err == nil) != tc.Valid {
			t.Errorf("Check(%.60q) = %v, want valid=%v", tc.JSON, err, tc.Valid)
		}
		if err != nil && tc.Want != "" && !strings.Contains(err.Error(), tc.Want) {
			t.Errorf("Check(%.60q) = %v, want it to mention %q", tc.JSON, err, tc.Want)
		}
	}
}

func TestDepth(t *testing.T) {
	deep := func(n int) []byte {
		return []byte(strings.Repeat(`{"a":[`, n) + "1" + strings.Repeat(`]}`, n))
	}
	if err := jsoncheck.Check(deep(jsoncheck.MaxDepth / 2)); err != nil {
		t.Fatalf("%d levels: %v", jsoncheck.MaxDepth, err)
	}
	if err := jsoncheck.Check(deep(jsoncheck.MaxDepth/2 + 1)); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("%d levels: %v", jsoncheck.MaxDepth+2, err)
	}
}

// FuzzCheck: whatever Check accepts, encoding/json accepts too, and it is
// valid UTF-8; and documents encoding/json writes from plain values are
// accepted.
func FuzzCheck(f *testing.F) {
	for _, tc := range Cases {
		f.Add([]byte(tc.JSON))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if jsoncheck.Check(data) == nil {
			if !json.Valid(data) || !utf8.Valid(data) {
				t.Fatalf("Check accepted %q, which encoding/json refuses or is not UTF-8", data)
			}
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("Check accepted %q: %v", data, err)
			}
		}
		if utf8.Valid(data) && !strings.ContainsRune(string(data), 0) {
			out, err := json.Marshal(string(data))
			if err != nil {
				t.Fatal(err)
			}
			if err := jsoncheck.Check(out); err != nil {
				t.Fatalf("Check refused %q, encoding/json's string of valid text: %v", out, err)
			}
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	doc := []byte(`{"order_id":"0b9d3e84-7d6c-4a5e","items":[{"sku":"tea","qty":2,"price":3.75}],"total":7.5,"note":"caf\u00e9"}`)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if err := jsoncheck.Check(doc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStdlibValid(b *testing.B) {
	doc := []byte(`{"order_id":"0b9d3e84-7d6c-4a5e","items":[{"sku":"tea","qty":2,"price":3.75}],"total":7.5,"note":"caf\u00e9"}`)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if !json.Valid(doc) {
			b.Fatal("invalid")
		}
	}
}
