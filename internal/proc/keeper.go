package proc

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// A Keeper sees to it that nothing a daemon started outlives the daemon,
// however the daemon ends (kill -9 included):
//
//   - on Linux, where the daemon may create cgroups (v2), every command
//     runs in a cgroup of its own under the keeper's, so that ending a
//     command ends everything it started, setsid children included;
//   - on Unix, a guard process started by the daemon holds the read end
//     of a pipe from it: when the daemon ends, however it ends, the pipe
//     closes and the guard kills what is left (the keeper's cgroups, or
//     without cgroups the process groups it was told of);
//   - on Linux, the command itself has PR_SET_PDEATHSIG (KILL);
//   - on Windows, a command's job object ends with the daemon's handle
//     to it, and the keeper does nothing more.
//
// A nil *Keeper is valid and keeps nothing: commands are ended by the
// daemon's own cleanup alone.
type Keeper struct {
	cg    *cgroupRoot
	guard *guard
	notes []string
}

// KeeperConfig says how a Keeper keeps commands.
type KeeperConfig struct {
	// Cgroup is "auto" (a cgroup per command where the daemon may create
	// one, under the cgroup it runs in), "off", or the directory in a
	// cgroup v2 hierarchy to create the keeper's cgroup in.
	Cgroup string
	// Guard is the command line of the guard process: a program that
	// calls RunGuard with its stdin. Nil: no guard.
	Guard []string
	// GuardStderr receives the guard's complaints; nil discards them.
	GuardStderr io.Writer
}

// NewKeeper sets up what cfg asks for. With Cgroup "auto", cgroups that
// cannot be had are not an error: String says so.
func NewKeeper(cfg KeeperConfig) (*Keeper, error) {
	k := &Keeper{}
	cg, note, err := openCgroupRoot(cfg.Cgroup)
	if err != nil {
		return nil, err
	}
	k.cg = cg
	k.notes = append(k.notes, note)
	if len(cfg.Guard) > 0 {
		g, err := startGuard(cfg.Guard, cg, cfg.GuardStderr)
		if err != nil {
			_ = cg.close()
			return nil, fmt.Errorf("guard process: %w", err)
		}
		k.guard = g
		k.notes = append(k.notes, fmt.Sprintf("guard process %d", g.pid()))
	}
	return k, nil
}

// String tells how commands are kept, for the daemon's log.
func (k *Keeper) String() string {
	if k == nil {
		return "no keeper"
	}
	return strings.Join(k.notes, "; ")
}

// Cgroups reports whether each command gets a cgroup of its own.
func (k *Keeper) Cgroups() bool { return k != nil && k.cg != nil }

// Close ends what is left of the commands' cgroups, removes the keeper's
// own, and lets the guard go.
func (k *Keeper) Close() error {
	if k == nil {
		return nil
	}
	return errors.Join(k.cg.close(), k.guard.close())
}

// tell passes a process group's start ("+") or end ("-") to the guard.
func (k *Keeper) tell(op string, pgid int) {
	if k != nil {
		k.guard.send(fmt.Sprintf("%s %d", op, pgid))
	}
}
