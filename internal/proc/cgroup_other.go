//go:build !linux

package proc

import "syscall"

// cgroupRoot and cgroup: Linux alone has cgroups.
type cgroupRoot struct{ dir string }

type cgroup struct{}

func openCgroupRoot(spec string) (*cgroupRoot, string, error) {
	return nil, "cgroups: not on this OS", nil
}

func (r *cgroupRoot) create() (*cgroup, error)     { return nil, nil }
func (r *cgroupRoot) close() error                 { return nil }
func (c *cgroup) attach(attr *syscall.SysProcAttr) {}
func (c *cgroup) started()                         {}
func (c *cgroup) signal(sig syscall.Signal)        {}
func (c *cgroup) populated() bool                  { return false }
func (c *cgroup) remove() error                    { return nil }
func setDeathSignal(attr *syscall.SysProcAttr)     {}
