package execd

import (
	"os"

	"golang.org/x/sys/unix"
)

// dirWatch wakes a follower as soon as something happens in the
// directory of its file (inotify), rather than at its next look; the
// looks go on, so that nothing depends on an event.
type dirWatch struct {
	f *os.File
	c chan struct{}
}

// watchDir watches dir, or returns nil when it cannot (no inotify
// instance left: the follower looks every tailPoll as before).
func watchDir(dir string) *dirWatch {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil
	}
	const mask = unix.IN_MODIFY | unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_DELETE | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		_ = unix.Close(fd)
		return nil
	}
	w := &dirWatch{f: os.NewFile(uintptr(fd), "inotify"), c: make(chan struct{}, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := w.f.Read(buf); err != nil {
				return // closed
			}
			select {
			case w.c <- struct{}{}:
			default: // one wake-up covers many events
			}
		}
	}()
	return w
}

// events has a value after something happened in the directory.
func (w *dirWatch) events() <-chan struct{} {
	if w == nil {
		return nil
	}
	return w.c
}

func (w *dirWatch) close() {
	if w != nil {
		_ = w.f.Close()
	}
}
