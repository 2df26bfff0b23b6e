package execd

import (
	"context"
	"sync"
	"time"
)

// Defaults of the login throttle.
const (
	DefaultAuthDelay    = 250 * time.Millisecond
	DefaultAuthDelayMax = 5 * time.Second
	// throttleFree is how many failures in a row cost nothing.
	throttleFree = 2
	// throttleForget is how long a key without failures is remembered.
	throttleForget = 15 * time.Minute
	// throttleMaxKeys bounds the memory the throttle may take.
	throttleMaxKeys = 65536
	// DefaultUserDelayMax caps the delay a user name's failures impose on
	// password logins for that name from anywhere: a stranger's guesses
	// must not lock its owner out (the penalty falls on the source).
	DefaultUserDelayMax = 500 * time.Millisecond
)

// throttle slows failed logins down by key: after a few failures each
// further one delays the next attempt, by a delay that grows with the
// count. With stack (the per-source throttle), delays add up: attempts
// arriving in parallel wait for the same slot, so opening more
// connections does not buy more guesses. Without it (the per-user
// throttle), the next attempt waits at most one delay after the last
// failure, so that failures elsewhere cannot queue a user out.
type throttle struct {
	base, max time.Duration
	stack     bool
	now       func() time.Time // the clock: time.Now, or a test's

	mu   sync.Mutex
	keys map[string]*throttleEntry
	busy map[string]chan struct{} // keys with an attempt in flight (serial): closed when it ends
}

type throttleEntry struct {
	fails int
	next  time.Time // no attempt is answered before this
	last  time.Time
}

func newThrottle(base, maxDelay time.Duration, stack bool) *throttle {
	return &throttle{base: base, max: maxDelay, stack: stack, now: time.Now, keys: make(map[string]*throttleEntry), busy: make(map[string]chan struct{})}
}

// serial waits until no other attempt under key is in flight, then holds
// the key until the returned release is called: a source's password
// guesses are checked one at a time, however many connections it opens.
func (t *throttle) serial(ctx context.Context, key string) (release func(), err error) {
	for {
		t.mu.Lock()
		ch, held := t.busy[key]
		if !held {
			ch = make(chan struct{})
			t.busy[key] = ch
			t.mu.Unlock()
			return func() {
				t.mu.Lock()
				delete(t.busy, key)
				t.mu.Unlock()
				close(ch)
			}, nil
		}
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// delay is how long the next attempt under keys must wait.
func (t *throttle) delay(keys ...string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var until time.Time
	for _, k := range keys {
		if e := t.keys[k]; e != nil && e.next.After(until) {
			until = e.next
		}
	}
	return max(until.Sub(t.now()), 0)
}

// wait blocks until every key may make an attempt, or ctx ends.
func (t *throttle) wait(ctx context.Context, keys ...string) error {
	d := t.delay(keys...)
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// failed records a failure for every key.
func (t *throttle) failed(keys ...string) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.keys) >= throttleMaxKeys {
		t.prune(now)
	}
	for _, k := range keys {
		e := t.keys[k]
		if e == nil {
			e = &throttleEntry{}
			t.keys[k] = e
		}
		e.fails++
		e.last = now
		if e.fails > throttleFree {
			d := min(t.base*time.Duration(e.fails-throttleFree), t.max)
			if t.stack {
				// Stacked, but bounded: a source is held back at most
				// ten full delays from now.
				e.next = later(e.next, now).Add(d)
				if limit := now.Add(10 * t.max); e.next.After(limit) {
					e.next = limit
				}
			} else {
				e.next = now.Add(d)
			}
		}
	}
}

// succeeded forgets the failures of every key.
func (t *throttle) succeeded(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		delete(t.keys, k)
	}
}

// prune drops keys idle for throttleForget, or the oldest half when all are recent.
func (t *throttle) prune(now time.Time) {
	for k, e := range t.keys {
		if now.Sub(e.last) > throttleForget && !e.next.After(now) {
			delete(t.keys, k)
		}
	}
	if len(t.keys) < throttleMaxKeys {
		return
	}
	n := 0
	for k := range t.keys {
		delete(t.keys, k)
		if n++; n >= throttleMaxKeys/2 {
			break
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
