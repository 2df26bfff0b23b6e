//go:build unix

package execd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// hostPaths: accounts see the whole file system, in absolute paths.
const hostPaths = true

func isPrivileged() bool { return os.Geteuid() == 0 }

// currentAccount is the daemon's own account; one with no passwd entry
// (a container's uid) is itself, named by its number.
func currentAccount() osAccount {
	if u, err := user.LookupId(strconv.Itoa(os.Geteuid())); err == nil {
		if a, err := accountFrom(u); err == nil {
			return a
		}
	}
	return osAccount{Name: strconv.Itoa(os.Geteuid()), Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid()), Home: "/", Shell: "/bin/sh"}
}

// lookupAccount finds an account of the machine by name.
func lookupAccount(name string) (osAccount, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return osAccount{}, err
	}
	return accountFrom(u)
}

func accountFrom(u *user.User) (osAccount, error) {
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return osAccount{}, fmt.Errorf("account %s: unusable uid %q or gid %q", u.Username, u.Uid, u.Gid)
	}
	a := osAccount{Name: u.Username, Uid: uint32(uid), Gid: uint32(gid), Home: u.HomeDir, Shell: loginShell(u.Username)}
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				a.Groups = append(a.Groups, uint32(n))
			}
		}
	}
	if a.Home == "" {
		a.Home = "/" // as sshd does for an account without one
	}
	return a, nil
}

// loginShell is the account's shell from /etc/passwd, /bin/sh when it has
// none there (os/user does not give it; accounts from other name services
// get /bin/sh).
func loginShell(name string) string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return "/bin/sh"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) == 7 && fields[0] == name && strings.HasPrefix(fields[6], "/") {
			return fields[6]
		}
	}
	return "/bin/sh"
}

// canEnter reports whether the calling thread's identity may list and
// enter dir, as a login there needs.
func canEnter(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err != nil && !errors.Is(err, io.EOF) {
		return &os.PathError{Op: "readdir", Path: dir, Err: err}
	}
	_, err = os.Stat(dir + "/.") // a lookup through dir: needs its x bit
	return err
}
