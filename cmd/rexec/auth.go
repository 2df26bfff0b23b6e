package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"golang.org/x/term"

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

// authMethods lists the ways to log in, in order: the key (-i, or the
// default key when it exists), then the password from $REXEC_PASSWORD,
// or else asked for on the terminal.
func (d *dialer) authMethods(user, addr string) ([]rexec.AuthMethod, error) {
	cf, e := d.cf, d.e
	var methods []rexec.AuthMethod
	path := cf.identity
	if path == "" {
		p, err := userkey.DefaultPath(e.getenv)
		if err != nil {
			return nil, err
		}
		path = p
	}
	key, err := userkey.Load(path)
	switch {
	case err == nil:
		methods = append(methods, rexec.PublicKey(key))
	case errors.Is(err, fs.ErrNotExist) && cf.identity == "":
		// no default key: passwords only
	default:
		return nil, err
	}
	if pw := e.getenv(passwordEnv); pw != "" {
		return append(methods, rexec.Password(pw)), nil
	}
	if tty, err := openTTY(); err == nil {
		_ = tty.Close() // there is a terminal to ask on, when the time comes
		if d.shared != nil {
			// Many hosts: one question, the answer tried once on each.
			ask := func() (string, error) { return askPassword(fmt.Sprintf("%s's password (for every host): ", user)) }
			return append(methods, rexec.PasswordCallback(func() (string, error) { return d.shared.get(user, ask) }, 1)), nil
		}
		prompt := func() (string, error) { return askPassword(fmt.Sprintf("%s@%s's password: ", user, addr)) }
		methods = append(methods, rexec.PasswordCallback(prompt, 3))
	}
	return methods, nil
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
func keygenCommand(e env, code *int) *cobra.Command {
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
					*code = fail(e.stderr, 1, "%v", err)
					return nil
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
				*code = fail(e.stderr, 1, "keygen: %v", err)
				return nil
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
