package main

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/execd-project/execd/cmd/internal/buildinfo"
	"github.com/execd-project/execd/execd"
)

// daemonSignals handles the signals of a running daemon until one stops
// it: HUP (a closing terminal, a log rotator) calls hangup, USR1 calls
// status, and neither ends the daemon or its commands. The
// returned channel gets the stop signal (INT or TERM). hangup and status
// may be nil.
func daemonSignals(sigs <-chan os.Signal, log *slog.Logger, hangup, status func()) <-chan os.Signal {
	out := make(chan os.Signal, 1)
	go func() {
		for sig := range sigs {
			switch {
			case sig == syscall.SIGHUP:
				if hangup == nil {
					log.Info("hangup received: the daemon and its commands go on")
					continue
				}
				hangup()
			case isStatusSignal(sig):
				if status != nil {
					status()
				}
			default:
				out <- sig
				return
			}
		}
	}()
	return out
}

// hangup is what HUP does to a serving daemon: the configuration file is
// read again, the log file and the audit log are opened anew (logrotate's
// create mode renames them first) and the users database is read again,
// and applied to open connections and jobs (Server.ReloadUsers). Other
// running commands go on.
func hangup(log *slog.Logger, lf *logFile, srv *execd.Server, reloadConfig func()) func() {
	return func() {
		reloadConfig()
		if lf != nil {
			if err := lf.Reopen(); err != nil {
				log.Error("log file not reopened; writing on to the old one", "err", err)
			}
		}
		if err := srv.Audit.Reopen(); err != nil {
			log.Error("audit log not reopened; writing on to the old one", "err", err)
		}
		if err := srv.ReloadUsers(); err != nil {
			log.Error("users database unreadable; the last good users stay in force", "err", err)
		}
		log.Info("hangup: log files reopened and users reread (connections and jobs a change revoked are ended); other commands go on")
	}
}

// statusReport logs one screen of what the daemon serves (SIGUSR1).
func statusReport(log *slog.Logger, srv *execd.Server, started time.Time) func() {
	return func() {
		st := srv.Status()
		log.Info("status", "version", buildinfo.Read().Short(), "uptime", time.Since(started).Round(time.Second).String(),
			"connections", st.Connections, "logged_in", st.LoggedIn,
			"channels", fmt.Sprint(st.Channels), "users", fmt.Sprint(st.Users), "waiting", st.Waiting, "commands_kept_by", srv.Keeper.String())
	}
}

// logFile is --log-file: every write goes to the file open now, and
// Reopen opens its path anew, for a rotated log. Safe for concurrent use.
type logFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func openLogFile(path string) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return &logFile{path: path, f: f}, nil
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// Reopen opens the path anew and closes the file it replaces; on failure
// the old file stays in use.
func (l *logFile) Reopen() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	return old.Close()
}

func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
