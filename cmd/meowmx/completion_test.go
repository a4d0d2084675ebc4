package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestCompletionBash runs the bash script in bash on command lines, and
// checks what it offers.
func TestCompletionBash(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is needed to test its completion script:", err)
	}
	script := mustRun(t, "", "completion", "bash").stdout
	for _, tc := range []struct {
		line string // the words typed, the last being completed
		want []string
		not  []string
	}{
		{"meowmx ", []string{"migrate", "read", "streams", "categories", "status", "subscriptions", "completion", "--db"}, nil},
		{"meowmx --db /tmp/x.db --schema s st", []string{"status", "streams"}, []string{"read"}},
		{"meowmx read order 1001 --f", []string{"--follow", "--format", "--from"}, []string{"--to"}},
		{"meowmx read --format ", []string{"text", "json"}, []string{"--after"}},
		{"meowmx subscriptions ", []string{"reset", "parked", "replay", "delete", "--format"}, nil},
		{"meowmx subscriptions reset billing --", []string{"--to", "--db", "--schema", "--help"}, []string{"--format"}},
		{"meowmx subscriptions reset billing --to ", []string{"start", "end"}, nil},
		{"meowmx streams --", []string{"--category", "--after", "--limit", "--format"}, []string{"--follow"}},
		{"meowmx completion ", []string{"bash", "zsh", "fish"}, nil},
	} {
		words := strings.Split(tc.line, " ")
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = shellQuote(w)
		}
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script+`
COMP_WORDS=(`+strings.Join(quoted, " ")+`)
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_meowmx
printf '%s\n' "${COMPREPLY[@]}"`)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.line, err, out)
		}
		got := strings.Fields(string(out))
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("%q: offered %v, missing %s", tc.line, got, w)
			}
		}
		for _, w := range tc.not {
			if slices.Contains(got, w) {
				t.Errorf("%q: offered %v, with %s", tc.line, got, w)
			}
		}
	}
}

// TestCompletionScripts: every command and each command's flags appear in
// the zsh and fish scripts, and an unknown shell is a usage error.
func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	zsh := mustRun(t, "", "completion", "zsh").stdout
	fish := mustRun(t, "", "completion", "fish").stdout
	if !strings.HasPrefix(zsh, "#compdef meowmx") || !strings.Contains(zsh, "compdef _meowmx meowmx") {
		t.Fatalf("zsh script:\n%s", zsh)
	}
	spec := newCompletionSpec()
	for _, c := range commands {
		if !strings.Contains(fish, "-a "+c.name+" ") || !strings.Contains(zsh, c.name) {
			t.Errorf("command %s missing from a script", c.name)
		}
		for _, f := range spec.flags[c.name] {
			if !strings.Contains(fish, "'__fish_seen_subcommand_from "+c.name) || !strings.Contains(fish, "-l "+strings.TrimPrefix(f, "--")) {
				t.Errorf("flag %s of %s missing from the fish script", f, c.name)
			}
		}
	}
	if got := spec.flags["read"]; !slices.Contains(got, "--follow") || !slices.Contains(got, "--category") {
		t.Fatalf("flags of read = %v", got)
	}
	if r := runCLI(t, "", "completion", "tcsh"); r.code != 2 {
		t.Fatalf("completion tcsh: %+v", r)
	}
}

// TestReadmeCommands: the README's command section shows every command,
// and every flag it shows is one the command accepts.
func TestReadmeCommands(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## The meowmx command")
	if !ok {
		t.Fatal("README has no section \"The meowmx command\"")
	}
	_, block, _ := strings.Cut(section, "```sh\n")
	block, _, _ = strings.Cut(block, "```")
	spec := newCompletionSpec()
	shown := map[string]bool{}
	for _, line := range lines(block) {
		if i := strings.Index(line, "  #"); i >= 0 {
			line = line[:i]
		}
		if i := strings.Index(line, "| meowmx "); i >= 0 {
			line = line[i+2:]
		}
		words := strings.Fields(line)
		if len(words) < 2 || words[0] != "meowmx" {
			t.Fatalf("README command line %q does not start with meowmx COMMAND", line)
		}
		cmd := words[1]
		if _, ok := spec.flags[cmd]; !ok {
			t.Errorf("README shows an unknown command %q", cmd)
			continue
		}
		shown[cmd] = true
		key := cmd
		if len(words) > 2 && slices.Contains(spec.subs[cmd], words[2]) && cmd != "completion" {
			key += " " + words[2]
		}
		for _, w := range words[2:] {
			flagName := strings.Trim(w, "[]|")
			flagName, _, _ = strings.Cut(flagName, "=")
			if !strings.HasPrefix(flagName, "--") {
				continue
			}
			if !slices.Contains(spec.flags[key], flagName) {
				t.Errorf("README shows %s with %s, which it does not accept (it accepts %v)", key, flagName, spec.flags[key])
			}
		}
	}
	for _, c := range commands {
		if !shown[c.name] {
			t.Errorf("README's command section lacks %s", c.name)
		}
	}
}
