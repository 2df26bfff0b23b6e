package execd

import (
	"net"
	"path"
	"strings"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/proc"
)

// Default PATHs of commands, as Debian's sshd sets them.
const (
	DefaultPath     = "/usr/local/bin:/usr/bin:/bin:/usr/games"
	DefaultRootPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// ownEnv reports whether the daemon sets the variable from the account
// and the connection, so that a client cannot set it.
func ownEnv(name string) bool {
	switch strings.ToUpper(name) {
	case "HOME", "USER", "LOGNAME", "SHELL", "MAIL", "PATH", "REXEC_USER", "REXEC_CONNECTION":
		return true
	}
	return false
}

// commandEnv is a command's environment, built as sshd builds it and
// owing nothing to the daemon's own: HOME, USER, LOGNAME, SHELL, PATH and
// MAIL of the account, TERM with a pty, REXEC_USER (the execd user) and
// REXEC_CONNECTION ("client-ip client-port server-ip server-port", as
// SSH_CONNECTION), the administrator's Env, then what the client sent that
// AcceptEnv accepts. On Windows the base is the daemon's environment (the
// account's profile), as a service's commands need it.
func (s *Server) commandEnv(c *serverConn, a *account, m *frame.OpenMsg) []string {
	env := platformEnv()
	if hostPaths {
		p := s.Path
		if p == "" {
			p = DefaultPath
			if a.os.Uid == 0 {
				p = DefaultRootPath
			}
		}
		env = append(env, "HOME="+a.home, "USER="+a.os.Name, "LOGNAME="+a.os.Name, "SHELL="+a.shell(), "PATH="+p)
		if a.os.Name != "" {
			env = append(env, "MAIL=/var/mail/"+a.os.Name)
		}
	} else if a.st != nil {
		env = append(env, "HOME="+a.home)
	}
	if a.user.Name != "" {
		env = append(env, "REXEC_USER="+a.user.Name)
	}
	env = append(env, "REXEC_CONNECTION="+connectionLine(c))
	if m.Pty != nil && m.Pty.Term != "" {
		env = append(env, "TERM="+m.Pty.Term)
	}
	env = append(env, s.Env...)
	for _, kv := range m.Env {
		if k, _, _ := strings.Cut(kv, "="); s.acceptsEnv(k) {
			env = append(env, kv)
		} else {
			c.log.Debug("environment variable not accepted", "name", k)
		}
	}
	return mergeEnv(nil, env)
}

// acceptsEnv reports whether a client may set the variable: never one the
// daemon sets itself; else any when AcceptEnv is nil, or one matching a
// pattern of it ("LANG", "LC_*").
func (s *Server) acceptsEnv(name string) bool {
	if ownEnv(name) {
		return false
	}
	if s.AcceptEnv == nil {
		return true
	}
	for _, pat := range s.AcceptEnv {
		if ok, _ := path.Match(pat, name); ok {
			return true
		}
	}
	return false
}

// connectionLine is "client-ip client-port server-ip server-port".
func connectionLine(c *serverConn) string {
	split := func(a net.Addr) string {
		h, p, err := net.SplitHostPort(a.String())
		if err != nil {
			return a.String() + " 0"
		}
		return h + " " + p
	}
	return split(c.nc.RemoteAddr()) + " " + split(c.nc.LocalAddr())
}

// shell runs command lines (-s, and what ssh mode sends): the account's
// login shell, or /bin/sh for a confined user (not an account of the
// machine) and for an account whose shell refuses logins (nologin,
// false), since the administrator let the user run commands.
func (a *account) shell() string {
	if a.confined {
		return "/bin/sh"
	}
	switch sh := a.os.Shell; path.Base(sh) {
	case "", "nologin", "false":
		return "/bin/sh"
	default:
		return sh
	}
}

// procCred is the account's identity for a command; nil: the daemon's.
func (a *account) procCred() *proc.Credential {
	if a.cred == nil {
		return nil
	}
	return credential(a.cred)
}

// daemonAccount is what a connection acts as without a users database:
// the daemon's own account, confined to the served directory.
func (s *Server) daemonAccount() *account {
	return &account{home: s.servedDir(), confined: true, os: s.ownAccount()}
}
