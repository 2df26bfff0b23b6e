package main

import "strings"

// shellSyntax are the characters that make a lone argument a command line
// for the shell: ssh users write rexec lab1 'ls / | wc -l'.
const shellSyntax = " \t\n|&;<>()$`\\\"'*?[#~"

// shellOnly are the words no program can be: the shell's keywords and
// the builtins that change the shell itself (cd, export, ...).
var shellOnly = map[string]bool{
	"cd": true, "export": true, "source": true, ".": true, "alias": true, "unalias": true,
	"unset": true, "set": true, "exit": true, "eval": true, "exec": true, "ulimit": true,
	"umask": true, "read": true, "trap": true, "shift": true, "wait": true, "jobs": true,
	"fg": true, "bg": true, "readonly": true, "local": true, "declare": true, "typeset": true,
	"if": true, "for": true, "while": true, "until": true, "case": true, "function": true,
	"{": true, "(": true, "!": true, "[[": true, "((": true, "time": true,
}

// wantsShell reports whether argv is what an ssh user means as a command
// line: one argument with shell syntax in it, a shell builtin or keyword
// as the program, or a variable assignment before it (X=1 cmd). Such a
// command runs through the account's login shell, its words joined by
// spaces as ssh joins them; any other runs exactly as given.
func wantsShell(argv []string) bool {
	if len(argv) == 0 {
		return false
	}
	if len(argv) == 1 && strings.ContainsAny(argv[0], shellSyntax) {
		return true
	}
	if shellOnly[argv[0]] {
		return true
	}
	name, _, assign := strings.Cut(argv[0], "=")
	return assign && isName(name)
}

// isName reports whether s is a shell variable name.
func isName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// localeVars are the LANG and LC_* entries of environ.
func localeVars(environ []string) []string {
	var out []string
	for _, kv := range environ {
		if strings.HasPrefix(kv, "LANG=") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANGUAGE=") {
			out = append(out, kv)
		}
	}
	return out
}
