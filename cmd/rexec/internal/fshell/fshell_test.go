package fshell_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/cmd/rexec/internal/fshell"
	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/execd/execdtest"
)

// shell starts a daemon serving a fresh directory and a file shell on it
// whose local directory is another.
func shell(t *testing.T) (sh *fshell.Shell, out *bytes.Buffer, served, local string) {
	t.Helper()
	served = execdtest.TempDir(t)
	d := execdtest.Start(t, &execd.Server{Dir: served, KillGrace: 500 * time.Millisecond}, false)
	c := d.Dial(t)
	fsx, err := c.OpenFS(t.Context(), "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = fsx.Close() })
	sh = fshell.New(t.Context(), c, fsx)
	out = &bytes.Buffer{}
	sh.Out, sh.Stdout, sh.Stderr = out, out, out
	sh.LocalDir = t.TempDir()
	return sh, out, served, sh.LocalDir
}

func TestSession(t *testing.T) {
	sh, out, served, local := shell(t)
	require.NoError(t, os.WriteFile(filepath.Join(local, "my file.txt"), []byte("hello\n"), 0o644))
	steps := []struct {
		line string
		want string // in the output of the line
	}{
		{"pwd", "~\n"},
		{"mkdir -p 'a b'/c", ""},
		{`cd "a b"`, ""},
		{"pwd", "~/a b\n"},
		{"put 'my file.txt'", "1 file(s) verified"},
		{"ls", `"my file.txt"`},
		{"sum my\\ file.txt", "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  my file.txt\n"},
		{"mv 'my file.txt' c", ""},
		{"ls c", "my file.txt"},
		{"get c/'my file.txt' copy.txt", "received"},
		{"lls", "copy.txt"},
		{"cd -", ""},
		{"pwd", "~\n"},
		{"!pwd", served + "\n"},
		{"rm -r 'a b'", ""},
		{"ls", ""},
	}
	for _, st := range steps {
		out.Reset()
		assert.False(t, sh.Exec(st.line), st.line)
		assert.Contains(t, out.String(), st.want, st.line)
		assert.NotContains(t, out.String(), "error:", st.line)
	}
	assert.False(t, sh.Failed())
	got, err := os.ReadFile(filepath.Join(local, "copy.txt"))
	require.NoError(t, err)
	assert.Equal(t, "hello\n", string(got))
	_, err = os.Stat(filepath.Join(served, "a b"))
	assert.True(t, os.IsNotExist(err), "rm -r removed it on the daemon")
	assert.True(t, sh.Exec("exit"))
}

func TestErrors(t *testing.T) {
	sh, out, _, _ := shell(t)
	for _, tc := range []struct{ line, want string }{
		{"cd /etc", "error: "},
		{"cd ../..", "error: "},
		{"get nothing.txt", "error: "},
		{"frobnicate", "error: frobnicate: unknown command (type help)"},
		{"ls -z", "error: unknown option -z"},
		{"get 'open", "error: unterminated ' quote"},
		{"!exit 3", "error: !exit 3: exit status 3"},
		{"lcd /no/such/dir", "error: lcd: "},
	} {
		out.Reset()
		assert.False(t, sh.Exec(tc.line), tc.line)
		assert.Contains(t, out.String(), tc.want, tc.line)
	}
	assert.True(t, sh.Failed())
	out.Reset()
	require.False(t, sh.Exec("help"))
	for _, c := range []string{"pwd", "cd", "ls", "mkdir", "rm", "mv", "get", "put", "sum", "lpwd", "lcd", "lls", "!COMMAND", "exit"} {
		assert.Contains(t, out.String(), "  "+c, "help lists %s", c)
	}
	assert.Equal(t, 15, strings.Count(out.String(), "\n"))
}

func TestInterrupt(t *testing.T) {
	sh, out, _, _ := shell(t)
	assert.False(t, sh.Interrupt("INT"), "nothing running: the caller ends the session")
	done := make(chan bool, 1)
	go func() { done <- sh.Exec("!sleep 30") }()
	require.Eventually(t, func() bool { return sh.Interrupt("TERM") }, 10*time.Second, 10*time.Millisecond)
	select {
	case quit := <-done:
		assert.True(t, quit, "TERM ends the session after the command")
	case <-time.After(10 * time.Second):
		t.Fatal("the command was not stopped")
	}
	assert.Equal(t, "TERM", sh.Quit())
	assert.Contains(t, out.String(), "interrupted by SIGTERM")
}
