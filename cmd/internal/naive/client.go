package naive

import (
	"errors"
	"io"
	"net"
	"time"
)

// ErrNoAnswer is returned by Ask when nothing arrived in time: with no
// framing, an empty answer and a slow one look the same.
var ErrNoAnswer = errors.New("naive: no answer in time")

// DefaultAnswerWait is how long Ask waits for an answer.
const DefaultAnswerWait = 5 * time.Second

// Client is the lesson's client on a connection to a Server.
type Client struct {
	Conn net.Conn
	// RecvBuffer is the size of the one recv per answer; 0 means 1024.
	RecvBuffer int
	// AnswerWait bounds the wait for an answer; 0 means DefaultAnswerWait.
	AnswerWait time.Duration

	buf []byte
}

// Ask sends a command line and writes what one recv gets to out, however
// it came: part of the answer, or the rest of an earlier one. It returns
// the number of bytes received; ErrNoAnswer when none came in time, and
// an error wrapping io.EOF when the server closed the connection.
func (c *Client) Ask(line string, out io.Writer) (int, error) {
	if len(c.buf) == 0 {
		size := c.RecvBuffer
		if size <= 0 {
			size = 1024
		}
		c.buf = make([]byte, size)
	}
	wait := c.AnswerWait
	if wait <= 0 {
		wait = DefaultAnswerWait
	}
	if _, err := c.Conn.Write([]byte(line)); err != nil {
		return 0, err
	}
	if err := c.Conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(c.buf) // the one recv of the lesson
	var ne net.Error
	switch {
	case n > 0:
		_, _ = out.Write(c.buf[:n]) // the lesson prints what came, however it came
		return n, nil
	case errors.As(err, &ne) && ne.Timeout():
		return 0, ErrNoAnswer
	case errors.Is(err, io.EOF):
		return 0, errors.New("the daemon closed the connection")
	}
	return 0, err
}
