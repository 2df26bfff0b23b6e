//go:build unix

package main

import (
	"fmt"
	"os"
	"os/user"
	"strconv"

	"github.com/execd-project/execd/execd"
)

// chownHome gives a new home to the run_as account when execd runs as root.
func chownHome(u *execd.User) error {
	if u.RunAs == "" || os.Geteuid() != 0 {
		return nil
	}
	acct, err := user.Lookup(u.RunAs)
	if err != nil {
		return fmt.Errorf("--run-as: %w", err)
	}
	uid, _ := strconv.Atoi(acct.Uid)
	gid, _ := strconv.Atoi(acct.Gid)
	return os.Chown(u.Home, uid, gid)
}
