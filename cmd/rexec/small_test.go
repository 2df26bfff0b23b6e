package main

import (
	"errors"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
)

// Item 21: the smaller defects of the command line.
func TestSplitRemotePort(t *testing.T) {
	for _, tc := range []struct{ arg, host, path string }{
		{"lab1:logs/a", "lab1", "logs/a"},
		{"127.0.0.1:7023:logs/a", "127.0.0.1:7023", "logs/a"},
		{"lab1:7023:", "lab1:7023", "~"},
		{"alice@[::1]:7023:x", "alice@[::1]:7023", "x"},
		{"lab1:~/2024:notes", "lab1", "~/2024:notes"},
		{"lab1:99999:x", "lab1", "99999:x"}, // not a port
	} {
		host, path, ok := splitRemote(tc.arg)
		assert.True(t, ok, tc.arg)
		assert.Equal(t, [2]string{tc.host, tc.path}, [2]string{host, path}, tc.arg)
	}
}

func TestPlainFlagError(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.IntP("port", "p", 0, "")
	err := fs.Parse([]string{"-p", "abc"})
	assert.Equal(t, `invalid argument "abc" for "-p, --port" flag: not a number`, plainFlagError(err).Error())
	err = fs.Parse([]string{"-p", "99999999999999999999"})
	assert.Contains(t, plainFlagError(err).Error(), "out of range")
	other := errors.New("unknown flag: --nope")
	assert.Equal(t, other, plainFlagError(other))
}

func TestExcludeNeedsHosts(t *testing.T) {
	assert.Error(t, (&fanFlags{exclude: []string{"127.0.0.1"}}).check())
	assert.NoError(t, (&fanFlags{exclude: []string{"a"}, hosts: []string{"a,b"}}).check())
	assert.NoError(t, (&fanFlags{}).check())
}
