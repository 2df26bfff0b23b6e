package main

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/execd-project/execd/cmd/rexec/internal/termsafe"
	"github.com/execd-project/execd/internal/userkey"
	"github.com/execd-project/execd/rexec"
)

// passwordEnv names the variable a script sets to log in with a password.
const passwordEnv = "REXEC_PASSWORD"

// splitUser splits USER@HOST; user is "" without an '@'.
func splitUser(host string) (user, rest string) {
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		return host[:i], host[i+1:]
	}
	return "", host
}

// loginUser picks the user name: USER@ in the target, then -l, then the
// config file's entry, then the local user, as ssh does.
func (cf *connFlags) loginUser(fromTarget, fromConfig string, e env) (string, error) {
	for _, u := range []string{fromTarget, cf.user, fromConfig} {
		if u != "" {
			return u, nil
		}
	}
	u, err := userkey.LocalUser(e.getenv)
	if err != nil {
		return "", fmt.Errorf("no user name: give one with -l USER or USER@HOST (%v)", err)
	}
	return u, nil
}

// maxKeyAttempts bounds the keys offered in one login, so that an agent
// full of keys leaves the daemon's attempts (6, as sshd's MaxAuthTries)
// for a password.
const maxKeyAttempts = 4

// authMethods lists the ways to log in, in order: the keys (see keys),
// then the password from $REXEC_PASSWORD, or else asked for (see asker).
func (d *dialer) authMethods(user, addr string) ([]rexec.AuthMethod, error) {
	cf, e := d.cf, d.e
	var methods []rexec.AuthMethod
	if !cf.noPubkey {
		signers, err := d.keys()
		if err != nil {
			return nil, err
		}
		if len(signers) > 0 {
			methods = append(methods, rexec.PublicKeySigners(signers...))
		}
	}
	if cf.noPassword {
		return methods, nil
	}
	if pw := e.getenv(passwordEnv); pw != "" {
		return append(methods, rexec.Password(pw)), nil
	}
	if ask := d.asker(); ask != nil {
		if d.shared != nil {
			// Many hosts: one question, the answer tried once on each.
			all := func() (string, error) { return ask(fmt.Sprintf("%s's password (for every host): ", user)) }
			return append(methods, rexec.PasswordCallback(func() (string, error) { return d.shared.get(user, all) }, 1)), nil
		}
		// A password typed once serves the reconnections of this
		// process too: its first attempt, not its later ones.
		first := true
		prompt := func() (string, error) {
			key := user + "@" + addr
			if first {
				first = false
				if pw, ok := d.cf.typed.get(key); ok {
					return pw, nil
				}
			}
			pw, err := ask(fmt.Sprintf("%s's password: ", key))
			if err == nil {
				d.cf.typed.set(key, pw)
			}
			return pw, err
		}
		methods = append(methods, rexec.PasswordCallback(prompt, 3))
	}
	return methods, nil
}

// keys gathers the keys to log in with, once per dialer, in the order
// they are offered:
//   - the -i files, or else rexec's own key, or else, when rexec has none,
//     ssh's ~/.ssh/id_ed25519 (a key protected by a passphrase is asked
//     for, unless the agent holds it);
//   - the ed25519 keys held by ssh-agent (SSH_AUTH_SOCK), unless
//     IdentitiesOnly, where only the agent's copies of those files count.
func (d *dialer) keys() ([]crypto.Signer, error) {
	d.keysOnce.Do(func() { d.signers, d.keysErr = d.loadKeys() })
	return d.signers, d.keysErr
}

func (d *dialer) loadKeys() ([]crypto.Signer, error) {
	cf, e := d.cf, d.e
	files, explicit, err := cf.keyFiles(e)
	if err != nil {
		return nil, err
	}
	ag := d.agent()
	var signers []crypto.Signer
	var wanted []ed25519.PublicKey // the files' public halves, for IdentitiesOnly
	have := func(pub ed25519.PublicKey) bool {
		for _, s := range signers {
			if pub.Equal(s.Public()) {
				return true
			}
		}
		return false
	}
	for _, path := range files {
		if pub, err := publicBeside(path); err == nil {
			wanted = append(wanted, pub)
			if ag != nil && ag.Holds(pub) {
				continue // the agent signs for it: no passphrase to ask
			}
		}
		key, err := userkey.LoadAsking(path, d.asker())
		switch {
		case err == nil:
			if !have(key.Public().(ed25519.PublicKey)) {
				signers = append(signers, key)
			}
		case errors.Is(err, fs.ErrNotExist) && !explicit:
			// no such default key
		case !explicit || cf.lenientKeys:
			// ssh's own key of another type, or an -i that ssh would
			// only warn about: say so and go on
			if !cf.quiet {
				fmt.Fprintf(e.stderr, "rexec: warning: %s\n", termsafe.String(err.Error()))
			}
		default:
			return nil, err
		}
	}
	if ag != nil {
		for _, s := range ag.Signers {
			pub := s.Public().(ed25519.PublicKey)
			if have(pub) || (cf.identitiesOnly && !slices.ContainsFunc(wanted, func(w ed25519.PublicKey) bool { return w.Equal(pub) })) {
				continue
			}
			signers = append(signers, s)
		}
	}
	if len(signers) > maxKeyAttempts {
		signers = signers[:maxKeyAttempts]
	}
	return signers, nil
}

// keyFiles lists the private key files to try: the -i ones (explicit),
// else rexec's default key when it exists, else ssh's ~/.ssh/id_ed25519.
func (cf *connFlags) keyFiles(e env) (files []string, explicit bool, err error) {
	if len(cf.identities) > 0 {
		return cf.identities, true, nil
	}
	own, err := userkey.DefaultPath(e.getenv)
	if err != nil {
		return nil, false, err
	}
	if _, err := os.Stat(own); err == nil {
		return []string{own}, false, nil
	}
	if home := homeDir(e.getenv); home != "" {
		return []string{userkey.SSHKeyPath(home)}, false, nil
	}
	return nil, false, nil
}

// homeDir is $HOME, else the account's home, else "".
func homeDir(getenv func(string) string) string {
	if h := getenv("HOME"); h != "" {
		return h
	}
	h, _ := os.UserHomeDir()
	return h
}

// publicBeside reads the public key of a private key file from path+".pub".
func publicBeside(path string) (ed25519.PublicKey, error) {
	line, err := userkey.LoadPublic(path)
	if err != nil {
		return nil, err
	}
	return userkey.ParseAuthorized(line)
}

// agent connects to the ssh-agent once per dialer: the socket of
// IdentityAgent or $SSH_AUTH_SOCK; nil when there is none or it fails
// (said with -v).
func (d *dialer) agent() *userkey.Agent {
	sock := d.cf.agentSock
	if sock == "" {
		sock = d.e.getenv("SSH_AUTH_SOCK")
	}
	if sock == "" || strings.EqualFold(sock, "none") {
		return nil
	}
	ag, err := userkey.DialAgent(sock, 5*time.Second)
	if err != nil {
		if d.cf.verbose {
			fmt.Fprintf(d.e.stderr, "rexec: %s (going on without it)\n", termsafe.String(err.Error()))
		}
		return nil
	}
	d.closers = append(d.closers, ag.Close)
	return ag
}

// asker returns how to ask the user for a secret, or nil when there is
// no way (BatchMode, no terminal and no askpass program). As ssh: the
// controlling terminal; SSH_ASKPASS when there is no terminal and DISPLAY
// or SSH_ASKPASS_REQUIRE=prefer is set, or always with
// SSH_ASKPASS_REQUIRE=force; never with SSH_ASKPASS_REQUIRE=never.
func (d *dialer) asker() func(prompt string) (string, error) {
	if d.cf.batch {
		return nil
	}
	getenv := d.e.getenv
	prog, require := getenv("SSH_ASKPASS"), getenv("SSH_ASKPASS_REQUIRE")
	askpass := func(prompt string) (string, error) { return runAskpass(prog, prompt) }
	if prog != "" && (require == "force" || require == "prefer") {
		return askpass
	}
	if tty, err := openTTY(); err == nil {
		_ = tty.Close() // there is a terminal to ask on, when the time comes
		return askPassword
	}
	if prog != "" && require != "never" && getenv("DISPLAY") != "" {
		return askpass
	}
	return nil
}

// runAskpass runs an SSH_ASKPASS program with the prompt as its argument
// and takes the first line it prints as the answer.
func runAskpass(prog, prompt string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, prog, prompt).Output()
	if err != nil {
		return "", fmt.Errorf("askpass %s: %w", prog, err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSuffix(line, "\r"), nil
}

// askPassword asks on the terminal without echo.
func askPassword(prompt string) (string, error) {
	tty, err := openTTY()
	if err != nil {
		return "", err
	}
	defer tty.Close()
	return readPassword(tty, prompt)
}

// sharedPassword asks once per user name and gives the answer to every
// host of a fan-out.
type sharedPassword struct {
	mu      sync.Mutex
	answers map[string]passwordAnswer
}

type passwordAnswer struct {
	pw  string
	err error
}

func (s *sharedPassword) get(user string, ask func() (string, error)) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.answers[user]; ok {
		return a.pw, a.err
	}
	pw, err := ask()
	if s.answers == nil {
		s.answers = map[string]passwordAnswer{}
	}
	s.answers[user] = passwordAnswer{pw, err}
	return pw, err
}

// openTTY opens the controlling terminal, as ssh asks for passwords there
// even when stdin and stdout are redirected.
func openTTY() (*os.File, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	if !term.IsTerminal(int(tty.Fd())) {
		_ = tty.Close()
		return nil, errors.New("/dev/tty is not a terminal")
	}
	return tty, nil
}

// keygenCommand makes the user's key pair.
func keygenCommand(e env) *cobra.Command {
	var path, comment string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen [flags]",
		Short: "Make an ed25519 key pair for logging in",
		Long: `keygen makes an ed25519 key pair in OpenSSH's formats: the private key
(mode 0600) and, beside it with .pub added, the public key line to give to
the daemon's administrator ("execd user set NAME --add-key 'LINE'").
rexec logs in with this key by default.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				p, err := userkey.DefaultPath(e.getenv)
				if err != nil {
					return fail(1, "%v", err)
				}
				path = p
			}
			if comment == "" {
				host, _ := os.Hostname()
				u, _ := user.Current()
				if u != nil {
					comment = u.Username + "@" + host
				}
			}
			key, err := userkey.Generate(path, comment, force)
			if err != nil {
				return fail(1, "keygen: %v", err)
			}
			line, _ := userkey.AuthorizedLine(key.Public().(ed25519.PublicKey), comment)
			fmt.Fprintf(e.stdout, "Your private key is in %s\nYour public key is in %s.pub:\n%s\n", path, path, line)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&path, "file", "f", "", "private key file (default $XDG_CONFIG_HOME/rexec/"+userkey.FileName+")")
	f.StringVarP(&comment, "comment", "C", "", "comment of the public key (default user@host)")
	f.BoolVar(&force, "force", false, "replace an existing key")
	return cmd
}

// typedPasswords remembers, for the life of the process, the password
// typed for each user@host, so that a reconnection does not ask again.
type typedPasswords struct {
	mu  sync.Mutex
	pws map[string]string
}

func (t *typedPasswords) get(key string) (string, bool) {
	if t == nil {
		return "", false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	pw, ok := t.pws[key]
	return pw, ok
}

func (t *typedPasswords) set(key, pw string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pws == nil {
		t.pws = map[string]string{}
	}
	t.pws[key] = pw
}
