package meowmx_test

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeQuickExample keeps the README's quick example identical to
// examples/quickstart/main.go, which CI builds and runs.
func TestReadmeQuickExample(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	program, err := os.ReadFile("examples/quickstart/main.go")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Quick example")
	if !ok {
		t.Fatal("README has no Quick example section")
	}
	_, block, ok := strings.Cut(section, "```go\n")
	if !ok {
		t.Fatal("the Quick example section has no go block")
	}
	block, _, _ = strings.Cut(block, "```")
	if block != string(program) {
		t.Fatal("the README's quick example differs from examples/quickstart/main.go")
	}
}
