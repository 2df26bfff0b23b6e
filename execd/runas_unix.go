//go:build unix

package execd

import (
	"fmt"
	"os"
	"os/user"
	"strconv"

	"github.com/execd-project/execd/internal/proc"
)

// runAs resolves the OS account a user's commands run as. It returns nil
// (the daemon's own account) when name is empty or is the daemon's user.
// Switching to another account needs the daemon to run as root.
func runAs(name string) (*proc.Credential, error) {
	if name == "" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("run_as %q: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("run_as %q: unusable uid %q or gid %q", name, u.Uid, u.Gid)
	}
	if int(uid) == os.Geteuid() {
		return nil, nil
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("run_as %q: the daemon must run as root to run commands as another account", name)
	}
	cred := &proc.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	}
	return cred, nil
}

// giveTo makes a file or directory the daemon created for a user belong
// to their run_as account, so that their commands can change it.
func giveTo(root *os.Root, p, account string) error {
	cred, err := runAs(account)
	if err != nil || cred == nil {
		return err
	}
	return root.Lchown(p, int(cred.Uid), int(cred.Gid))
}
