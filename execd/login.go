package execd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/asuser"
	"github.com/execd-project/execd/internal/xfer"
)

// Confined reports whether u is kept in its home: every path relative to
// it, resolved through os.Root. confine = true says so; without the
// setting, a user who may not run commands is confined (the file-only
// accounts of the FTP homework) and one who may is not: they log in as an
// account of the machine and see its file system as that account does.
func (u *User) Confined() bool {
	if u.Confine != nil {
		return *u.Confine
	}
	return !u.Can(PermExec)
}

// osAccount is an account of the machine: who a user's commands and file
// work run as.
type osAccount struct {
	Name        string
	Uid, Gid    uint32
	Groups      []uint32
	Home, Shell string
}

// ownAccount is the daemon's own account, looked up once.
func (s *Server) ownAccount() osAccount {
	s.selfOnce.Do(func() { s.self = currentAccount() })
	return s.self
}

// accountOf resolves the account u acts as. A daemon that is not root can
// be no one but itself. As root: run_as, else the daemon's default-run-as,
// else the account of the user's own name, but never root unless run_as
// or default-run-as names it. cred is nil when the account is the
// daemon's own (nothing to switch).
func (s *Server) accountOf(u User) (acct osAccount, cred *asuser.Cred, err error) {
	name, explicit := u.RunAs, u.RunAs != ""
	if !explicit && s.DefaultRunAs != "" {
		name, explicit = s.DefaultRunAs, true
	}
	self := s.ownAccount()
	if !isPrivileged() {
		if explicit && name != self.Name {
			return osAccount{}, nil, fmt.Errorf("run_as %q: the daemon runs as %s, and only root may act as another account", name, self.Name)
		}
		return self, nil, nil
	}
	if !explicit {
		name = u.Name
	}
	a, err := lookupAccount(name)
	switch {
	case err != nil && explicit:
		return osAccount{}, nil, fmt.Errorf("run_as %q: no such account on this machine", name)
	case err != nil:
		return osAccount{}, nil, fmt.Errorf("user %s has no run_as and this machine has no account %s: set one (execd user set %s --run-as ACCOUNT)", u.Name, u.Name, u.Name)
	case a.Uid == 0 && !explicit:
		return osAccount{}, nil, fmt.Errorf("user %s would act as root: say so with run_as = \"root\" (execd user set %s --run-as root)", u.Name, u.Name)
	}
	if a.Uid == self.Uid && a.Gid == self.Gid {
		return a, nil, nil
	}
	return a, &asuser.Cred{Uid: a.Uid, Gid: a.Gid, Groups: a.Groups}, nil
}

// resolve turns a path from the wire into the path the account's file
// system takes: relative to the home for a confined user (see
// xfer.Resolve), absolute for one who acts as an account.
func (a *account) resolve(cwd, p string) (string, error) {
	if a.confined {
		return xfer.Resolve(cwd, p)
	}
	return xfer.ResolveHost(cwd, a.home, p)
}

// showDir shows a directory of a file session: under the home as "~" or
// "~/a/b" (a prompt's way), elsewhere as the path itself.
func (a *account) showDir(p string) string {
	if !a.confined {
		switch {
		case p == a.home:
			return "~"
		case a.home != "/" && strings.HasPrefix(p, a.home+"/"):
			return "~" + p[len(a.home):]
		}
	}
	return xfer.Display(p)
}

// hasQuota reports whether the account's home is kept under a quota:
// only a confined user's, whose files are all in the home. A user who
// acts as an account writes wherever it may; OS quotas bound that.
func (a *account) hasQuota() bool { return a.st != nil && a.user.Quota > 0 && a.confined }

// startDir is where a file session starts: the home.
func (a *account) startDir() string {
	if a.confined {
		return "."
	}
	return a.home
}

// files opens the file system the account works in: its home through
// os.Root when confined, else the whole machine, as its OS account
// either way when that is not the daemon's own.
func (a *account) files() (xfer.FS, error) {
	if a.confined {
		root, err := asuser.OpenRoot(a.home, a.cred)
		if err != nil {
			return nil, xfer.Errorf(frame.CodeIO, "home directory unavailable: %v", errors.Unwrap(err))
		}
		return root, nil
	}
	if a.noAccount != nil {
		return nil, xfer.Errorf(frame.CodeNotPermitted, "%v", a.noAccount)
	}
	return asuser.FS(xfer.Host{}, a.cred), nil
}

// Access says what a user logs in as: kept in a home, or acting as an
// account of the machine, with which home and shell. execd user show,
// list and check print it.
type Access struct {
	Confined bool
	// Account is the OS account the user's commands and files act as;
	// empty when there is none (Problem says why).
	Account string
	Home    string
	Shell   string
	// Problem is why the user cannot run commands, or reach their home,
	// as the daemon would say it; empty when nothing is wrong.
	Problem string
}

// AccessOf is what u logs in as on a daemon with the given
// default-run-as, running as the calling process's account.
func AccessOf(u User, defaultRunAs string) Access {
	s := &Server{DefaultRunAs: defaultRunAs}
	a := s.accountFor(u)
	acc := Access{Confined: a.confined, Home: a.home}
	if u.Quota > 0 && !a.confined {
		acc.Problem = "a quota applies to confined users only (their files are all in the home): set confine = true, or use the system's quotas"
	}
	if a.noAccount != nil {
		if u.Can(PermExec) || !a.confined {
			acc.Problem = a.noAccount.Error()
		}
		return acc
	}
	if acc.Problem != "" {
		return acc
	}
	acc.Account, acc.Shell = a.os.Name, a.shell()
	if err := asuser.Do(a.cred, func() error { return canEnter(a.home) }); err != nil {
		acc.Problem = fmt.Sprintf("home %s: %s may not use it (%v): give it to the account (chown) and make the directories above it passable (chmod o+x)", a.home, a.os.Name, errors.Unwrap(err))
	}
	return acc
}

// openRead opens a file for reading as xfer.OpenRead does. A confined
// user is not served a regular file with other hard links: someone who
// could run commands in the home may have linked there a file the user
// could not otherwise reach.
func (a *account) openRead(root xfer.FS, p string) (*os.File, fs.FileInfo, error) {
	f, fi, err := xfer.OpenRead(root, p)
	if err != nil || !a.confined || !fi.Mode().IsRegular() {
		return f, fi, err
	}
	if n := linkCount(fi); n > 1 {
		_ = f.Close()
		return nil, nil, xfer.Errorf(frame.CodePermission, "%s: has %d hard links, and a confined user is not served a file that may be another's", xfer.Display(p), n)
	}
	return f, fi, nil
}
