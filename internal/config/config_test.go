package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type settings struct {
	listen  string
	conns   int
	grace   time.Duration
	plain   bool
	hidden  string
	enabled bool
}

func flags(s *settings) *pflag.FlagSet {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.StringVar(&s.listen, "listen", "127.0.0.1:7022", "")
	fs.IntVar(&s.conns, "max-conns", 100, "")
	fs.DurationVar(&s.grace, "kill-grace", 3*time.Second, "")
	fs.BoolVar(&s.plain, "insecure-plaintext", false, "")
	fs.StringVar(&s.hidden, "internal", "", "")
	_ = fs.MarkHidden("internal")
	fs.BoolVar(&s.enabled, "help", false, "")
	return fs
}

func write(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "execd.toml")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}

func TestApply(t *testing.T) {
	for _, tc := range []struct {
		name     string
		text     string
		cmdline  []string
		problems []string // "LINE: message"
		want     settings
	}{
		{name: "every type", text: "listen = \"[::1]:9\"\nmax-conns = 7\nkill-grace = \"1m\"\ninsecure-plaintext = true\n",
			want: settings{listen: "[::1]:9", conns: 7, grace: time.Minute, plain: true}},
		{name: "flags override the file", text: "listen = \"127.0.0.1:1\"\nmax-conns = 7\n", cmdline: []string{"--listen", "127.0.0.1:2"},
			want: settings{listen: "127.0.0.1:2", conns: 7, grace: 3 * time.Second}},
		{name: "comments and blank lines", text: "# all defaults\n\n# listen = \"x\"\n",
			want: settings{listen: "127.0.0.1:7022", conns: 100, grace: 3 * time.Second}},
		{name: "every problem with its line",
			text: "lisen = \"x\"\nmax-conns = \"many\"\nkill-grace = 3\ninsecure-plaintext = \"yes\"\ninternal = \"x\"\nhelp = true\n[table]\nk = 1\n",
			problems: []string{
				`1: unknown setting "lisen" (did you mean "listen"?)`,
				`2: max-conns: want a whole number, not the string "many"`,
				`3: kill-grace: want a duration with its unit, such as "3s"`,
				`4: insecure-plaintext: want true or false, not the string "yes"`,
				`5: unknown setting "internal"`,
				`6: unknown setting "help"`,
				`7: [table]: this file has no tables, only settings`,
			},
			want: settings{listen: "127.0.0.1:7022", conns: 100, grace: 3 * time.Second}},
		{name: "a value the flag refuses", text: "\n\nkill-grace = \"soon\"\n",
			problems: []string{`3: kill-grace: time: invalid duration "soon"`},
			want:     settings{listen: "127.0.0.1:7022", conns: 100, grace: 3 * time.Second}},
		{name: "syntax", text: "listen = \"x\"\nmax-conns = = 3\n",
			problems: []string{`2: expected value but found '=' instead`},
			want:     settings{listen: "127.0.0.1:7022", conns: 100, grace: 3 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s settings
			fs := flags(&s)
			require.NoError(t, fs.Parse(tc.cmdline))
			path := write(t, tc.text)
			_, err := Apply(path, fs)
			var got []string
			if ps, ok := err.(Problems); ok {
				for _, p := range ps {
					assert.Equal(t, path, p.File)
					got = append(got, p.String()[len(path)+1:])
				}
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tc.problems, got)
			assert.Equal(t, tc.want, s)
			assert.False(t, fs.Changed("max-conns"), "a setting from the file is not marked as given on the command line")
		})
	}
}

func TestApplyMissingFile(t *testing.T) {
	var s settings
	_, err := Apply(filepath.Join(t.TempDir(), "none.toml"), flags(&s))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestLines(t *testing.T) {
	got := Lines([]byte("a = 1\n# c\n[users.alice]\nhome = \"/h\"\nkeys = [\n \"k1\",\n]\n[users.\"b.c\"]\nquota = 2\n"))
	assert.Equal(t, map[string]int{"a": 1, "users.alice": 3, "users.alice.home": 4, "users.alice.keys": 5,
		`users."b.c"`: 8, `users."b.c".quota`: 9}, got)
}
