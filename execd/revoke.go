package execd

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
	"github.com/execd-project/execd/internal/userkey"
)

// Revocation: a change to the users database reaches what is already
// logged in and running, not only the next login. When the users in
// force change (SIGHUP's ReloadUsers, or the file found changed at a
// login or a channel's open), every connection is checked again:
//
//   - its user was removed (or removed and added again: another User.ID),
//     the key or password it logged in with was withdrawn, or the user
//     now acts as another account of the machine (run_as): the connection
//     ends with CodeRevoked and the reason;
//   - otherwise it acts for the user as now written (permissions, quota,
//     limits, home, confinement): its open channels of a kind the user
//     may no longer open end with CodeNotPermitted, and its file channels
//     with CodeRevoked when the home or the confinement changed.
//
// And every job: a removed user's jobs end and their output is deleted;
// the jobs of a user who lost exec, or that were started by a login whose
// key was withdrawn, end (their output kept for the retention, readable
// by whoever may still attach).

// errRevoked is the cause of what a revocation ends (errors.Is); the
// revocation error itself says why.
var errRevoked = errors.New("revoked")

// revocation is why a revocation ended something.
type revocation struct{ why string }

func (r *revocation) Error() string        { return r.why }
func (r *revocation) Is(target error) bool { return target == errRevoked }

// ReloadUsers reads the users database again now, changed on disk or
// not (SIGHUP), and applies it to open connections and jobs. On a
// failure to read, the last good users stay in force and the error says
// why.
func (s *Server) ReloadUsers() error {
	if s.Users == nil {
		return nil
	}
	err := s.Users.Reload()
	s.applyUsers()
	return err
}

// refreshUsers reads the users file if it changed on disk and applies
// what changed; a stat when it did not.
func (s *Server) refreshUsers() {
	if s.Users == nil {
		return
	}
	s.Users.refresh()
	if s.Users.generation() != s.usersApplied.Load() {
		s.applyUsers()
	}
}

// applyUsers applies the users in force to every open connection and
// job, once per generation of the database.
func (s *Server) applyUsers() {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	gen := s.Users.generation()
	if gen == s.usersApplied.Load() {
		return
	}
	s.usersApplied.Store(gen)
	s.mu.Lock()
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.revalidate()
	}
	for _, j := range s.jobsWhere(func(*job) bool { return true }) {
		s.revalidateJob(j)
	}
}

// setAccount stores the account a login made, and checks it again if the
// users changed while it logged in (applyUsers may have passed this
// connection by).
func (c *serverConn) setAccount(a *account) {
	c.acct.Store(a)
	if a.st != nil && c.srv.Users.generation() != a.gen {
		c.revalidate()
	}
}

// revalidate applies the users in force to the connection: it ends it if
// its login no longer stands, else acts for the user as now written and
// ends the channels the user may no longer open.
func (c *serverConn) revalidate() {
	c.revalMu.Lock()
	defer c.revalMu.Unlock()
	old := c.account()
	if old == nil || old.st == nil { // not logged in yet, or no users database
		return
	}
	u, ok, gen := c.srv.Users.current(old.user.Name)
	if old.gen == gen {
		return
	}
	why := ""
	var a *account
	switch {
	case !ok || u.ID != old.user.ID:
		why = fmt.Sprintf("user %s was removed from the daemon", old.user.Name)
	case !loginStands(u, old):
		why = fmt.Sprintf("user %s's %s was withdrawn", old.user.Name, old.via)
	default:
		a = c.srv.accountFor(u)
		a.gen, a.via = gen, old.via
		if changedAccount(old, a) {
			why = fmt.Sprintf("user %s now acts as another account of the machine (run_as); log in again", old.user.Name)
		}
	}
	if why != "" {
		c.revoke(why)
		return
	}
	c.acct.Store(a)
	// File channels opened their view of the files (the jail at the
	// home, or the machine) when they began: a new home or confinement
	// ends them, as a lost permission ends any channel.
	moved := ""
	switch {
	case old.home != a.home:
		moved = fmt.Sprintf("user %s's home is now %s", a.user.Name, a.home)
	case old.confined != a.confined && a.confined:
		moved = fmt.Sprintf("user %s is now confined to their home", a.user.Name)
	case old.confined != a.confined:
		moved = fmt.Sprintf("user %s is no longer confined to their home", a.user.Name)
	}
	c.mu.Lock()
	gone := map[*mux.Channel]*job{}
	for ch, j := range c.chans {
		if a.mayOpen(ch.Kind()) != nil || (moved != "" && filesKind(ch.Kind())) {
			gone[ch] = j
		}
	}
	c.mu.Unlock()
	for ch, j := range gone {
		code, msg := frame.CodeNotPermitted, moved
		if err := a.mayOpen(ch.Kind()); err != nil {
			msg = "permission revoked: " + err.Error()
		} else {
			code = frame.CodeRevoked
		}
		c.log.Info("channel ended: its user changed", "channel", ch.ID(), "kind", ch.Kind(), "why", msg)
		if j != nil { // its command ends, and its exit says why
			j.cancel(&revocation{"ended: " + msg})
			continue
		}
		ch.Fail(code, msg)
	}
}

// revoke ends the connection: its user's login no longer stands.
func (c *serverConn) revoke(why string) {
	a := c.account()
	c.log.Warn("connection ended: login revoked", "why", why)
	c.srv.Audit.Log(&AuditEvent{Event: "revoked", User: a.user.Name, Addr: c.nc.RemoteAddr().String(), Result: why})
	c.srv.Metrics.connRevoked()
	cause := &revocation{why}
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess != nil {
		sess.End(frame.CodeRevoked, why, cause)
	}
	c.abort(cause)
}

// loginStands reports whether the key or password a's connection logged
// in with is still the user's.
func loginStands(u User, a *account) bool {
	switch {
	case a.via == "":
		return true // a job's record from before logins were recorded
	case a.via == "password":
		return u.Password != "" && u.Password == a.user.Password
	}
	return hasKey(u, strings.TrimPrefix(a.via, "key "))
}

// hasKey reports whether one of u's keys has the fingerprint fp.
func hasKey(u User, fp string) bool {
	keys, _ := u.PublicKeys() // validated when the database was read
	return slices.ContainsFunc(keys, func(k ed25519.PublicKey) bool { return userkey.Fingerprint(k) == fp })
}

// changedAccount reports whether a connection of old would act as
// another account of the machine as a: it cannot carry that over.
func changedAccount(old, a *account) bool {
	return (old.noAccount == nil) != (a.noAccount == nil) ||
		old.os.Uid != a.os.Uid || old.os.Gid != a.os.Gid || !slices.Equal(old.os.Groups, a.os.Groups)
}

// revalidateJob ends a job whose user no longer may have it: a removed
// user's (its output deleted), one started by a login whose key was
// withdrawn, any of a user who lost exec.
func (s *Server) revalidateJob(j *job) {
	old := j.acct
	u, ok, _ := s.Users.current(old.user.Name)
	why, remove := "", false
	switch {
	case !ok || u.ID != old.user.ID:
		why, remove = fmt.Sprintf("ended: user %s was removed from the daemon", old.user.Name), true
	case strings.HasPrefix(old.via, "key ") && !loginStands(u, old):
		why = fmt.Sprintf("ended: the key it was started with (%s) was withdrawn from user %s", strings.TrimPrefix(old.via, "key "), old.user.Name)
	case !u.Can(PermExec):
		why = fmt.Sprintf("ended: user %s may no longer run commands", old.user.Name)
	default:
		return
	}
	select {
	case <-j.done:
	default:
		j.log.Warn("job ended: revoked", "job", j.id, "pid", j.pid, "user", old.user.Name, "why", why)
		j.cancel(&revocation{why})
	}
	if remove {
		go func() {
			<-j.done
			j.forget()
		}()
	}
}
