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
	id   uint32
	kind string

	opened chan error // OpenOK (nil) or the refusal; buffered
	in     *mux.Inbound

	mu        sync.Mutex
	ok        frame.OpenOKMsg
	out       *mux.Outbound
	confirmed bool
	replies   []*frame.FileReply
	replyCh   chan struct{} // a reply was queued
	done      chan struct{} // closed by Done, an Error or the loss of the connection
	doneMsg   *frame.DoneMsg
	err       error
}

// openFile opens a file channel and waits for the daemon's answer.
func (c *Client) openFile(ctx context.Context, m *frame.OpenMsg) (*fileChan, error) {
	m.Window = c.window
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("rexec: %w", err)
	}
	fc := &fileChan{c: c, kind: m.Kind, opened: make(chan error, 1), replyCh: make(chan struct{}, 1), done: make(chan struct{})}
	id, err := c.open(fc, m, func(id uint32) {
		fc.id = id
		if m.Kind == frame.KindGet {
			fc.in = mux.NewInbound(c.mc, id, frame.Data, c.window)
		}
	})
	if err != nil {
		return nil, err
	}
	select {
	case err = <-fc.opened:
	case <-ctx.Done():
		fc.close()
		return nil, ctx.Err()
	}
	if err != nil {
		c.forget(id)
		return nil, err
	}
	return fc, nil
}

// close abandons the channel: the daemon stops and keeps what a put sent.
func (fc *fileChan) close() { fc.closeWith(errClosed) }

// closeWith abandons the channel, ending it with err.
func (fc *fileChan) closeWith(err error) {
	fc.c.forget(fc.id)
	_ = fc.c.mc.Send(frame.Close, 0, fc.id, nil) // best effort: a dead connection ends it anyway
	fc.finish(nil, err)
}

var errClosed = errors.New("rexec: channel closed")

// endWith ends the channel when ctx ends, in the middle of its data as
// well: reads and writes fail with ctx's error (an interruption, so that
// the partial copy is kept), and the daemon is told to stop. The returned
// stop is context.AfterFunc's.
func (fc *fileChan) endWith(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() { fc.closeWith(context.Cause(ctx)) })
}

func (fc *fileChan) handle(f frame.Frame) error {
	switch f.Type {
	case frame.OpenOK:
		var m frame.OpenOKMsg
		if err := frame.Unmarshal(f.Payload, &m); err != nil {
			return err
		}
		fc.mu.Lock()
		if fc.confirmed {
			fc.mu.Unlock()
			return fmt.Errorf("%w: second open_ok on channel %d", frame.ErrInvalid, fc.id)
		}
		fc.ok, fc.confirmed = m, true
		if fc.kind == frame.KindPut {
			fc.out = mux.NewOutbound(fc.c.mc, fc.id, frame.Data, m.Window)
		}
		fc.mu.Unlock()
		fc.opened <- nil
		return nil
	case frame.Data:
		if fc.in == nil {
			break
		}
		return fc.in.Push(f.Payload, f.Flags&frame.FlagEOF != 0)
	case frame.Window:
		var m frame.WindowMsg
		if err := frame.Unmarshal(f.Payload, &m); err != nil {
			return err
		}
		fc.mu.Lock()
		o := fc.out
		fc.mu.Unlock()
		if m.Stream != frame.Data || o == nil {
			return fmt.Errorf("%w: window for %s on a %s channel", frame.ErrInvalid, m.Stream, fc.kind)
		}
		return o.AddCredit(m.Credit)
	case frame.Done:
		var m frame.DoneMsg
		if err := frame.Unmarshal(f.Payload, &m); err != nil {
			return err
		}
		if fc.kind != frame.KindGet && fc.kind != frame.KindPut {
			break
		}
		fc.c.forget(fc.id)
		fc.finish(&m, nil)
		return nil
	case frame.Reply:
		var m frame.FileReply
		if err := frame.Unmarshal(f.Payload, &m); err != nil {
			return err
		}
		if fc.kind != frame.KindFS {
			break
		}
		fc.mu.Lock()
		fc.replies = append(fc.replies, &m)
		fc.mu.Unlock()
		select {
		case fc.replyCh <- struct{}{}:
		default:
		}
		return nil
	}
	return fmt.Errorf("%w: %s frame on a %s channel", frame.ErrInvalid, f.Type, fc.kind)
}

func (fc *fileChan) pushData(h frame.Header, chunk []byte) error {
	if h.Type != frame.Data || fc.in == nil {
		return fmt.Errorf("%w: %s frame on a %s channel", frame.ErrInvalid, h.Type, fc.kind)
	}
	return fc.in.PushOwned(chunk, h.Flags&frame.FlagEOF != 0)
}

func (fc *fileChan) failed(m *frame.ErrorMsg) {
	fc.c.forget(fc.id)
	if !fc.isConfirmed() {
		fc.opened <- &RemoteError{Code: m.Code, Message: m.Message}
		return
	}
	fc.finish(nil, &RemoteError{Code: m.Code, Message: m.Message})
}

func (fc *fileChan) lost(err error) {
	if !fc.isConfirmed() {
		fc.opened <- fmt.Errorf("%w: %w", ErrConnectionLost, err)
		return
	}
	fc.finish(nil, fmt.Errorf("%w: %w", ErrConnectionLost, err))
}

func (fc *fileChan) isConfirmed() bool {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.confirmed
}

// finish ends the channel once: with the sender's Done, or an error.
func (fc *fileChan) finish(d *frame.DoneMsg, err error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	select {
	case <-fc.done:
		return
	default:
	}
	fc.doneMsg, fc.err = d, err
	if fc.in != nil {
		if err != nil {
			fc.in.CloseWithError(err)
		} else {
			fc.in.SetEOF()
		}
	}
	if fc.out != nil && err != nil {
		fc.out.Abort(err)
	}
	close(fc.done)
}

// wait waits for the Done message or the error that ended the channel.
func (fc *fileChan) wait(ctx context.Context) (*frame.DoneMsg, error) {
	select {
	case <-fc.done:
	case <-ctx.Done():
		fc.close()
		return nil, ctx.Err()
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.doneMsg, fc.err
}

// RemoteError is a failure the daemon reported for a file operation or a
// channel, with its protocol code.
type RemoteError struct {
	Code    frame.Code
	Message string
}

func (e *RemoteError) Error() string { return e.Message }

// IsNotExist reports whether err says a remote file does not exist.
func IsNotExist(err error) bool { return codeIs(err, frame.CodeNotFound) }

func codeIs(err error, code frame.Code) bool {
	var re *RemoteError
	return errors.As(err, &re) && re.Code == code
}
