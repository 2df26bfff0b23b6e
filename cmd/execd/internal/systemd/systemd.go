// Package systemd speaks the two small protocols a daemon shares with
// systemd, written from their documentation (sd_notify(3),
// sd_listen_fds(3)): readiness, stopping and watchdog notifications on
// $NOTIFY_SOCKET, and listening sockets passed by socket activation
// ($LISTEN_FDS from fd 3). Outside systemd every call is a no-op.
package systemd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// listenFdsStart is the first descriptor systemd passes (SD_LISTEN_FDS_START).
const listenFdsStart = 3

// Notify sends state ("READY=1", "STOPPING=1", "WATCHDOG=1",
// "STATUS=...", lines joined by newlines) to the service manager. It
// reports false, and no error, when the process was not started by one
// ($NOTIFY_SOCKET unset).
func Notify(getenv func(string) string, state string) (bool, error) {
	path := getenv("NOTIFY_SOCKET")
	if path == "" {
		return false, nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:] // an abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("systemd notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("systemd notify: %w", err)
	}
	return true, nil
}

// WatchdogInterval is how often the service manager wants WATCHDOG=1
// ($WATCHDOG_USEC, for this process when $WATCHDOG_PID names one); 0
// when it wants none.
func WatchdogInterval(getenv func(string) string) (time.Duration, error) {
	v := getenv("WATCHDOG_USEC")
	if v == "" {
		return 0, nil
	}
	if p := getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(os.Getpid()) {
		return 0, nil
	}
	us, err := strconv.ParseUint(v, 10, 63)
	if err != nil || us == 0 {
		return 0, fmt.Errorf("systemd: bad WATCHDOG_USEC %q", v)
	}
	return time.Duration(us) * time.Microsecond, nil
}

// ErrNotForUs is returned by Listeners when $LISTEN_PID names another
// process: the sockets are not this one's.
var ErrNotForUs = errors.New("systemd: LISTEN_PID is another process's")

// Listeners returns the listening sockets passed by socket activation,
// in order; none when the process was not socket-activated. The
// environment variables are the caller's to clear (children must not
// take them for theirs).
func Listeners(getenv func(string) string) ([]net.Listener, error) {
	n := getenv("LISTEN_FDS")
	if n == "" {
		return nil, nil
	}
	if p := getenv("LISTEN_PID"); p != "" && p != strconv.Itoa(os.Getpid()) {
		return nil, ErrNotForUs
	}
	count, err := strconv.Atoi(n)
	if err != nil || count < 1 || count > 64 {
		return nil, fmt.Errorf("systemd: bad LISTEN_FDS %q", n)
	}
	names := strings.Split(getenv("LISTEN_FDNAMES"), ":")
	var lns []net.Listener
	for i := range count {
		name := "systemd"
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		f := os.NewFile(uintptr(listenFdsStart+i), name)
		ln, err := net.FileListener(f)
		_ = f.Close() // FileListener holds a duplicate
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, fmt.Errorf("systemd: socket %d (%s): %w", listenFdsStart+i, name, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}
