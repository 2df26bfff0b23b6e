//go:build unix

package main

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
)

// chownHome gives a new home to the run_as account when execd runs as root.
func chownHome(home, account string) error {
	if account == "" || os.Geteuid() != 0 {
		return nil
	}
	acct, err := user.Lookup(account)
	if err != nil {
		return fmt.Errorf("--run-as: %w", err)
	}
	uid, _ := strconv.Atoi(acct.Uid)
	gid, _ := strconv.Atoi(acct.Gid)
	return os.Chown(home, uid, gid)
}

// passable adds the x bits for group and others to dir, so that accounts
// may pass through it to a home below (its files stay 0600).
func passable(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o011 == 0o011 {
		return nil
	}
	return os.Chmod(dir, fi.Mode().Perm()|0o011)
}
