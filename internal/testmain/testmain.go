// Package testmain is the TestMain of every test package in this module.
// Before the tests it points HOME and the XDG directories at a directory
// of its own, so that no test reads or writes the real home, and it marks
// the environment that every process the tests start inherits. After them
// it fails the package when a marked process is still running (a daemon,
// a master or a command a test forgot to end: the tests ended them by id,
// this finds the ones they did not) and, when asked, when a goroutine is
// left behind.
package testmain

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// MarkEnv names the variable that marks the processes a test package
// started; its value is unique to one run of one package. .ci/run looks
// for any process still carrying it once every package has finished.
const MarkEnv = "EXECD_TEST_RUN"

// grace is how long processes that are on their way out (sent a signal,
// their parent's Wait not yet returned) get before they count as left.
const grace = 10 * time.Second

// Options says what a package's TestMain checks beside the processes.
type Options struct {
	// Goroutines fails the package when goroutines outlive its tests.
	Goroutines bool
	// Setup runs once the environment is in place, before the tests; a
	// non-zero result ends the run with it (e.g. a build that failed).
	Setup func() int
	// Teardown runs after the tests, before the checks.
	Teardown func()
}

// Main runs the package's tests under o and exits with their result.
func Main(m *testing.M, o Options) {
	os.Exit(run(m, o))
}

func run(m *testing.M, o Options) int {
	home, err := os.MkdirTemp("", "execd-test-home")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testmain:", err)
		return 2
	}
	defer os.RemoveAll(home)
	if err := keepGoDirs(); err != nil {
		fmt.Fprintln(os.Stderr, "testmain:", err)
		return 2
	}
	mark := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	for k, v := range map[string]string{
		"HOME":            home,
		"XDG_CONFIG_HOME": filepath.Join(home, ".config"),
		"XDG_STATE_HOME":  filepath.Join(home, ".local", "state"),
		"XDG_CACHE_HOME":  filepath.Join(home, ".cache"),
		"XDG_DATA_HOME":   filepath.Join(home, ".local", "share"),
		"XDG_RUNTIME_DIR": filepath.Join(home, "run"),
		MarkEnv:           mark,
	} {
		if err := os.Setenv(k, v); err != nil {
			fmt.Fprintln(os.Stderr, "testmain:", err)
			return 2
		}
	}
	if err := os.Mkdir(filepath.Join(home, "run"), 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "testmain:", err)
		return 2
	}
	if o.Setup != nil {
		if code := o.Setup(); code != 0 {
			return code
		}
	}
	code := m.Run()
	if o.Teardown != nil {
		o.Teardown()
	}
	if left := Leftovers(mark, grace); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "testmain: %d processes started by these tests outlived them (now killed):\n", len(left))
		for _, p := range left {
			fmt.Fprintf(os.Stderr, "  pid %d: %s\n", p.Pid, p.Cmdline)
			if pr, err := os.FindProcess(p.Pid); err == nil {
				_ = pr.Kill()
			}
		}
		code = 1
	}
	if o.Goroutines && code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "testmain: goroutines outlived the tests:", err)
			code = 1
		}
	}
	return code
}

// keepGoDirs pins the go command's cache, module cache and settings to
// where the real home puts them, so that tests that build with the go
// command under the test home neither rebuild nor download everything.
func keepGoDirs() error {
	cache, err := os.UserCacheDir()
	if err != nil {
		return nil // no home to keep: the go command finds its own
	}
	config, _ := os.UserConfigDir()
	realHome, _ := os.UserHomeDir()
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		gopath = filepath.Join(realHome, "go")
	}
	for k, v := range map[string]string{
		"GOPATH":     gopath,
		"GOCACHE":    filepath.Join(cache, "go-build"),
		"GOMODCACHE": filepath.Join(strings.SplitN(gopath, string(os.PathListSeparator), 2)[0], "pkg", "mod"),
		"GOENV":      filepath.Join(config, "go", "env"),
	} {
		if os.Getenv(k) != "" {
			continue
		}
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}
	return nil
}

// Process is one process found by Leftovers.
type Process struct {
	Pid     int
	Cmdline string
}

// Leftovers returns the processes other than this one whose environment
// carries MarkEnv=mark (any value when mark is empty), waiting up to
// within for them to go. Where there is no /proc it finds none.
func Leftovers(mark string, within time.Duration) []Process {
	deadline := time.Now().Add(within)
	for {
		left := scan(mark)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func scan(mark string) []Process {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := []byte(MarkEnv + "=" + mark)
	self := os.Getpid()
	var left []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !marked(env, want, mark == "") {
			continue // gone, a zombie, or not ours
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		left = append(left, Process{Pid: pid, Cmdline: strings.TrimSpace(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))})
	}
	return left
}

// marked reports whether the NUL-separated environment env holds want as
// a whole variable (or, with prefix, a variable beginning with it).
func marked(env, want []byte, prefix bool) bool {
	for _, kv := range bytes.Split(env, []byte{0}) {
		if bytes.Equal(kv, want) || prefix && bytes.HasPrefix(kv, want) {
			return true
		}
	}
	return false
}
