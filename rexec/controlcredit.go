package rexec

import (
	"encoding/json"

	"github.com/execd-project/execd/frame"
)

// A control master holds what the daemon sends a client until the
// client's socket takes it. Relayed untouched, a client's credit would
// make the master hold all of it: one that grants a GiB and never reads
// would grow the master by a GiB. So the master keeps the credit for the
// streams it relays to a client (stdout, stderr, file data) itself: it
// grants the daemon what the client granted, but never more than
// relayAhead beyond what it has written to the client per stream,
// relayPerClient over all of a client's streams, and relayPerMaster over
// all its clients. The client's credit still bounds what it receives.
//
// Credit the daemon holds but does not use (a command that writes nothing
// on stderr) counts against those bounds too, so past them every stream
// may still have relayFloor outstanding: no stream ever stalls behind the
// others, and the most a master holds is its bounds plus relayFloor per
// stream.
const (
	relayAhead     = 8 << 20
	relayPerClient = 64 << 20
	relayPerMaster = 256 << 20
	relayFloor     = 256 << 10
)

// relayStream is the credit of one stream of a relayed channel.
type relayStream struct {
	client    int64 // granted by the client, in all
	up        int64 // granted to the daemon, in all
	delivered int64 // written to the client
}

// relayCredit is the credit of a relayed channel's streams, and the
// daemon's id of the channel.
type relayCredit struct {
	up      uint32
	streams map[frame.Type]*relayStream
}

// openCredit takes a client's open: the credit the master passes on in
// it (payload rewritten when it is less than the client's), and the
// state that tracks the rest.
func (l *local) openCredit(id uint32, m *frame.OpenMsg, payload []byte) []byte {
	streams := frame.ReceivesFor(m)
	if len(streams) == 0 {
		return payload
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	rc := &relayCredit{streams: map[frame.Type]*relayStream{}}
	l.credit[id] = rc
	first := min(int64(m.Window), relayAhead)
	if room := l.room(); first*int64(len(streams)) > room {
		first = min(int64(m.Window), max(room/int64(len(streams)), relayFloor))
	}
	for _, t := range streams {
		rc.streams[t] = &relayStream{client: int64(m.Window), up: first}
	}
	l.ahead += first * int64(len(streams))
	l.m.ahead.Add(first * int64(len(streams)))
	if first == int64(m.Window) {
		return payload
	}
	c := *m
	c.Window = uint32(first)
	b, err := json.Marshal(&c)
	if err != nil {
		return payload // a message that was just decoded encodes
	}
	return b
}

// opened records the daemon's id of a relayed channel: from now on its
// credit is passed on.
func (l *local) opened(id, up uint32) {
	l.mu.Lock()
	rc := l.credit[id]
	if rc != nil {
		rc.up = up
	}
	l.mu.Unlock()
	if rc != nil {
		l.grant()
	}
}

// clientWindow takes a window frame from the client: for a stream the
// master keeps the credit of, it is counted here (and passed on by
// grant); it reports whether the frame was taken.
func (l *local) clientWindow(id uint32, payload []byte) bool {
	var w frame.WindowMsg
	if frame.Unmarshal(payload, &w) != nil {
		return false // relayed: the daemon refuses it
	}
	l.mu.Lock()
	rc := l.credit[id]
	var st *relayStream
	if rc != nil {
		st = rc.streams[w.Stream]
	}
	if st != nil {
		st.client += int64(w.Credit)
	}
	l.mu.Unlock()
	if st == nil {
		return false
	}
	l.grant()
	return true
}

// delivered counts the frames written to the client, then passes on
// the credit that frees.
func (l *local) delivered(fs []frame.Frame) {
	counted := false
	l.mu.Lock()
	for _, f := range fs {
		if !f.Type.IsData() || len(f.Payload) == 0 {
			continue
		}
		rc := l.credit[f.Channel]
		var st *relayStream
		if rc != nil {
			st = rc.streams[f.Type]
		}
		if st != nil {
			st.delivered += int64(len(f.Payload))
			l.ahead -= int64(len(f.Payload))
			l.m.ahead.Add(-int64(len(f.Payload)))
			counted = true
		}
	}
	l.mu.Unlock()
	if counted {
		l.grant()
	}
}

// grant passes on to the daemon the client's credit the bounds allow.
func (l *local) grant() {
	type window struct {
		up  uint32
		msg frame.WindowMsg
	}
	var out []window
	l.mu.Lock()
	for _, rc := range l.credit {
		if rc.up == 0 {
			continue // not open yet: opened grants it
		}
		for t, st := range rc.streams {
			want := min(st.client, st.delivered+relayAhead) - st.up
			n := min(want, l.room(), frame.MaxWindow)
			if floor := min(want, relayFloor-(st.up-st.delivered)); n < floor {
				n = floor // past the bounds, the stream's own floor
			}
			if n <= 0 {
				continue
			}
			st.up += n
			l.ahead += n
			l.m.ahead.Add(n)
			out = append(out, window{rc.up, frame.WindowMsg{Stream: t, Credit: uint32(n)}})
		}
	}
	l.mu.Unlock()
	for _, w := range out {
		_ = l.m.c.sess.Conn().SendJSON(frame.Window, w.up, &w.msg) // best effort: a dead connection ends everything
	}
}

// room is what the bounds on a client and on the master leave to grant;
// called with l.mu held.
func (l *local) room() int64 {
	return min(relayPerClient-l.ahead, relayPerMaster-l.m.ahead.Load())
}

// forgetCredit drops a relayed channel's credit; what it held ahead
// counts no more.
func (l *local) forgetCredit(id uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rc := l.credit[id]
	if rc == nil {
		return
	}
	delete(l.credit, id)
	for _, st := range rc.streams {
		l.ahead -= st.up - st.delivered
		l.m.ahead.Add(-(st.up - st.delivered))
	}
}
