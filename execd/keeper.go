package execd

import (
	"io"

	"github.com/execd-project/execd/internal/proc"
)

// A Keeper sees to it that nothing a daemon started outlives the daemon,
// however the daemon ends (kill -9 included): on Linux, where the daemon
// may create cgroups (v2), every command runs in a cgroup of its own, so
// that ending it ends everything it started, setsid children included;
// on Unix a guard process, started by the daemon and holding a pipe from
// it, kills what is left when the pipe closes; on Linux each command has
// PR_SET_PDEATHSIG; on Windows a command's job object ends with the
// daemon, and the keeper does nothing more.
//
// A nil *Keeper is valid and keeps nothing: commands are ended by the
// daemon's own cleanup alone.
type Keeper struct{ k *proc.Keeper }

// KeeperConfig says how a Keeper keeps commands.
type KeeperConfig struct {
	// Cgroup is "auto" (a cgroup per command where the daemon may create
	// one, under the cgroup it runs in), "off", or the directory in a
	// cgroup v2 hierarchy to create the keeper's cgroup in.
	Cgroup string
	// Guard is the command line of the guard process: a program that
	// calls RunGuard with its stdin (execd's hidden "guard" command).
	// Nil: no guard.
	Guard []string
	// GuardStderr receives the guard's complaints; nil discards them.
	GuardStderr io.Writer
}

// NewKeeper sets up what cfg asks for. With Cgroup "auto", cgroups that
// cannot be had are not an error: String says so.
func NewKeeper(cfg KeeperConfig) (*Keeper, error) {
	k, err := proc.NewKeeper(proc.KeeperConfig{Cgroup: cfg.Cgroup, Guard: cfg.Guard, GuardStderr: cfg.GuardStderr})
	if err != nil {
		return nil, err
	}
	return &Keeper{k: k}, nil
}

// String tells how commands are kept, for the daemon's log.
func (k *Keeper) String() string { return k.proc().String() }

// Close ends what is left of the commands' cgroups, removes the keeper's
// own, and lets the guard go.
func (k *Keeper) Close() error { return k.proc().Close() }

// proc is the keeper of the processes (nil for a nil Keeper).
func (k *Keeper) proc() *proc.Keeper {
	if k == nil {
		return nil
	}
	return k.k
}

// RunGuard is the guard process's work, for the program a KeeperConfig's
// Guard names: it reads the daemon's reports on stdin until the daemon
// is gone, then ends what is left of its commands.
func RunGuard(stdin io.Reader, stderr io.Writer) error { return proc.RunGuard(stdin, stderr) }
