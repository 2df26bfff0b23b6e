package execd

import (
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// emfileListener fails its first Accepts as a full file table does.
type emfileListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// Item 2: "too many open files" from Accept backs off and retries; only a
// closed listener ends Serve.
func TestServeSurvivesEMFILE(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	el := &emfileListener{Listener: ln}
	el.fails.Store(4)
	s := &Server{}
	served := make(chan error, 1)
	go func() { served <- s.Serve(el) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	require.Eventually(t, func() bool { return s.NumConns() == 1 }, 5*time.Second, 5*time.Millisecond, "served after the errors passed")
	require.NoError(t, s.Close())
	assert.ErrorIs(t, <-served, ErrServerClosed)
}

func TestTemporaryAccept(t *testing.T) {
	for _, tc := range []struct {
		err  error
		temp bool
	}{
		{os.NewSyscallError("accept4", syscall.EMFILE), true},
		{os.NewSyscallError("accept4", syscall.ENFILE), true},
		{os.NewSyscallError("accept4", syscall.ECONNABORTED), true},
		{net.ErrClosed, false},
		{os.ErrInvalid, false},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			assert.Equal(t, tc.temp, temporaryAccept(&net.OpError{Op: "accept", Err: tc.err}))
		})
	}
}
