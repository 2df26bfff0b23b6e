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
