package main

import (
	"bufio"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/execd-project/execd/cmd/internal/units"
	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/internal/userkey"
)

// firstStart creates the users database on a daemon's first start on
// loopback: the OS user who started it, logging in with their rexec key
// (generated if they have none), with every permission on home.
func firstStart(db *execd.UserDB, home string) (string, error) {
	name, err := userkey.LocalUser(os.Getenv)
	if err != nil {
		return "", fmt.Errorf("first start: no user name: %w", err)
	}
	keyPath, err := userkey.DefaultPath(os.Getenv)
	if err != nil {
		return "", err
	}
	generated := ""
	line, err := userkey.LoadPublic(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		host, _ := os.Hostname()
		priv, gerr := userkey.Generate(keyPath, name+"@"+host, false)
		switch {
		case errors.Is(gerr, fs.ErrExist):
			// Another first start made it a moment ago: use that key,
			// read whole from the private file (its .pub may still be
			// on its way).
			priv, gerr = userkey.Load(keyPath)
		case gerr == nil:
			generated = ", generated now"
		}
		if gerr != nil {
			return "", fmt.Errorf("first start: make the rexec key: %w", gerr)
		}
		line, err = userkey.AuthorizedLine(priv.Public().(ed25519.PublicKey), name+"@"+host)
	}
	if err != nil {
		return "", fmt.Errorf("first start: %w", err)
	}
	err = db.Update(func(users map[string]*execd.User) error {
		// The owner acts as themselves, said explicitly: as root, only a
		// run_as that names root lets a user act as root. The account is
		// the process's own, whatever $USER says.
		runAs := name
		if self, err := user.Current(); err == nil {
			runAs = self.Username
		}
		users[name] = &execd.User{Home: home, Keys: []string{line}, Allow: execd.AllPerms(), RunAs: runAs}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("first start: %w", err)
	}
	return fmt.Sprintf("execd: first start: created user %s (home %s, may exec, get, put), who logs in with the key %s%s; add others with \"execd user add\"",
		name, home, keyPath, generated), nil
}

// userFlags are the settings of "user add" and "user set".
type userFlags struct {
	home, quota, allow, runAs, commandTimeout string
	addKeys, delKeys                          []string
	maxConns, maxChannels                     int
	passwordStdin, noPassword, confine        bool
}

func (uf *userFlags) register(cmd *cobra.Command, add bool) {
	f := cmd.Flags()
	f.StringVar(&uf.home, "home", "", "home directory, created if missing (default for add: the account's own; STATE-DIR/home/NAME for a confined user)")
	f.BoolVar(&uf.confine, "confine", false, "keep the user in their home, paths relative to it (default: confined when they may not exec); --confine=false lets them act as their account")
	f.StringVar(&uf.quota, "quota", "", "quota on the home tree, e.g. 2GiB, 500MiB (0: none)")
	f.StringVar(&uf.allow, "allow", "", "permissions, comma-separated: exec,get,put (default for add: all)")
	f.StringVar(&uf.runAs, "run-as", "", "OS account the user's commands and files act as when the daemon runs as root (default: the account of the user's name; never root unless named)")
	f.StringArrayVar(&uf.addKeys, "add-key", nil, "authorize a public key: a line \"ssh-ed25519 AAAA... comment\" or @FILE (repeatable)")
	f.IntVar(&uf.maxConns, "max-conns", 0, "most connections at once (0: the daemon's limit)")
	f.IntVar(&uf.maxChannels, "max-channels", 0, "most commands and transfers at once (0: the daemon's limit)")
	f.StringVar(&uf.commandTimeout, "command-timeout", "", "time limit of every command, e.g. 1h (0: none)")
	f.BoolVar(&uf.passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
	if add {
		f.BoolVar(&uf.noPassword, "no-password", false, "no password: the user logs in with a key only")
	} else {
		f.StringArrayVar(&uf.delKeys, "del-key", nil, "remove a key, by its line, fingerprint (SHA256:...) or comment (repeatable)")
	}
}

// apply changes u as the flags say.
func (uf *userFlags) apply(cmd *cobra.Command, u *execd.User) error {
	f := cmd.Flags()
	if f.Changed("home") {
		abs, err := filepath.Abs(uf.home)
		if err != nil {
			return err
		}
		u.Home = abs
	}
	if f.Changed("quota") {
		q, err := execd.ParseSize(uf.quota)
		if err != nil {
			return fmt.Errorf("--quota: %w", err)
		}
		u.Quota = q
	}
	if f.Changed("allow") {
		u.Allow = nil
		for _, p := range strings.Split(uf.allow, ",") {
			if p = strings.TrimSpace(p); p != "" && !slices.Contains(u.Allow, p) {
				u.Allow = append(u.Allow, p)
			}
		}
	}
	if f.Changed("run-as") {
		u.RunAs = uf.runAs
	}
	if f.Changed("confine") {
		u.Confine = &uf.confine
	}
	if f.Changed("max-conns") {
		u.MaxConns = uf.maxConns
	}
	if f.Changed("max-channels") {
		u.MaxChannels = uf.maxChannels
	}
	if f.Changed("command-timeout") {
		d, err := time.ParseDuration(uf.commandTimeout)
		if err != nil {
			return fmt.Errorf("--command-timeout: %w", err)
		}
		u.CommandTimeout = execd.Duration(d)
	}
	for _, k := range uf.addKeys {
		line := k
		if strings.HasPrefix(k, "@") {
			b, err := os.ReadFile(k[1:])
			if err != nil {
				return fmt.Errorf("--add-key: %w", err)
			}
			line = strings.TrimSpace(string(b))
		}
		pub, err := userkey.ParseAuthorized(line)
		if err != nil {
			return fmt.Errorf("--add-key: %w", err)
		}
		for _, old := range u.Keys {
			if p, err := userkey.ParseAuthorized(old); err == nil && p.Equal(pub) {
				return fmt.Errorf("--add-key: %s is already authorized for %s", userkey.Fingerprint(pub), u.Name)
			}
		}
		u.Keys = append(u.Keys, line)
	}
	for _, k := range uf.delKeys {
		n := len(u.Keys)
		u.Keys = slices.DeleteFunc(u.Keys, func(line string) bool {
			pub, err := userkey.ParseAuthorized(line)
			fields := strings.Fields(line)
			return line == k || (err == nil && userkey.Fingerprint(pub) == k) || (len(fields) > 2 && strings.Join(fields[2:], " ") == k)
		})
		if len(u.Keys) == n {
			return fmt.Errorf("--del-key: %s has no key %q", u.Name, k)
		}
	}
	return nil
}

// readPassword reads a new password: one line of stdin with
// --password-stdin, else asked twice on the terminal.
func readPassword(stdin io.Reader, stderr io.Writer, fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", errors.New("--password-stdin: no password on stdin")
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("stdin is not a terminal: give the password with --password-stdin, or use --no-password with a key")
	}
	ask := func(prompt string) (string, error) {
		fmt.Fprint(stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		return string(b), err
	}
	pw, err := ask("New password: ")
	if err != nil {
		return "", err
	}
	again, err := ask("Retype new password: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("the passwords differ")
	}
	return pw, nil
}

// needsHome reports whether a user without a home gets one under the
// state directory: a confined user; one who acts as an account not of
// their name that nobody chose for them (the daemon's own, or its
// default-run-as), whose home is not theirs; and one whose account has
// no home (a system account's /nonexistent) or who has no account.
func needsHome(u execd.User, defaultRunAs string) bool {
	acc := execd.AccessOf(u, defaultRunAs)
	if acc.Confined || acc.Account == "" || (u.RunAs == "" && acc.Account != u.Name) {
		return true
	}
	fi, err := os.Stat(acc.Home)
	return err != nil || !fi.IsDir()
}

// makeHome creates a user's home (mode 0700) when it names one, owned by
// the account the user acts as when the daemon runs as root (see
// execd.AccessOf). A home that already exists is left as it is.
func makeHome(u *execd.User, defaultRunAs, state string) error {
	if u.Home == "" {
		return nil
	}
	// The directories on the way are passable (not readable) by the
	// accounts commands run as: STATE-DIR/home may be the first of them,
	// and the state directory itself must then be passable too.
	if err := os.MkdirAll(filepath.Dir(u.Home), 0o711); err != nil {
		return fmt.Errorf("home: %w", err)
	}
	if rel, err := filepath.Rel(state, u.Home); err == nil && !strings.HasPrefix(rel, "..") {
		if err := passable(state); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
	}
	err := os.Mkdir(u.Home, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("home: %w", err)
	}
	return chownHome(u.Home, execd.AccessOf(*u, defaultRunAs).Account)
}

// userEnv is what the user subcommands share: the options (for the
// state directory) and the streams.
type userEnv struct {
	opts           *options
	stdin          io.Reader
	stdout, stderr io.Writer
}

// open opens the users database of the state directory.
func (ue *userEnv) open() (*execd.UserDB, string, error) {
	dir, err := stateDir(ue.opts.stateDir)
	if err != nil {
		return nil, "", err
	}
	db, err := execd.OpenUsers(filepath.Join(dir, execd.UsersFile))
	return db, dir, err
}

// warnHome says when a home holds the state directory: its user could
// then edit the users database through file operations.
func (ue *userEnv) warnHome(user *execd.User, state string) {
	if rel, err := filepath.Rel(user.Home, state); err == nil && !strings.HasPrefix(rel, "..") {
		fmt.Fprintf(ue.stderr, "execd: warning: %s's home %s contains the state directory %s: %s can change the users database through file operations\n", user.Name, user.Home, state, user.Name)
	}
}

func userCommand(opts *options, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	ue := &userEnv{opts: opts, stdin: stdin, stdout: stdout, stderr: stderr}
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the users who may log in",
		Long: `user manages the users database (users.toml in the state directory). A
running daemon reads changes at the next login; no restart is needed.`,
	}
	cmd.AddCommand(ue.addCommand(), ue.setCommand(), ue.passwdCommand(), ue.delCommand(), ue.listCommand(), ue.showCommand(), ue.checkCommand())
	return cmd
}

func (ue *userEnv) addCommand() *cobra.Command {
	var addFlags userFlags
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user (asks for a password unless --no-password or --password-stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, state, err := ue.open()
			if err != nil {
				return err
			}
			name := args[0]
			if _, ok := db.Lookup(name); ok {
				return fmt.Errorf("user %s exists; change it with \"execd user set\"", name)
			}
			u := &execd.User{Name: name, Allow: execd.AllPerms()}
			if err := addFlags.apply(cmd, u); err != nil {
				return err
			}
			if u.Home == "" && needsHome(*u, ue.opts.defaultRunAs) {
				u.Home = filepath.Join(state, "home", name)
			}
			if !addFlags.noPassword {
				pw, err := readPassword(ue.stdin, ue.stderr, addFlags.passwordStdin)
				if err != nil {
					return err
				}
				if u.Password, err = execd.HashPassword(pw); err != nil {
					return err
				}
			} else if len(u.Keys) == 0 {
				return errors.New("--no-password needs a key (--add-key): the user could never log in")
			}
			if err := makeHome(u, ue.opts.defaultRunAs, state); err != nil {
				return err
			}
			err = db.Update(func(users map[string]*execd.User) error {
				if users[name] != nil {
					return fmt.Errorf("user %s exists", name)
				}
				users[name] = u
				return nil
			})
			if err != nil {
				return err
			}
			ue.warnHome(u, state)
			acc := execd.AccessOf(*u, ue.opts.defaultRunAs)
			fmt.Fprintf(ue.stdout, "added user %s (%s, allow %s)\n", name, describeAccess(acc), strings.Join(u.Allow, ","))
			if acc.Problem != "" {
				fmt.Fprintf(ue.stderr, "execd: warning: user %s: %s\n", name, acc.Problem)
			}
			return nil
		},
	}
	addFlags.register(add, true)
	return add
}

func (ue *userEnv) setCommand() *cobra.Command {
	var setFlags userFlags
	set := &cobra.Command{
		Use:   "set NAME",
		Short: "Change a user's home, quota, permissions, keys or limits",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, state, err := ue.open()
			if err != nil {
				return err
			}
			var changed execd.User
			err = db.Update(func(users map[string]*execd.User) error {
				u := users[args[0]]
				if u == nil {
					return fmt.Errorf("no user %s", args[0])
				}
				u.Name = args[0]
				if err := setFlags.apply(cmd, u); err != nil {
					return err
				}
				if setFlags.passwordStdin {
					pw, err := readPassword(ue.stdin, ue.stderr, true)
					if err != nil {
						return err
					}
					if u.Password, err = execd.HashPassword(pw); err != nil {
						return err
					}
				}
				if u.Home == "" && needsHome(*u, ue.opts.defaultRunAs) {
					u.Home = filepath.Join(state, "home", u.Name)
				}
				changed = *u
				return makeHome(u, ue.opts.defaultRunAs, state)
			})
			if err != nil {
				return err
			}
			ue.warnHome(&changed, state)
			acc := execd.AccessOf(changed, ue.opts.defaultRunAs)
			fmt.Fprintf(ue.stdout, "updated user %s (%s)\n", args[0], describeAccess(acc))
			if acc.Problem != "" {
				fmt.Fprintf(ue.stderr, "execd: warning: user %s: %s\n", args[0], acc.Problem)
			}
			return nil
		},
	}
	setFlags.register(set, false)
	return set
}

func (ue *userEnv) passwdCommand() *cobra.Command {
	var pwStdin bool
	passwd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Set a user's password",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, _, err := ue.open()
			if err != nil {
				return err
			}
			if _, ok := db.Lookup(args[0]); !ok {
				return fmt.Errorf("no user %s", args[0])
			}
			pw, err := readPassword(ue.stdin, ue.stderr, pwStdin)
			if err != nil {
				return err
			}
			hash, err := execd.HashPassword(pw)
			if err != nil {
				return err
			}
			err = db.Update(func(users map[string]*execd.User) error {
				if users[args[0]] == nil {
					return fmt.Errorf("no user %s", args[0])
				}
				users[args[0]].Password = hash
				return nil
			})
			if err == nil {
				fmt.Fprintf(ue.stdout, "password of %s changed\n", args[0])
			}
			return err
		},
	}
	passwd.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of stdin")
	return passwd
}

func (ue *userEnv) delCommand() *cobra.Command {
	del := &cobra.Command{
		Use:   "del NAME",
		Short: "Remove a user (their home is kept)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, _, err := ue.open()
			if err != nil {
				return err
			}
			err = db.Update(func(users map[string]*execd.User) error {
				if users[args[0]] == nil {
					return fmt.Errorf("no user %s", args[0])
				}
				delete(users, args[0])
				return nil
			})
			if err == nil {
				fmt.Fprintf(ue.stdout, "removed user %s; their home was kept\n", args[0])
			}
			return err
		},
	}

	return del
}

func (ue *userEnv) checkCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Check the users database: every problem with its line",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := stateDir(ue.opts.stateDir)
			if err != nil {
				return err
			}
			path := filepath.Join(dir, execd.UsersFile)
			ps, err := execd.CheckUsers(path, ue.opts.defaultRunAs)
			if err != nil {
				return err
			}
			if len(ps) > 0 {
				fmt.Fprintln(ue.stdout, ps.Error())
				return exitWith(1)
			}
			fmt.Fprintf(ue.stdout, "%s: OK\n", path)
			return nil
		},
	}
}

func (ue *userEnv) listCommand() *cobra.Command {
	list := &cobra.Command{
		Use:   "list",
		Short: "List the users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, _, err := ue.open()
			if err != nil {
				return err
			}
			users, err := db.List()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(ue.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "USER\tKIND\tALLOW\tLOGIN\tUSED\tQUOTA\tHOME")
			for _, u := range users {
				var login []string
				if len(u.Keys) > 0 {
					login = append(login, fmt.Sprintf("%d key(s)", len(u.Keys)))
				}
				if u.Password != "" {
					login = append(login, "password")
				}
				quota := "-"
				if u.Quota > 0 {
					quota = u.Quota.String()
				}
				used := "?"
				if n, err := execd.HomeUsage(u.Home); u.Home != "" && err == nil {
					used = units.Bytes(uint64(n), "")
				}
				acc := execd.AccessOf(u, ue.opts.defaultRunAs)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.Name, kindOf(acc), strings.Join(u.Allow, ","), strings.Join(login, "+"), used, quota, acc.Home)
			}
			return tw.Flush()
		},
	}
	return list
}

// kindOf is a user's kind in one word or two: "confined", "as ACCOUNT",
// or "no account".
func kindOf(acc execd.Access) string {
	switch {
	case acc.Confined:
		return "confined"
	case acc.Account != "":
		return "as " + acc.Account
	}
	return "no account"
}

// describeAccess says what a user logs in as, for add and set.
func describeAccess(acc execd.Access) string {
	switch {
	case acc.Confined:
		return "confined to " + acc.Home
	case acc.Account != "":
		return fmt.Sprintf("acts as the account %s, home %s", acc.Account, acc.Home)
	}
	return "no account to act as"
}

func (ue *userEnv) showCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a user: confined or acting as an account, home, shell, permissions, limits",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, _, err := ue.open()
			if err != nil {
				return err
			}
			u, ok := db.Lookup(args[0])
			if !ok {
				return fmt.Errorf("no user %s", args[0])
			}
			acc := execd.AccessOf(u, ue.opts.defaultRunAs)
			tw := tabwriter.NewWriter(ue.stdout, 0, 4, 2, ' ', 0)
			row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
			row("user", u.Name)
			if acc.Confined {
				row("kind", "confined: file operations inside the home, paths relative to it (~)")
			} else {
				row("kind", "account: the machine as its account sees it, absolute paths, the kernel's rights")
			}
			row("account", orDash(acc.Account))
			row("home", acc.Home)
			row("shell", orDash(acc.Shell))
			row("allow", strings.Join(u.Allow, ","))
			row("keys", fmt.Sprint(len(u.Keys)))
			row("password", map[bool]string{true: "yes", false: "no"}[u.Password != ""])
			if u.Quota > 0 {
				row("quota", u.Quota.String())
			}
			if acc.Problem != "" {
				row("problem", acc.Problem)
			}
			return tw.Flush()
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
