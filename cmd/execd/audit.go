package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/execd-project/execd/execd"
)

// parseWhen reads --since/--until: a duration back from now ("2h"), a
// date ("2026-11-22") or an RFC 3339 time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad time %q (want 2h, 2026-11-22 or 2026-11-22T15:04:05Z)", s)
}

// formatEvent is one readable line.
func formatEvent(ev *execd.AuditEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-12s %-10s", ev.Time.Local().Format("2006-01-02 15:04:05"), ev.Event, ev.User)
	switch ev.Event {
	case "login", "login_failed":
		fmt.Fprintf(&b, " from %s by %s", ev.Addr, ev.Method)
		if ev.Key != "" {
			fmt.Fprintf(&b, " (%s)", ev.Key)
		}
	case "exec", "exit":
		cmd := ev.Shell
		if cmd == "" {
			q := make([]string, len(ev.Argv))
			for i, a := range ev.Argv {
				q[i] = fmt.Sprintf("%q", a)
			}
			cmd = strings.Join(q, " ")
		}
		fmt.Fprintf(&b, " %s in %s", cmd, ev.Dir)
		if ev.Pty {
			b.WriteString(" (pty)")
		}
		if ev.Event == "exit" {
			switch {
			case ev.Signal != "":
				fmt.Fprintf(&b, " -> signal %s", ev.Signal)
			case ev.Exit != nil:
				fmt.Fprintf(&b, " -> exit %d", *ev.Exit)
			}
			if ev.Start != nil && ev.End != nil {
				fmt.Fprintf(&b, " after %s", ev.End.Sub(*ev.Start).Round(time.Millisecond))
			}
			fmt.Fprintf(&b, ", %d bytes in, %d out", ev.BytesIn, ev.BytesOut)
		}
	default:
		fmt.Fprintf(&b, " %s", ev.Path)
		if ev.To != "" {
			fmt.Fprintf(&b, " -> %s", ev.To)
		}
		if ev.Size != nil {
			fmt.Fprintf(&b, " %d bytes", *ev.Size)
		}
		if ev.Hash != "" {
			fmt.Fprintf(&b, " %.16s…", ev.Hash)
		}
	}
	if ev.Result != "" && ev.Result != "ok" {
		fmt.Fprintf(&b, ": %s", ev.Result)
	}
	return b.String()
}

func auditCommand(opts *options, stdout io.Writer) *cobra.Command {
	var userF, eventF, since, until string
	var asJSON, current bool
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Print the audit log, filtered by user, event and time",
		Long: `audit prints the audit log (audit.log in the state directory, one JSON
object per line): logins and failed logins, each command's start and exit,
and each file operation. The rotated logs come first, oldest first, gzip-ed
ones included (audit.log.2.gz, audit.log-20261201.gz), then audit.log.`,
		Example: `  execd audit --user alice --since 2h
  execd audit --event login_failed --since 2026-11-22
  execd audit --json | jq .`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := stateDir(opts.stateDir)
			if err != nil {
				return err
			}
			now := time.Now()
			var from, to time.Time
			if since != "" {
				if from, err = parseWhen(since, now); err != nil {
					return fmt.Errorf("--since: %w", err)
				}
			}
			if until != "" {
				if to, err = parseWhen(until, now); err != nil {
					return fmt.Errorf("--until: %w", err)
				}
			}
			path := filepath.Join(dir, execd.AuditFile)
			files := []string{path}
			if !current {
				if files, err = execd.AuditFiles(path); err != nil {
					return err
				}
				if len(files) == 0 {
					return fmt.Errorf("no audit log in %s", dir)
				}
			}
			enc := json.NewEncoder(stdout)
			return execd.ReadAuditFiles(files, func(ev *execd.AuditEvent) error {
				if (userF != "" && ev.User != userF) || (eventF != "" && ev.Event != eventF) ||
					(!from.IsZero() && ev.Time.Before(from)) || (!to.IsZero() && ev.Time.After(to)) {
					return nil
				}
				if asJSON {
					return enc.Encode(ev)
				}
				_, err := fmt.Fprintln(stdout, formatEvent(ev))
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&userF, "user", "u", "", "only this user's events")
	f.StringVar(&eventF, "event", "", "only this event: login, login_failed, exec, exit, get, put, list, mkdir, remove, rename, ...")
	f.StringVar(&since, "since", "", "only events from this time on: 2h (ago), 2026-11-22, or RFC 3339")
	f.StringVar(&until, "until", "", "only events up to this time")
	f.BoolVar(&asJSON, "json", false, "print the events as JSON lines")
	f.BoolVar(&current, "current", false, "read audit.log alone, not the rotated files (audit.log.1, audit.log.2.gz, ...) before it")
	return cmd
}
