package meowmxotel

import (
	"fmt"
	"strings"
	"testing"
)

// TestMemberStrings: only the top-level members whose values are strings
// are found, whatever the spacing, nesting and escapes around them.
func TestMemberStrings(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"traceparent": "00-a-b-01", "tracestate": "k=v"}`, `traceparent=00-a-b-01;tracestate=k=v;`},
		{`{"a":1,"b":[1,{"traceparent":"x"}],"c":{"traceparent":"y"},"traceparent":"z"}`, `traceparent=z;`},
		{` { "n" : null , "s" : "x\"y" , "t":true, "f": 1.5e3 } `, `s=x\"y;`},
		{`{"k\"ey":"v"}`, `k\"ey=v;`},
		{`{}`, ``},
		{`[{"traceparent":"x"}]`, ``},
		{`"traceparent"`, ``},
		{`{"a":"b"`, `a=b;`},
		{`{"a":`, ``},
		{`{"a":{"b":"c"}`, ``},
		{``, ``},
	} {
		var got strings.Builder
		memberStrings([]byte(c.in), func(k, v []byte) { fmt.Fprintf(&got, "%s=%s;", k, v) })
		if got.String() != c.want {
			t.Errorf("memberStrings(%s) found %q, want %q", c.in, got.String(), c.want)
		}
	}
}
