package rexec

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
)

// fileChan is the client side of a get, put or fs channel.
type fileChan struct {
	c    *Client
	ch   *mux.Channel
	kind string
	ok   *frame.OpenOKMsg
	in   *mux.Inbound  // a get's data
	out  *mux.Outbound // a put's data

	mu      sync.Mutex
	replies []*frame.FileReply
	replyCh chan struct{} // a reply was queued
	doneMsg *frame.DoneMsg
}

// openFile opens a file channel and waits for the daemon's answer.
func (c *Client) openFile(ctx context.Context, m *frame.OpenMsg) (*fileChan, error) {
	m.Window = c.window
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("rexec: %w", err)
	}
	fc := &fileChan{c: c, kind: m.Kind, replyCh: make(chan struct{}, 1)}
	kind, _ := frame.LookupKind(m.Kind) // Validate knows it
	ch, err := c.open(ctx, m, func(ch *mux.Channel) {
		for _, t := range kind.Receives {
			fc.in = ch.Inbound(t, c.window)
		}
		for _, t := range kind.Sends {
			ch.Sends(t)
		}
		if m.Kind == frame.KindFS {
			ch.OnControl(frame.Reply, mux.On(fc.reply))
		} else {
			ch.OnControl(frame.Done, mux.On(fc.done))
		}
	})
	if err != nil {
		return nil, err
	}
	fc.ch, fc.ok, fc.out = ch, ch.OpenOK(), ch.Out(frame.Data)
	return fc, nil
}

// close abandons the channel: the daemon stops and keeps what a put sent.
func (fc *fileChan) close() { fc.ch.Close(errClosed) }

var errClosed = errors.New("rexec: channel closed")

// endWith ends the channel when ctx ends, in the middle of its data as
// well: reads and writes fail with ctx's error (an interruption, so that
// the partial copy is kept), and the daemon is told to stop. The returned
// stop is context.AfterFunc's.
func (fc *fileChan) endWith(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() { fc.ch.Close(context.Cause(ctx)) })
}

// done takes the daemon's done, the end of a get or a put.
func (fc *fileChan) done(ch *mux.Channel, m *frame.DoneMsg) error {
	fc.mu.Lock()
	fc.doneMsg = m
	fc.mu.Unlock()
	ch.Finish()
	return nil
}

// reply takes a reply of a file session.
func (fc *fileChan) reply(_ *mux.Channel, m *frame.FileReply) error {
	fc.mu.Lock()
	fc.replies = append(fc.replies, m)
	fc.mu.Unlock()
	select {
	case fc.replyCh <- struct{}{}:
	default:
	}
	return nil
}

// wait waits for the Done message or the error that ended the channel.
func (fc *fileChan) wait(ctx context.Context) (*frame.DoneMsg, error) {
	select {
	case <-fc.ch.Done():
	case <-ctx.Done():
		fc.close()
		return nil, ctx.Err()
	}
	if err := fc.c.channelErr(fc.ch); err != nil {
		return nil, err
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.doneMsg, nil
}

// channelErr is why a channel that has ended did not finish: the
// daemon's *RemoteError, the local cause of its close, or the loss of the
// connection (ErrConnectionLost).
func (c *Client) channelErr(ch *mux.Channel) error {
	st, err := ch.State()
	if st == mux.Lost {
		return c.lost()
	}
	return err
}

// IsNotExist reports whether err says a remote file does not exist.
func IsNotExist(err error) bool { return codeIs(err, frame.CodeNotFound) }

func codeIs(err error, code frame.Code) bool {
	var re *RemoteError
	return errors.As(err, &re) && re.Code == code
}
