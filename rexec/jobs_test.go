package rexec_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/rexec"
)

// Issue 17: a detached job runs without any connection; the listing shows
// it; an attach from the start streams all its output and ends with its
// status, as often as asked; a kill signals a running job and removes an
// exited one.
func TestDetachedJobs(t *testing.T) {
	t.Parallel()
	f := startResume(t, &execd.Server{})
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
	assert.Equal(t, int64(5), jobs[0].Exit.Code)
	assert.Equal(t, uint64(want.Len()), jobs[0].Stdout)

	require.NoError(t, c.KillJob(t.Context(), job, ""), "removes an exited job")
	jobs, err = c.Jobs(t.Context())
	require.NoError(t, err)
	assert.Empty(t, jobs)

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
	f := startResume(t, &execd.Server{JobBuffer: 1 << 20})
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
	var out1 strings.Builder
	first.Stdout = &out1
	require.NoError(t, first.Attach(t.Context(), job, 0, 0))

	c2, err := f.dial(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c2.Close() })
	second, err := c2.NewSession()
	require.NoError(t, err)
	var out2 execdtest.SyncBuffer
	second.Stdout = &out2
	time.Sleep(200 * time.Millisecond)
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
