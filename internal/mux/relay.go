package mux

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/execd-project/execd/frame"
)

// RelayFunc takes every frame the peer sends on a relayed channel. The
// payload of a data frame is a chunk the relay owns from then on (it is
// never copied on the way through; PutChunk gives it back once written);
// any other payload is valid only during the call. An error ends the
// connection as a violation, as a failing ControlFunc does.
type RelayFunc func(f frame.Frame) error

// OpenRelay opens a channel whose frames this side does not interpret:
// the open leaves with payload as it is (an encoded frame.OpenMsg, checked
// first), every frame the peer sends on the channel goes to relay, and
// the owner sends on the session's Conn with the channel's ID (late
// frames too, after the channel ended). The owner knows when the channel
// ends and says so with Finish or Close; the connection's end ends it
// too. It does not wait for the peer's answer: the open_ok or error
// reaches relay.
// This is how a connection is shared (rexec's control master): the
// channel belongs to a client on the far side of the owner.
func (s *Session) OpenRelay(payload []byte, relay RelayFunc) (*Channel, error) {
	var m frame.OpenMsg
	if err := frame.Unmarshal(payload, &m); err != nil {
		return nil, err
	}
	ch, id, err := s.register(&m, relay)
	if err != nil {
		return nil, err
	}
	err = s.conn.Send(frame.Open, 0, id, payload)
	s.openMu.Unlock()
	if err != nil {
		ch.end(Lost, err, false)
		return nil, fmt.Errorf("open: %w", err)
	}
	return ch, nil
}

// DownstreamHooks are what the owner of a Downstream decides; every hook
// may be nil.
type DownstreamHooks struct {
	// Answer sees the kind of each channel the peer opens, first: it may
	// answer the open itself, a kind of the owner's own (true: nothing
	// goes upstream). An error ends the peer's connection.
	Answer func(id uint32, kind string) (bool, error)
	// Relaying sees each open that is relayed, checked, and gives the
	// payload to send upstream: the peer's own or one it rewrote.
	Relaying func(id uint32, m *frame.OpenMsg, payload []byte) []byte
	// Opened is told of the upstream id of a relayed channel.
	Opened func(id, up uint32)
	// Window sees each window frame the peer sends for a relayed channel;
	// true: the hook took it (the owner passes credit on by itself).
	Window func(id uint32, payload []byte) bool
	// Delivered is told of the frames written to the peer, a batch at a
	// time.
	Delivered func(fs []frame.Frame)
	// Finished is told once when a relayed channel ends.
	Finished func(id uint32)
	// GoneAway answers an open refused because the upstream peer is
	// going away: the message of the error the peer gets.
	GoneAway func() string
}

// A Downstream carries the channels a peer opens on its own connection
// over an upstream Session, frames untouched but for their ids: the
// upstream sees one connection, whoever opened the channels. It answers
// the peer's pings and channel-0 errors itself, refuses frames the peer's
// role may not send, keeps ids as a session does (odd and rising; frames
// for channels never opened are refused, late frames for ended ones are
// relayed), and writes what comes back for the peer from a queue of its
// own, so that a peer that does not read never stalls the upstream's
// read loop: what waits is bounded by the credit the peer granted (data)
// and by the answers to its own requests (the rest).
//
// This is how rexec's control master serves each of its clients.
type Downstream struct {
	conn *Conn
	up   *Session
	h    DownstreamHooks

	mu     sync.Mutex
	ids    map[uint32]uint32   // the peer's channel id to the upstream's, kept for late frames
	live   map[uint32]*Channel // the relayed channels not ended yet, by the peer's id
	lastID uint32
	out    []queued // frames for the peer, in order
	wake   chan struct{}
	ended  bool
}

// queued is a frame waiting to be written to the peer; an owned payload
// is a chunk given back once written.
type queued struct {
	f     frame.Frame
	owned bool
}

// NewDownstream relays the channels the peer on conn opens (a session
// that has finished its handshake) over up.
func NewDownstream(conn *Conn, up *Session, h DownstreamHooks) *Downstream {
	return &Downstream{conn: conn, up: up, h: h, ids: map[uint32]uint32{}, live: map[uint32]*Channel{}, wake: make(chan struct{}, 1)}
}

// errPeerLeft ends a Downstream whose peer ended its connection with an
// error frame on channel 0.
var errPeerLeft = errors.New("the peer ended its connection")

// Serve relays until the peer's connection ends or breaks the protocol
// (the peer is told why, as a session tells it), then abandons the
// channels left open: a peer that went away cannot take them back.
func (d *Downstream) Serve() error {
	go d.write()
	err := d.conn.ReadFrames(func(frame.Header) func([]byte) error { return nil }, d.handle)
	var v *Violation
	if errors.As(err, &v) {
		d.Fail(v.Code, v.Error())
	}
	d.end(err)
	return err
}

// handle takes one frame from the peer.
func (d *Downstream) handle(f frame.Frame) error {
	if !mayReceive(Server, f.Type) {
		return Violationf(frame.CodeUnexpected, "a client may not send %s frames", f.Type)
	}
	switch f.Type {
	case frame.Ping:
		return d.conn.HandlePing(f.Payload)
	case frame.Pong:
		return nil
	case frame.Open:
		return d.open(f)
	}
	if f.Channel == frame.ConnChannel {
		if f.Type == frame.Error {
			return errPeerLeft
		}
		return Violationf(frame.CodeUnexpected, "%s frame on channel 0", f.Type)
	}
	if f.Type == frame.Window && d.h.Window != nil && d.h.Window(f.Channel, f.Payload) {
		return nil
	}
	d.mu.Lock()
	up, ok := d.ids[f.Channel]
	known := f.Channel <= d.lastID
	d.mu.Unlock()
	if !ok {
		if !known {
			_ = d.conn.SendError(f.Channel, frame.CodeNoChannel, fmt.Sprintf("%s frame for channel %d, which is not open", f.Type, f.Channel))
		}
		return nil
	}
	// Sent whatever the relayed channel's state: late frames too (a
	// close that acknowledges an exit); the upstream drops those that
	// crossed the channel's end.
	if err := d.up.Conn().Send(f.Type, f.Flags, up, f.Payload); err != nil {
		return err
	}
	if f.Type == frame.Close || f.Type == frame.Error {
		d.finish(f.Channel) // the peer's last word on it
	}
	return nil
}

// open relays a peer's open, unless the hook answers it.
func (d *Downstream) open(f frame.Frame) error {
	id := f.Channel
	d.mu.Lock()
	bad := id%2 == 0 || id <= d.lastID
	if !bad {
		d.lastID = id
	}
	d.mu.Unlock()
	if bad {
		_ = d.conn.SendError(id, frame.CodeChannelInUse, fmt.Sprintf("channel id %d is not odd and above the last one used", id))
		return nil
	}
	if d.h.Answer != nil {
		var kind struct {
			Kind string `json:"kind"`
		}
		_ = json.Unmarshal(f.Payload, &kind) // checked in full below, unless the owner answers it
		if answered, err := d.h.Answer(id, kind.Kind); answered || err != nil {
			return err
		}
	}
	var m frame.OpenMsg
	if err := frame.Unmarshal(f.Payload, &m); err != nil {
		_ = d.conn.SendError(id, frame.CodeOf(err), err.Error())
		return nil
	}
	payload := f.Payload
	if d.h.Relaying != nil {
		payload = d.h.Relaying(id, &m, f.Payload)
	}
	d.mu.Lock() // the relay below may finish the channel before OpenRelay returns
	defer d.mu.Unlock()
	ch, err := d.up.OpenRelay(payload, func(g frame.Frame) error {
		if g.Type.IsData() && len(g.Payload) > 0 {
			d.queue(frame.Frame{Header: frame.Header{Type: g.Type, Flags: g.Flags, Channel: id}, Payload: g.Payload}, true)
			return nil
		}
		d.Send(g.Type, g.Flags, id, g.Payload)
		// The upstream's last frame on a channel ends the relayed one:
		// exit, done, an error, or the open_ok of a detached command.
		if g.Type == frame.Exit || g.Type == frame.Done || g.Type == frame.Error || (g.Type == frame.OpenOK && m.Detach) {
			d.finish(id)
		}
		return nil
	})
	if errors.Is(err, ErrGoAway) {
		msg := "going away"
		if d.h.GoneAway != nil {
			msg = d.h.GoneAway()
		}
		_ = d.conn.SendError(id, frame.CodeShuttingDown, msg)
		d.finished(id)
		return nil
	}
	if err != nil {
		d.finished(id)
		return err // the upstream connection is gone: so is this one
	}
	d.ids[id], d.live[id] = ch.ID(), ch
	if d.h.Opened != nil {
		d.h.Opened(id, ch.ID())
	}
	return nil
}

// finish ends the relayed channel of the peer's id, once: only its id
// is kept, for late frames.
func (d *Downstream) finish(id uint32) {
	d.mu.Lock()
	ch, ok := d.live[id]
	delete(d.live, id)
	d.mu.Unlock()
	if ok {
		ch.Finish()
		d.finished(id)
	}
}

func (d *Downstream) finished(id uint32) {
	if d.h.Finished != nil {
		d.h.Finished(id)
	}
}

// Send queues a frame for the peer, its payload copied. It never blocks.
func (d *Downstream) Send(t frame.Type, flags frame.Flags, id uint32, payload []byte) {
	d.queue(frame.Frame{Header: frame.Header{Type: t, Flags: flags, Channel: id}, Payload: append([]byte(nil), payload...)}, false)
}

func (d *Downstream) queue(f frame.Frame, owned bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ended {
		if owned {
			PutChunk(f.Payload)
		}
		return
	}
	d.out = append(d.out, queued{f, owned})
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// write sends the queued frames to the peer, what has gathered in one
// write, until its connection ends.
func (d *Downstream) write() {
	var batch []frame.Frame
	for range d.wake {
		d.mu.Lock()
		out := d.out
		d.out = nil
		d.mu.Unlock()
		batch = batch[:0]
		for _, q := range out {
			batch = append(batch, q.f)
		}
		err := d.conn.SendFrames(batch)
		if err == nil && d.h.Delivered != nil {
			d.h.Delivered(batch)
		}
		for _, q := range out {
			if q.owned {
				PutChunk(q.f.Payload)
			}
		}
		if err != nil {
			d.conn.CloseWithError(err)
			return
		}
	}
}

// end abandons the channels the peer left open and ends its connection.
func (d *Downstream) end(why error) {
	d.mu.Lock()
	d.ended = true
	live := d.live
	d.live = nil
	for _, q := range d.out { // what the peer will never read
		if q.owned {
			PutChunk(q.f.Payload)
		}
	}
	d.out = nil
	d.mu.Unlock()
	close(d.wake)
	for id, ch := range live {
		ch.Close(why)
		d.finished(id)
	}
	d.conn.CloseWithError(why)
}

// Fail sends the peer an error that ends its connection, and gives it
// LingerTime to read it and close: Serve returns then.
func (d *Downstream) Fail(code frame.Code, msg string) {
	nc := d.conn.NetConn()
	if d.conn.SendError(frame.ConnChannel, code, msg) == nil {
		if cw, ok := nc.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_ = nc.SetReadDeadline(time.Now().Add(LingerTime))
		return
	}
	d.conn.CloseWithError(errors.New(msg))
}
