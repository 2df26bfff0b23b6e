package execd

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The spool keeps what is not acknowledged, makes its writer wait when
// full, serves readers from any kept offset, and ends them at the end.
func TestSpool(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*spoolChunk/16+100) // three chunks and a bit
	sp := newSpool(2 * spoolChunk)
	wrote := make(chan int64, 1)
	go func() {
		n, err := sp.ReadFrom(bytes.NewReader(data))
		assert.NoError(t, err)
		sp.closeWrite()
		wrote <- n
	}()
	// Full at two chunks: the writer waits for acknowledgements.
	require.Eventually(t, func() bool { _, end, _ := sp.bounds(); return end == 2*spoolChunk }, 5*time.Second, time.Millisecond)
	select {
	case <-wrote:
		t.Fatal("the writer went past the bound")
	case <-time.After(50 * time.Millisecond):
	}
	// Two readers at different offsets see the same bytes.
	stop := make(chan struct{})
	r1 := &spoolReader{sp: sp, off: 10, stop: stop}
	buf := make([]byte, 100)
	n, err := r1.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, data[10:10+n], buf[:n])

	sp.ack(spoolChunk + 5) // whole chunks only: the first goes
	base, _, _ := sp.bounds()
	assert.Equal(t, int64(spoolChunk), base)
	_, err = r1.Read(buf)
	assert.ErrorIs(t, err, errTrimmed, "a read before what is kept")

	r2 := &spoolReader{sp: sp, off: spoolChunk, stop: stop}
	got, err := io.ReadAll(readerFunc(func(p []byte) (int, error) {
		n, err := r2.Read(p)
		if err == nil {
			sp.ack(r2.off) // a fast client
		}
		return n, err
	}))
	require.NoError(t, err)
	assert.Equal(t, data[spoolChunk:], got, "every byte from the offset, once")
	assert.Equal(t, int64(len(data)), <-wrote)

	// A reader waiting at the end stops when told to.
	r3 := &spoolReader{sp: newSpool(spoolChunk), stop: stop}
	errc := make(chan error, 1)
	go func() { _, err := r3.Read(buf); errc <- err }()
	time.Sleep(10 * time.Millisecond)
	close(stop)
	r3.sp.wake()
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, errStopped)
	case <-time.After(5 * time.Second):
		t.Fatal("the reader did not stop")
	}

	// An abandoned spool fails its writer at once.
	sp4 := newSpool(spoolChunk)
	go sp4.abandon(errSpoolAbandoned)
	_, err = sp4.ReadFrom(bytes.NewReader(make([]byte, 4*spoolChunk)))
	assert.ErrorIs(t, err, errSpoolAbandoned)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// A spool kept in a file, on a disk that is full (/dev/full answers every
// write with ENOSPC): the writer stops with errSpoolFull, and the job's
// exit message will say from which byte its output was not kept.
func TestFileSpoolDiskFull(t *testing.T) {
	t.Parallel()
	f, err := os.OpenFile("/dev/full", os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("no /dev/full on this system")
	}
	require.NoError(t, err)
	defer f.Close()
	sp := newFileSpool(f, 0, 1<<20, &diskBudget{max: 1 << 20})
	n, err := sp.ReadFrom(bytes.NewReader(make([]byte, 1000)))
	require.ErrorIs(t, err, errSpoolFull)
	assert.Zero(t, n)
	require.Error(t, sp.writeErrOrNil())
	assert.Equal(t, "its output could not be kept from byte 0 on: write /dev/full: no space left on device", sp.writeErrOrNil().Error())
	_, end, _ := sp.bounds()
	assert.Zero(t, end, "nothing half-written counted")
	assert.Zero(t, sp.budget.used, "the grant given back")
}
