package mux

import (
	"fmt"

	"github.com/execd-project/execd/frame"
)

// RelayFunc takes every frame the peer sends on a relayed channel, data
// included, with a payload valid only during the call. An error ends the
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
