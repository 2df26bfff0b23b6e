package execd

import (
	"os"
	"os/user"
)

// hostPaths: on Windows every user is kept in a home (paths there would
// need drive letters, which the wire does not carry).
const hostPaths = false

// isPrivileged: a Windows daemon acts as its own account for everyone.
func isPrivileged() bool { return false }

func currentAccount() osAccount {
	a := osAccount{Name: "", Shell: os.Getenv("ComSpec")}
	if u, err := user.Current(); err == nil {
		a.Name, a.Home = u.Username, u.HomeDir
	}
	if a.Shell == "" {
		a.Shell = `C:\Windows\System32\cmd.exe`
	}
	return a
}

func lookupAccount(name string) (osAccount, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return osAccount{}, err
	}
	return osAccount{Name: u.Username, Home: u.HomeDir}, nil
}

func canEnter(dir string) error {
	_, err := os.ReadDir(dir)
	return err
}
