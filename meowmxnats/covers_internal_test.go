package meowmxnats

import "testing"

// TestCovers: a stream's subject filter takes the relay's subjects
// (PREFIX.<category>.<id>) or it does not.
func TestCovers(t *testing.T) {
	for _, c := range []struct {
		filter, prefix string
		want           bool
	}{
		{"meowmx.>", "meowmx", true}, {">", "meowmx", true}, {"*.>", "meowmx", true},
		{"meowmx.*.*", "meowmx", true}, {"meowmx.*.>", "meowmx", true}, {"*.*.*", "meowmx", true},
		{"meowmx.*", "meowmx", false}, {"meowmx.order.>", "meowmx", false}, {"meowmx.*.x", "meowmx", false},
		{"other.>", "meowmx", false}, {"meowmx", "meowmx", false}, {"meowmx.*.*.*", "meowmx", false},
		{"app.events.>", "app.events", true}, {"app.*.*.*", "app.events", true}, {"app.x.>", "app.events", false},
	} {
		if got := covers(c.filter, c.prefix); got != c.want {
			t.Errorf("covers(%q, %q) = %v, want %v", c.filter, c.prefix, got, c.want)
		}
	}
}
