//go:build !linux

package execd

// dirWatch: elsewhere a follower looks every tailPoll.
type dirWatch struct{}

func watchDir(string) *dirWatch { return nil }

func (w *dirWatch) events() <-chan struct{} { return nil }

func (w *dirWatch) close() {}
