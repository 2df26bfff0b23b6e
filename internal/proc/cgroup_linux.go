package proc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupPrefix names a keeper's cgroup: execd-PID.RANDOM, PID the
// daemon's (a process may have more than one keeper: tests do).
const cgroupPrefix = "execd-"

// cgroupRoot is a keeper's cgroup, in which each command gets one of its
// own. Nil: no cgroups.
type cgroupRoot struct {
	dir  string
	next atomic.Uint64
}

// openCgroupRoot creates the keeper's cgroup as spec says, and tells how
// commands will be kept.
func openCgroupRoot(spec string) (*cgroupRoot, string, error) {
	var parent string
	switch spec {
	case "off":
		return nil, "cgroups: off", nil
	case "", "auto":
		p, err := ownCgroup()
		if err != nil {
			return nil, "cgroups: not available (" + err.Error() + ")", nil
		}
		parent = p
	default:
		if !isCgroup2(spec) {
			return nil, "", fmt.Errorf("cgroup: %s is not in a cgroup v2 hierarchy", spec)
		}
		parent = spec
	}
	swept := sweepStale(parent)
	dir, err := os.MkdirTemp(parent, fmt.Sprintf("%s%d.", cgroupPrefix, os.Getpid()))
	if err != nil {
		if spec == "" || spec == "auto" {
			return nil, "cgroups: not available (" + err.Error() + ")", nil
		}
		return nil, "", fmt.Errorf("cgroup: %w", err)
	}
	note := "cgroup per command under " + dir
	if swept > 0 {
		note += fmt.Sprintf(" (ended %d left by daemons that died)", swept)
	}
	return &cgroupRoot{dir: dir}, note, nil
}

// ownCgroup is the directory of the cgroup v2 this process runs in.
func ownCgroup() (string, error) {
	mnt, err := cgroup2Mount()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			dir := filepath.Join(mnt, rest)
			if unix.Access(dir, unix.W_OK) != nil {
				return "", fmt.Errorf("%s is not writable", dir)
			}
			return dir, nil
		}
	}
	return "", errors.New("no cgroup v2 in /proc/self/cgroup")
}

// cgroup2Mount is where the cgroup v2 hierarchy is mounted.
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(pre); len(f) >= 5 {
			return f[4], nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted")
}

func isCgroup2(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// sweepStale ends the cgroups of keepers whose daemon is gone (both it
// and its guard were killed) and returns how many.
func sweepStale(parent string) int {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), cgroupPrefix)
		pidText, _, _ := strings.Cut(rest, ".")
		pid, err := strconv.Atoi(pidText)
		if !e.IsDir() || !ok || err != nil || pid == os.Getpid() {
			continue
		}
		if errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			if removeCgroupTree(filepath.Join(parent, e.Name())) == nil {
				n++
			}
		}
	}
	return n
}

// create makes the cgroup of one command.
func (r *cgroupRoot) create() (*cgroup, error) {
	if r == nil {
		return nil, nil
	}
	dir := filepath.Join(r.dir, fmt.Sprintf("cmd-%d", r.next.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	return &cgroup{dir: dir, fd: fd}, nil
}

// close ends whatever is left in the keeper's cgroup and removes it.
func (r *cgroupRoot) close() error {
	if r == nil {
		return nil
	}
	return removeCgroupTree(r.dir)
}

// removeCgroupTree kills every process in the cgroups under dir, waits
// for them to be gone, and removes the cgroups, dir last.
func removeCgroupTree(dir string) error {
	ents, _ := os.ReadDir(dir)
	var errs []error
	for _, e := range ents {
		if e.IsDir() {
			errs = append(errs, removeCgroupTree(filepath.Join(dir, e.Name())))
		}
	}
	c := &cgroup{dir: dir, fd: -1}
	c.signal(unix.SIGKILL)
	errs = append(errs, c.remove())
	return errors.Join(errs...)
}

// cgroup is one command's cgroup. Nil: none.
type cgroup struct {
	dir string
	fd  int // open until the command is started in it
}

// attach makes the command start in c (clone3's CLONE_INTO_CGROUP):
// nothing of it runs outside, even for an instant.
func (c *cgroup) attach(attr *syscall.SysProcAttr) {
	if c == nil {
		return
	}
	attr.UseCgroupFD = true
	attr.CgroupFD = c.fd
}

// started closes the descriptor the start needed.
func (c *cgroup) started() {
	if c != nil && c.fd >= 0 {
		_ = unix.Close(c.fd)
		c.fd = -1
	}
}

// signal delivers sig to every process in c; KILL through cgroup.kill,
// which no fork escapes.
func (c *cgroup) signal(sig syscall.Signal) {
	if c == nil {
		return
	}
	if sig == unix.SIGKILL {
		if err := os.WriteFile(filepath.Join(c.dir, "cgroup.kill"), []byte("1"), 0); err == nil {
			return
		}
		// Before Linux 5.14: one by one, a few rounds for forks meanwhile.
		for range 5 {
			if c.signalEach(sig) == 0 {
				return
			}
		}
		return
	}
	c.signalEach(sig)
}

// signalEach delivers sig to each process listed in c and returns how
// many there were.
func (c *cgroup) signalEach(sig syscall.Signal) int {
	b, err := os.ReadFile(filepath.Join(c.dir, "cgroup.procs"))
	if err != nil {
		return 0
	}
	n := 0
	for _, f := range bytes.Fields(b) {
		if pid, err := strconv.Atoi(string(f)); err == nil {
			_ = unix.Kill(pid, sig) // best effort: it may be gone
			n++
		}
	}
	return n
}

// populated reports whether any process is left in c.
func (c *cgroup) populated() bool {
	if c == nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join(c.dir, "cgroup.events"))
	if err != nil {
		return false
	}
	return bytes.Contains(b, []byte("populated 1"))
}

// remove removes c once it is empty, waiting a little for processes
// just killed to be gone.
func (c *cgroup) remove() error {
	if c == nil {
		return nil
	}
	c.started()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := unix.Rmdir(c.dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: %w", c.dir, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// setDeathSignal has the kernel kill the child when the daemon's thread
// that started it ends (the daemon dies; Go's threads otherwise live as
// long as the process).
func setDeathSignal(attr *syscall.SysProcAttr) { attr.Pdeathsig = unix.SIGKILL }
