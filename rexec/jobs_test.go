package rexec_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/rexec"
)

// Issue 17: a detached job runs without any connection; the listing shows
// it; an attach from the start streams all its output and ends with its
// status, as often as asked; a kill signals a running job and removes an
// exited one.
func TestDetachedJobs(t *testing.T) {
	t.Parallel()
	jobDir := t.TempDir()
	f := startResume(t, &execd.Server{JobDir: jobDir}) // as execd runs: output in files
	c, err := f.dial(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	s, err := c.NewSession()
	require.NoError(t, err)
	job, err := s.DetachShell(t.Context(), "read x; echo start; sleep 0.3; seq 1 100000; echo done >&2; exit 5")
	require.NoError(t, err)

	jobs, err := c.Jobs(t.Context())
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	assert.Equal(t, job, jobs[0].ID)
	assert.True(t, jobs[0].Detached)
	assert.Equal(t, "running", jobs[0].State)

	var want strings.Builder
	want.WriteString("start\n")
	for i := 1; i <= 100000; i++ {
		fmt.Fprintln(&want, i)
	}
	for range 2 { // from the start, twice: the output is kept
		s, err := c.NewSession()
		require.NoError(t, err)
		var out, errb strings.Builder
		s.Stdout, s.Stderr = &out, &errb
		require.NoError(t, s.Attach(t.Context(), job, 0, 0))
		var ee *rexec.ExitError
		require.ErrorAs(t, s.Wait(), &ee)
		assert.Equal(t, 5, ee.Status)
		assert.True(t, out.String() == want.String(), "stdout: %d bytes, want %d", out.Len(), want.Len())
		assert.Equal(t, "done\n", errb.String())
	}
	// From an offset: the rest.
	s, err = c.NewSession()
	require.NoError(t, err)
	var out strings.Builder
	s.Stdout = &out
	require.NoError(t, s.Attach(t.Context(), job, int64(want.Len()-7), 0))
	require.Error(t, s.Wait())
	assert.Equal(t, "100000\n", out.String())

	jobs, err = c.Jobs(t.Context())
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	assert.Equal(t, "exited", jobs[0].State)
	assert.Equal(t, 5, jobs[0].Exit.Status)
	assert.Equal(t, uint64(want.Len()), jobs[0].Stdout)

	kept, err := os.ReadFile(filepath.Join(jobDir, "_", job, "stdout"))
	require.NoError(t, err)
	assert.True(t, string(kept) == want.String(), "the stdout file")
	require.NoError(t, c.KillJob(t.Context(), job, ""), "removes an exited job")
	jobs, err = c.Jobs(t.Context())
	require.NoError(t, err)
	assert.Empty(t, jobs)
	_, err = os.Stat(filepath.Join(jobDir, "_", job))
	assert.True(t, os.IsNotExist(err), "a removed job's files are gone")

	s, err = c.NewSession()
	require.NoError(t, err)
	job, err = s.Detach(t.Context(), "sleep", "600")
	require.NoError(t, err)
	require.NoError(t, c.KillJob(t.Context(), job, rexec.SIGTERM))
	require.Eventually(t, func() bool {
		jobs, err := c.Jobs(t.Context())
		return err == nil && len(jobs) == 1 && jobs[0].State == "exited" && jobs[0].Exit.Signal == "TERM"
	}, 10*time.Second, 10*time.Millisecond)
	err = c.KillJob(t.Context(), "0123456789abcdef", "")
	var re *rexec.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "no_such_job", string(re.Code))
}

// A detached job whose output reaches the daemon's bound waits (the
// listing says it is full) until it is killed; what it wrote up to the
// bound is kept.
func TestDetachedJobBound(t *testing.T) {
	t.Parallel()
	for _, kept := range []string{"in memory", "on disk"} {
		t.Run(kept, func(t *testing.T) {
			t.Parallel()
			srv := &execd.Server{JobBuffer: 1 << 20}
			if kept == "on disk" {
				srv.JobDir = t.TempDir()
			}
			testDetachedJobBound(t, srv)
		})
	}
}

func testDetachedJobBound(t *testing.T, srv *execd.Server) {
	f := startResume(t, srv)
	c, err := f.dial(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	s, err := c.NewSession()
	require.NoError(t, err)
	job, err := s.DetachShell(t.Context(), "head -c 3000000 /dev/zero; echo never")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		jobs, err := c.Jobs(t.Context())
		return err == nil && len(jobs) == 1 && jobs[0].Full && jobs[0].Stdout == 1<<20
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, c.KillJob(t.Context(), job, rexec.SIGKILL))
	s, err = c.NewSession()
	require.NoError(t, err)
	var out strings.Builder
	s.Stdout = &out
	require.NoError(t, s.Attach(t.Context(), job, 0, 0))
	var ee *rexec.ExitError
	require.ErrorAs(t, s.Wait(), &ee)
	assert.Equal(t, rexec.SIGKILL, ee.Signal)
	assert.Contains(t, ee.Message, "reached the job's bound of 1048576 bytes")
	assert.Equal(t, 1<<20, out.Len())
}

// Two clients attach to one job at once: the second takes it over, the
// first is told so in one line (not a broken connection), and the job
// goes on for the second.
func TestAttachTakenOver(t *testing.T) {
	t.Parallel()
	f := startResume(t, &execd.Server{})
	c, err := f.dial(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	s, err := c.NewSession()
	require.NoError(t, err)
	job, err := s.DetachShell(t.Context(), "i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done")
	require.NoError(t, err)
	first, err := c.NewSession()
	require.NoError(t, err)
	var out1 execdtest.SyncBuffer
	first.Stdout = &out1
	require.NoError(t, first.Attach(t.Context(), job, 0, 0))
	require.Eventually(t, func() bool { return strings.Contains(out1.String(), "\n2\n") }, 10*time.Second, 5*time.Millisecond,
		"the first attach streams the job")

	c2, err := f.dial(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c2.Close() })
	second, err := c2.NewSession()
	require.NoError(t, err)
	var out2 execdtest.SyncBuffer
	second.Stdout = &out2
	require.NoError(t, second.Attach(t.Context(), job, 0, 0))

	err = first.Wait()
	var re *rexec.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "taken_over", string(re.Code))
	assert.Contains(t, err.Error(), "attached from another connection")
	require.Eventually(t, func() bool { return strings.Contains(out2.String(), "\n10\n") }, 10*time.Second, 10*time.Millisecond,
		"the second attach streams the job from the start")
	require.NoError(t, c.KillJob(t.Context(), job, rexec.SIGKILL), "the first client's connection is still good")
	var ee *rexec.ExitError
	require.ErrorAs(t, second.Wait(), &ee)
	assert.Equal(t, rexec.SIGKILL, ee.Signal)
}

// The user's bound on disk: a job that reaches it waits; a detach while
// it is full is refused with the reason (its output could not be kept);
// removing the first job makes room for the next.
func TestJobDiskBudget(t *testing.T) {
	t.Parallel()
	f := startResume(t, &execd.Server{JobDir: t.TempDir(), JobDisk: 4 << 20})
	c, err := f.dial(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	detach, job := jobHelpers(t, c)
	big := detach("head -c 6000000 /dev/zero; echo never")
	require.Eventually(t, func() bool { j := job(big); return j.Full && j.Stdout == 4<<20 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, "running", job(big).State, "it waits at the bound")
	s, err := c.NewSession()
	require.NoError(t, err)
	_, err = s.DetachShell(t.Context(), "echo lost")
	var re *rexec.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, frame.CodeNoSpace, re.Code)
	assert.Contains(t, re.Message, "bound of 4194304 (--job-disk)")

	require.NoError(t, c.KillJob(t.Context(), big, rexec.SIGKILL))
	require.Eventually(t, func() bool { return job(big).State == "exited" }, 10*time.Second, 10*time.Millisecond)
	assert.Contains(t, job(big).Exit.Message, "the user's jobs reached their bound of 4194304 bytes on disk")
	require.NoError(t, c.KillJob(t.Context(), big, ""), "removed: its 4 MiB are free again")
	// More than a pipe holds (the daemon's are 1 MiB).
	small := detach("echo err >&2; head -c 3000000 /dev/zero")
	require.Eventually(t, func() bool { return job(small).State == "exited" }, 10*time.Second, 10*time.Millisecond)
	j := job(small)
	assert.Equal(t, 0, j.Exit.Status)
	assert.Equal(t, uint64(3000000), j.Stdout)
	assert.Equal(t, uint64(len("err\n")), j.Stderr)
	assert.False(t, j.Full)
}

// Issue 17: detached jobs survive a restart of the daemon as records: a
// job that finished is listed with its status and its output, one that
// was running when the daemon closed is listed as ended by it, with the
// output it wrote until then. (The processes end with the daemon.)
func TestJobsSurviveRestart(t *testing.T) {
	t.Parallel()
	jobDir := t.TempDir()
	first := startResume(t, &execd.Server{JobDir: jobDir})
	c, err := first.dial(t.Context())
	require.NoError(t, err)
	s, err := c.NewSession()
	require.NoError(t, err)
	done, err := s.DetachShell(t.Context(), "seq 1 200000; echo warning >&2; exit 3")
	require.NoError(t, err)
	s, err = c.NewSession()
	require.NoError(t, err)
	running, err := s.DetachShell(t.Context(), "echo started $$; exec sleep 600")
	require.NoError(t, err)
	var pid int
	require.Eventually(t, func() bool {
		jobs, err := c.Jobs(t.Context())
		require.NoError(t, err)
		byID := map[string]rexec.JobInfo{}
		for _, j := range jobs {
			byID[j.ID] = j
		}
		pid = byID[running].PID
		return byID[done].State == "exited" && byID[running].Stdout > 0
	}, 10*time.Second, 10*time.Millisecond)
	_ = c.Close()
	require.NoError(t, first.d.Server.Close())
	assert.False(t, execdtest.ProcessAlive(pid), "a job's process outlived its daemon")

	second := startResume(t, &execd.Server{JobDir: jobDir})
	c, err = second.dial(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	jobs, err := c.Jobs(t.Context())
	require.NoError(t, err)
	require.Len(t, jobs, 2)
	var want strings.Builder
	for i := 1; i <= 200000; i++ {
		fmt.Fprintln(&want, i)
	}
	for _, j := range jobs {
		assert.Equal(t, "exited", j.State, j.ID)
		assert.True(t, j.Detached)
		switch j.ID {
		case done:
			assert.Equal(t, 3, j.Exit.Status)
			assert.Equal(t, uint64(want.Len()), j.Stdout)
			assert.Equal(t, []string(nil), j.Argv)
			assert.Contains(t, j.Shell, "seq 1 200000")
		case running:
			assert.Equal(t, rexec.SIGTERM, j.Exit.Signal)
			assert.Equal(t, "the daemon shut down while it ran", j.Exit.Message)
			assert.Equal(t, pid, j.PID)
		default:
			t.Errorf("unknown job %s", j.ID)
		}
	}
	attach := func(id string) (string, string, error) {
		s, err := c.NewSession()
		require.NoError(t, err)
		var out, errb strings.Builder
		s.Stdout, s.Stderr = &out, &errb
		require.NoError(t, s.Attach(t.Context(), id, 0, 0))
		err = s.Wait()
		return out.String(), errb.String(), err
	}
	out, errs, err := attach(done)
	var ee *rexec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 3, ee.Status)
	assert.True(t, out == want.String(), "stdout after the restart: %d bytes", len(out))
	assert.Equal(t, "warning\n", errs)
	out, _, err = attach(running)
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, rexec.SIGTERM, ee.Signal)
	assert.Equal(t, fmt.Sprintf("started %d\n", pid), out)

	require.NoError(t, c.KillJob(t.Context(), done, ""))
	_, err = os.Stat(filepath.Join(jobDir, "_", done))
	assert.True(t, os.IsNotExist(err))
	jobs, err = c.Jobs(t.Context())
	require.NoError(t, err)
	assert.Len(t, jobs, 1)
}

// A second daemon started on the same state directory while the first
// runs leaves the first's jobs alone: not listed as ended, their records
// untouched; once the first is gone, they are the next start's records.
func TestJobsOfALiveDaemonNotTaken(t *testing.T) {
	t.Parallel()
	jobDir := t.TempDir()
	first := startResume(t, &execd.Server{JobDir: jobDir})
	c, err := first.dial(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	s, err := c.NewSession()
	require.NoError(t, err)
	job, err := s.DetachShell(t.Context(), "echo started; exec sleep 600")
	require.NoError(t, err)
	meta := filepath.Join(jobDir, "_", job, "meta.json")
	before, err := os.ReadFile(meta)
	require.NoError(t, err)

	second := startResume(t, &execd.Server{JobDir: jobDir})
	c2, err := second.dial(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c2.Close() })
	jobs, err := c2.Jobs(t.Context())
	require.NoError(t, err)
	assert.Empty(t, jobs, "the second daemon took the first's running job")
	after, err := os.ReadFile(meta)
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "its record was rewritten")
	jobs, err = c.Jobs(t.Context())
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	assert.Equal(t, "running", jobs[0].State)

	require.NoError(t, first.d.Server.Close())
	third := startResume(t, &execd.Server{JobDir: jobDir})
	c3, err := third.dial(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c3.Close() })
	jobs, err = c3.Jobs(t.Context())
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	assert.Equal(t, "exited", jobs[0].State)
}

// A job whose command exits before its output has met the user's full
// budget (echo, after the budget is used up) ends, its output not kept
// and the exit saying so, instead of waiting for room for ever: its
// state, and the daemon's shutdown, used to wait on it.
func TestJobDiskBudgetFullBeforeStart(t *testing.T) {
	t.Parallel()
	srv := &execd.Server{JobDir: t.TempDir(), JobDisk: 1 << 20}
	f := startResume(t, srv)
	c, err := f.dial(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	detach, job := jobHelpers(t, c)
	big := detach("head -c 1100000 /dev/zero")
	require.Eventually(t, func() bool { return job(big).State == "exited" }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, uint64(1<<20), job(big).Stdout)
	assert.Contains(t, job(big).Exit.Message, "the user's jobs reached their bound of 1048576 bytes on disk")
	s, err := c.NewSession()
	require.NoError(t, err)
	_, err = s.DetachShell(t.Context(), "echo hi")
	var re *rexec.RemoteError
	require.ErrorAs(t, err, &re, "with no room left, a detach is refused: its output could not be kept")
	assert.Equal(t, frame.CodeNoSpace, re.Code)
	assert.Contains(t, re.Message, "your detached jobs keep 1048576 bytes on disk, their bound of 1048576")
	// One started while there was room, which meets the full budget
	// before it wrote a byte, ends with its command, saying so.
	require.NoError(t, c.KillJob(t.Context(), big, ""))
	flags := t.TempDir()
	when := func(name string) string {
		return fmt.Sprintf("while [ ! -e %s ]; do sleep 0.02; done; ", filepath.Join(flags, name))
	}
	first := detach(when("fill") + "head -c 1048576 /dev/zero")
	late := detach(when("write") + "echo hi")
	require.NoError(t, os.WriteFile(filepath.Join(flags, "fill"), nil, 0o600))
	require.Eventually(t, func() bool { return job(first).State == "exited" }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, os.WriteFile(filepath.Join(flags, "write"), nil, 0o600))
	require.Eventually(t, func() bool { return job(late).State == "exited" }, 10*time.Second, 10*time.Millisecond,
		"a job with no room left ends with its command")
	j := job(late)
	assert.Zero(t, j.Stdout)
	assert.Contains(t, j.Exit.Message, "the user's jobs reached their bound of 1048576 bytes on disk")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	assert.NoError(t, srv.Shutdown(ctx), "shutdown does not wait on it")
}

// jobHelpers are a test's ways to start a detached command line on c and
// to find a job of c's by its id.
func jobHelpers(t *testing.T, c *rexec.Client) (detach func(cmdline string) string, job func(id string) rexec.JobInfo) {
	detach = func(cmdline string) string {
		s, err := c.NewSession()
		require.NoError(t, err)
		id, err := s.DetachShell(t.Context(), cmdline)
		require.NoError(t, err)
		return id
	}
	job = func(id string) rexec.JobInfo {
		jobs, err := c.Jobs(t.Context())
		require.NoError(t, err)
		for _, j := range jobs {
			if j.ID == id {
				return j
			}
		}
		t.Fatalf("no job %s in %v", id, jobs)
		return rexec.JobInfo{}
	}
	return detach, job
}
