package main

// meowmx completion SHELL: completion scripts for bash, zsh and fish,
// made from the commands' own flag sets, so that they list exactly the
// flags each command accepts.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// subcommands lists the subcommands of the commands that have them.
var subcommands = map[string][]string{
	"subscriptions": {"reset", "parked", "replay", "delete"},
	"completion":    {"bash", "zsh", "fish"},
}

// flagValues lists the values of flags that take one of a few words.
var flagValues = map[string][]string{
	"format": {"text", "json"},
	"to":     {"start", "end"},
	"expect": {"any", "none", "exists"},
}

// completionSpec is what the scripts complete: each command (or "command
// subcommand") with its flags.
type completionSpec struct {
	commands []string
	subs     map[string][]string
	flags    map[string][]string // "read", "subscriptions reset" -> --flags
}

// flagsOf returns the flags that the command makes when asked for its help
// with args, without running it.
func flagsOf(run func(*env) error, args ...string) []string {
	e := &env{ctx: context.Background(), args: append(args, "--help"), stdin: strings.NewReader(""),
		stdout: io.Discard, stderr: io.Discard}
	_ = run(e) // --help returns before anything is opened
	var names []string
	if e.flags != nil {
		e.flags.VisitAll(func(f *flag.Flag) { names = append(names, "--"+f.Name) })
	}
	return append(names, "--help")
}

func newCompletionSpec() *completionSpec {
	spec := &completionSpec{subs: subcommands, flags: map[string][]string{}}
	for _, c := range commands {
		spec.commands = append(spec.commands, c.name)
		if c.name == "completion" {
			spec.flags[c.name] = []string{"--help"}
			continue
		}
		spec.flags[c.name] = flagsOf(c.run)
		if c.name == "subscriptions" {
			for _, sub := range subcommands[c.name] {
				spec.flags[c.name+" "+sub] = flagsOf(c.run, sub)
			}
		}
	}
	return spec
}

// cmdCompletion runs "meowmx completion SHELL".
func cmdCompletion(e *env) error {
	fs := newFlagSet(e, "completion", `Usage: meowmx completion bash|zsh|fish

Prints a script that completes meowmx's commands, subcommands and flags.

  bash:  source <(meowmx completion bash)      (in ~/.bashrc)
  zsh:   source <(meowmx completion zsh)       (in ~/.zshrc, after compinit)
  fish:  meowmx completion fish > ~/.config/fish/completions/meowmx.fish`)
	args, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef("want the shell: bash, zsh or fish")
	}
	spec := newCompletionSpec()
	switch args[0] {
	case "bash":
		_, err = io.WriteString(e.stdout, spec.bash())
	case "zsh":
		_, err = io.WriteString(e.stdout, spec.zsh())
	case "fish":
		_, err = io.WriteString(e.stdout, spec.fish())
	default:
		return usagef("unknown shell %q: want bash, zsh or fish", args[0])
	}
	return err
}

// words returns what completes after the command line's command and
// subcommand: subcommands, then flags, then the global flags.
func (spec *completionSpec) words(cmd, sub string) []string {
	var words []string
	if sub == "" {
		words = append(words, spec.subs[cmd]...)
	}
	key := cmd
	if sub != "" && slices.Contains(spec.subs[cmd], sub) {
		key += " " + sub
	}
	words = append(words, spec.flags[key]...)
	return append(words, "--db", "--schema", "--replica", "--listen-db")
}

// cases writes one shell case per command and subcommand, with line making
// each case from its pattern and words.
func (spec *completionSpec) cases(line func(pattern string, words []string) string) string {
	var b strings.Builder
	b.WriteString(line("", append(slices.Clone(spec.commands), "--help", "--db", "--schema", "--replica", "--listen-db")))
	for _, cmd := range spec.commands {
		for _, sub := range spec.subs[cmd] {
			if cmd == "completion" {
				continue
			}
			b.WriteString(line(cmd+" "+sub, spec.words(cmd, sub)))
		}
		b.WriteString(line(cmd, spec.words(cmd, "")))
	}
	return b.String()
}

func valueCases(line func(flag string, values []string) string) string {
	var b strings.Builder
	for _, name := range slices.Sorted(mapKeys(flagValues)) {
		b.WriteString(line(name, flagValues[name]))
	}
	return b.String()
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// The bash and zsh scripts find the command and subcommand by skipping
// flags (and the values of --db and --schema), then complete from a case.
const shellScan = `  local i w cmd= sub=
  for ((i = %[3]d; i < %[1]s; i++)); do
    w=${%[2]s[i]}
    case $w in
      --db|--schema) ((i++)) ;;
      -*) ;;
      *) if [[ -z $cmd ]]; then cmd=$w; elif [[ -z $sub ]]; then sub=$w; fi ;;
    esac
  done
`

func (spec *completionSpec) bash() string {
	var b strings.Builder
	b.WriteString("# bash completion for meowmx: source <(meowmx completion bash)\n")
	b.WriteString("_meowmx() {\n  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n")
	fmt.Fprintf(&b, shellScan, "COMP_CWORD", "COMP_WORDS", 1)
	b.WriteString("  case $prev in\n    --db) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n")
	b.WriteString(valueCases(func(flag string, values []string) string {
		return fmt.Sprintf("    --%s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", flag, strings.Join(values, " "))
	}))
	b.WriteString("  esac\n  local words\n  case \"$cmd $sub\" in\n")
	b.WriteString(spec.cases(func(pattern string, words []string) string {
		return fmt.Sprintf("    %s) words=%q ;;\n", casePattern(pattern), strings.Join(words, " "))
	}))
	b.WriteString("  esac\n  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n}\ncomplete -o default -F _meowmx meowmx\n")
	return b.String()
}

// casePattern is the shell case pattern matching "$cmd $sub" for pattern:
// "" before the command, "cmd sub" for a subcommand, and "cmd" followed by
// anything (its arguments) otherwise.
func casePattern(pattern string) string {
	switch {
	case pattern == "":
		return `" "`
	case strings.Contains(pattern, " "):
		return fmt.Sprintf("%q", pattern)
	}
	return fmt.Sprintf("%q*", pattern+" ")
}

func (spec *completionSpec) zsh() string {
	var b strings.Builder
	b.WriteString("#compdef meowmx\n# zsh completion for meowmx: source <(meowmx completion zsh)\n")
	b.WriteString("_meowmx() {\n  local cur=${words[CURRENT]} prev=${words[CURRENT-1]}\n")
	fmt.Fprintf(&b, shellScan, "CURRENT", "words", 2) // zsh counts from 1
	b.WriteString("  case $prev in\n    --db) _files; return ;;\n")
	b.WriteString(valueCases(func(flag string, values []string) string {
		return fmt.Sprintf("    --%s) compadd -- %s; return ;;\n", flag, strings.Join(values, " "))
	}))
	b.WriteString("  esac\n  case \"$cmd $sub\" in\n")
	b.WriteString(spec.cases(func(pattern string, words []string) string {
		return fmt.Sprintf("    %s) compadd -- %s ;;\n", casePattern(pattern), strings.Join(words, " "))
	}))
	b.WriteString("    *) compadd -- --db --schema; _files ;;\n  esac\n}\ncompdef _meowmx meowmx\n")
	return b.String()
}

func (spec *completionSpec) fish() string {
	var b strings.Builder
	b.WriteString("# fish completion for meowmx: meowmx completion fish > ~/.config/fish/completions/meowmx.fish\n")
	b.WriteString("complete -c meowmx -f\n")
	b.WriteString("complete -c meowmx -l db -r -F -d 'the database'\ncomplete -c meowmx -l schema -x -d 'the schema'\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "complete -c meowmx -n '__fish_use_subcommand' -a %s -d %s\n", c.name, fishQuote(c.summary))
	}
	for _, cmd := range spec.commands {
		var subs []string
		for _, sub := range spec.subs[cmd] {
			subs = append(subs, sub)
			cond := fmt.Sprintf("__fish_seen_subcommand_from %s; and not __fish_seen_subcommand_from %s", cmd, strings.Join(spec.subs[cmd], " "))
			fmt.Fprintf(&b, "complete -c meowmx -n %s -a %s\n", fishQuote(cond), sub)
		}
		for _, sub := range subs {
			if cmd == "completion" {
				break
			}
			cond := fmt.Sprintf("__fish_seen_subcommand_from %s; and __fish_seen_subcommand_from %s", cmd, sub)
			for _, f := range spec.flags[cmd+" "+sub] {
				fmt.Fprintf(&b, "complete -c meowmx -n %s -l %s%s\n", fishQuote(cond), strings.TrimPrefix(f, "--"), fishValues(f))
			}
		}
		cond := "__fish_seen_subcommand_from " + cmd
		if len(subs) > 0 {
			cond += "; and not __fish_seen_subcommand_from " + strings.Join(subs, " ")
		}
		for _, f := range spec.flags[cmd] {
			fmt.Fprintf(&b, "complete -c meowmx -n %s -l %s%s\n", fishQuote(cond), strings.TrimPrefix(f, "--"), fishValues(f))
		}
	}
	return b.String()
}

// fishValues is the -a option listing a flag's values, if it has some.
func fishValues(flag string) string {
	if values, ok := flagValues[strings.TrimPrefix(flag, "--")]; ok {
		return " -x -a " + fishQuote(strings.Join(values, " "))
	}
	return ""
}

func fishQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }
