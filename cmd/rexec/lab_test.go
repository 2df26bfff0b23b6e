package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runLabCmd(t *testing.T, args ...string) runResult {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"lab"}, args...), env{
		stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		signals: make(chan os.Signal), getenv: func(string) string { return "" },
	})
	return runResult{exitCode(err, &errb), out.String(), errb.String()}
}

func TestLabCommand(t *testing.T) {
	r := runLabCmd(t, "--color", "never")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `lesson "classic"`)
	assert.Contains(t, r.stdout, "hello 1|hello 2|hello 3|hello 4|hello 5")
	assert.Regexp(t, `raw +0/5 .* 5 glued`, r.stdout)
	assert.Regexp(t, `len-i +5/5 `, r.stdout)

	r = runLabCmd(t, "--strategy", "raw,len-be", "--buffer", "1", "--no-view")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.NotContains(t, r.stdout, "read #1")
	assert.Regexp(t, `raw +0/5 .* 5 split`, r.stdout)
	assert.Regexp(t, `len-be +5/5 `, r.stdout)

	r = runLabCmd(t, "--preset", "nagle", "--no-view")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, `len-be, Nagle on +10/10 +\S+ \S+ +[3-9]\d\.\d\dms`, r.stdout, "the stall is in the table")

	r = runLabCmd(t, "--udp", "--overflow")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.NotContains(t, r.stdout, "lesson", "only what was asked for")
	assert.Contains(t, r.stdout, "got 1024 bytes; the other 1026 are gone")
	assert.Contains(t, r.stdout, "len-i         FAILS: struct.error")

	r = runLabCmd(t, "--list")
	assert.Contains(t, r.stdout, "md5-trailer")

	for _, args := range [][]string{{"--preset", "nope"}, {"--strategy", "pigeon"}, {"--buffer", "-1"}, {"--color", "pink"}, {"extra"}} {
		r := runLabCmd(t, args...)
		assert.Equal(t, exitUsage, r.code, "%v: %s", args, r.stderr)
	}
}

// TestLabGuideCommands runs every `rexec lab` command the lab guides show,
// in both languages, so that the guides stay true.
func TestLabGuideCommands(t *testing.T) {
	re := regexp.MustCompile("rexec lab[^`\\n|]*")
	seen := map[string]bool{}
	for _, guide := range []string{"../../docs/lab.en.md", "../../docs/lab.zh.md"} {
		b, err := os.ReadFile(guide)
		require.NoError(t, err)
		for _, m := range re.FindAllString(string(b), -1) {
			line := strings.TrimSpace(m)
			if seen[line] {
				continue
			}
			seen[line] = true
			args := strings.Fields(strings.TrimPrefix(line, "rexec lab"))
			r := runLabCmd(t, append(args, "--no-view")...)
			assert.Equal(t, 0, r.code, "%s: %s", line, r.stderr)
		}
	}
	assert.Greater(t, len(seen), 12, "the guides show the lab's commands")
}
