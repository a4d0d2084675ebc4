package meowmxdatabasesql

import (
	"reflect"
	"testing"
	"time"
)

// TestArrayText: what textValue sends as an array, parseArray reads back
// element for element, whatever the elements hold.
func TestArrayText(t *testing.T) {
	for _, in := range [][]string{
		{},
		{"a"},
		{"a", "b c", `quote"d`, `back\slash`, "comma,", "{brace}", "NULL", "", " spaced "},
		{"ünïcødé", "tab\there", "new\nline"},
	} {
		v, err := textValue(in)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := parseArray(v.(string))
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		out := make([]string, len(parsed))
		for i, p := range parsed {
			if p == nil {
				t.Fatalf("%q: element %d read as NULL", v, i)
			}
			out[i] = *p
		}
		if !reflect.DeepEqual(in, out) {
			t.Errorf("%q read back as %q", in, out)
		}
	}
}

// TestParseArray reads PostgreSQL's own output: unquoted elements, NULL,
// and quoted ones.
func TestParseArray(t *testing.T) {
	got, err := parseArray(`{a,NULL,"NULL","b \"c\"",d\\e}`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "", "NULL", `b "c"`, `d\e`}
	for i, g := range got {
		switch {
		case i == 1 && g != nil:
			t.Errorf("element 1 = %q, want NULL", *g)
		case i != 1 && (g == nil || *g != want[i]):
			t.Errorf("element %d = %v, want %q", i, g, want[i])
		}
	}
	for _, bad := range []string{"", "{", "a,b", `{"open}`, "{{1},{2}}"} {
		if _, err := parseArray(bad); err == nil {
			t.Errorf("parseArray(%q) did not fail", bad)
		}
	}
}

func TestTextValues(t *testing.T) {
	id := [16]byte{0x01, 0x8f, 0x2c, 0x3d, 0x4e, 0x5f, 0x70, 0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8, 0x09}
	for _, c := range []struct {
		in   any
		want any
	}{
		{nil, nil},
		{id, "018f2c3d-4e5f-7081-92a3-b4c5d6e7f809"},
		{[][16]byte{id}, `{"018f2c3d-4e5f-7081-92a3-b4c5d6e7f809"}`},
		{uint64(1) << 63, "9223372036854775808"},
		{uint64(7), int64(7)},
		{[]byte(`{"a":1}`), `{"a":1}`},
		{[][]byte{[]byte(`{"a":"x"}`), nil}, `{"{\"a\":\"x\"}",NULL}`},
		{[]int64{1, -2}, `{"1","-2"}`},
		{[]bool{true, false}, `{"true","false"}`},
		{1500 * time.Millisecond, "1500000 microseconds"},
		{[]string(nil), nil},
	} {
		got, err := textValue(c.in)
		if err != nil {
			t.Fatalf("%#v: %v", c.in, err)
		}
		if got != c.want {
			t.Errorf("textValue(%#v) = %#v, want %#v", c.in, got, c.want)
		}
	}
	if _, err := textValue(struct{}{}); err == nil {
		t.Error("textValue of a struct did not fail")
	}
}

func TestAssignUUID(t *testing.T) {
	var id [16]byte
	if err := assign(&id, "018f2c3d-4e5f-7081-92a3-b4c5d6e7f809"); err != nil {
		t.Fatal(err)
	}
	if uuidText(id) != "018f2c3d-4e5f-7081-92a3-b4c5d6e7f809" {
		t.Errorf("read %x", id)
	}
	var p *uint64
	if err := assign(&p, []byte("42")); err != nil || p == nil || *p != 42 {
		t.Errorf("assign(**uint64, 42) = %v, %v", p, err)
	}
	if err := assign(&p, nil); err != nil || p != nil {
		t.Errorf("assign(**uint64, NULL) = %v, %v", p, err)
	}
	var n int64
	if err := assign(&n, nil); err == nil {
		t.Error("NULL into an int64 did not fail")
	}
}
