package meowmx_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/meowmx/meowmx"
)

type regA struct {
	N int `json:"n"`
}
type regB struct{}

func TestRegistry(t *testing.T) {
	t.Parallel()
	r := meowmx.NewRegistry()
	if err := meowmx.Register[regA](r, "A"); err != nil {
		t.Fatal(err)
	}
	if err := meowmx.Register[regB](r, "A"); !errors.Is(err, meowmx.ErrInvalidInput) {
		t.Fatalf("a name twice: %v", err)
	}
	if err := meowmx.Register[regA](r, "A2"); !errors.Is(err, meowmx.ErrInvalidInput) {
		t.Fatalf("a type twice: %v", err)
	}
	if err := r.Upcast("A", func(d json.RawMessage) (string, json.RawMessage, error) { return "A", d, nil }); err == nil {
		t.Fatal("an upcaster for a registered name")
	}
	ev, err := r.Encode(regA{N: 3})
	if err != nil || ev.Type != "A" || string(ev.Data) != `{"n":3}` {
		t.Fatalf("Encode = %+v, %v", ev, err)
	}
	if _, err := r.Encode(&regA{}); !errors.Is(err, meowmx.ErrUnknownEventType) {
		t.Fatalf("Encode of an unregistered type: %v", err)
	}
	// A cycle of upcasters is an error, not a hang.
	_ = r.Upcast("X", func(d json.RawMessage) (string, json.RawMessage, error) { return "Y", d, nil })
	_ = r.Upcast("Y", func(d json.RawMessage) (string, json.RawMessage, error) { return "X", d, nil })
	if _, err := r.Decode(meowmx.RecordedEvent{Type: "X", Data: json.RawMessage(`{}`)}); err == nil {
		t.Fatal("an upcaster cycle decoded")
	}
	if _, err := r.Decode(meowmx.RecordedEvent{Type: "A", Data: json.RawMessage(`[1]`)}); err == nil {
		t.Fatal("data of the wrong shape decoded")
	}
}
