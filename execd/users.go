package execd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/atomicfile"
	"github.com/execd-project/execd/internal/config"
	"github.com/execd-project/execd/internal/userkey"
)

// UsersFile is the users database's name in the state directory.
const UsersFile = "users.toml"

// Permissions a user may hold.
const (
	PermExec = "exec" // run commands
	PermGet  = "get"  // read files: get, list, stat, checksum
	PermPut  = "put"  // write files: put, mkdir, remove, rename, setattr, symlink
)

// AllPerms returns every permission, in the order they are shown.
func AllPerms() []string { return []string{PermExec, PermGet, PermPut} }

// User is one account of the daemon, as stored in the users database.
type User struct {
	// Name is the key of the user's table; it is not stored inside it.
	Name string `toml:"-"`
	// ID tells this user from an earlier one of the same name: Update
	// gives every user it adds a new random one. The user's detached jobs
	// belong to it, so a name deleted and added again reaches none of
	// them. Empty in databases written before IDs (those users keep "").
	ID string `toml:"id,omitempty"`
	// Password is the argon2id hash (PHC string); empty means no password login.
	Password string `toml:"password,omitempty"`
	// Keys are authorized-keys lines of the user's ed25519 public keys.
	Keys []string `toml:"keys,omitempty"`
	// Home is the absolute path of the user's directory: commands and
	// file sessions start there, and "~" names it. A confined user's file
	// operations are kept inside it; another's may be empty, meaning the
	// home of the account they act as.
	Home string `toml:"home,omitempty"`
	// Confine keeps the user in Home (os.Root, paths relative to it).
	// Unset: confined when the user may not run commands (see Confined).
	Confine *bool `toml:"confine,omitempty"`
	// Quota caps the size of the home tree; 0 means none.
	Quota Size `toml:"quota,omitempty"`
	// Allow lists the permissions: exec, get, put.
	Allow []string `toml:"allow"`
	// RunAs is the OS account the user's commands and file operations
	// run as when the daemon runs as root; empty means the daemon's
	// default-run-as, else the account of the user's own name (never root
	// unless named here).
	RunAs string `toml:"run_as,omitempty"`
	// MaxConns and MaxChannels cap the user's concurrent connections and
	// channels (over all connections); 0 means the server's limits.
	MaxConns    int `toml:"max_conns,omitempty"`
	MaxChannels int `toml:"max_channels,omitempty"`
	// CommandTimeout ends commands that run longer; a client may ask for
	// less, never more. 0 means none.
	CommandTimeout Duration `toml:"command_timeout,omitempty"`
}

// Can reports whether the user holds the permission.
func (u *User) Can(perm string) bool { return slices.Contains(u.Allow, perm) }

// PublicKeys parses the user's keys.
func (u *User) PublicKeys() ([]ed25519.PublicKey, error) {
	keys := make([]ed25519.PublicKey, 0, len(u.Keys))
	for i, line := range u.Keys {
		k, err := userkey.ParseAuthorized(line)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// Validate checks a user record.
func (u *User) Validate() error {
	if err := frame.ValidUser(u.Name); err != nil {
		return err
	}
	if u.Home != "" && !filepath.IsAbs(u.Home) {
		return fmt.Errorf("user %s: home %q must be an absolute path", u.Name, u.Home)
	}
	if u.Home == "" && u.Confined() {
		return fmt.Errorf("user %s: a confined user needs a home", u.Name)
	}
	for _, p := range u.Allow {
		if !slices.Contains(AllPerms(), p) {
			return fmt.Errorf("user %s: unknown permission %q (want exec, get or put)", u.Name, p)
		}
	}
	if u.Password != "" {
		if _, err := parsePHC(u.Password); err != nil {
			return fmt.Errorf("user %s: %w", u.Name, err)
		}
	}
	if _, err := u.PublicKeys(); err != nil {
		return fmt.Errorf("user %s: %w", u.Name, err)
	}
	if u.Quota < 0 || u.MaxConns < 0 || u.MaxChannels < 0 || u.CommandTimeout < 0 {
		return fmt.Errorf("user %s: negative limit", u.Name)
	}
	return nil
}

// usersFile is the TOML layout.
type usersFile struct {
	Users map[string]*User `toml:"users"`
}

// UserDB is the users database: a TOML file read when it changes on disk,
// so that "execd user" edits take effect at the next login without a
// restart. It is safe for concurrent use.
type UserDB struct {
	path string

	mu    sync.Mutex
	users map[string]*User
	stamp fileStamp
	gen   uint64 // counts the reads that changed users
	err   error  // the last reload's failure; the previous users stay in force
}

type fileStamp struct {
	mtime time.Time
	size  int64
}

// OpenUsers reads the users database at path; a missing file is an empty
// database (Exists reports false).
func OpenUsers(path string) (*UserDB, error) {
	db := &UserDB{path: path, users: map[string]*User{}}
	if err := db.reload(true); err != nil {
		return nil, err
	}
	return db, nil
}

// Path is the database file.
func (db *UserDB) Path() string { return db.path }

// Exists reports whether the database file exists.
func (db *UserDB) Exists() bool {
	_, err := os.Stat(db.path)
	return err == nil
}

func readUsers(path string) (map[string]*User, fileStamp, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*User{}, fileStamp{}, nil
	}
	if err != nil {
		return nil, fileStamp{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fileStamp{}, err
	}
	if why := config.Unsafe(fi); why != "" {
		return nil, fileStamp{}, fmt.Errorf("%s: %s", path, why)
	}
	var f usersFile
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&f)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fileStamp{}, fmt.Errorf("%s: unknown setting %q", path, und[0].String())
	}
	users := make(map[string]*User, len(f.Users))
	for name, u := range f.Users {
		if u == nil {
			continue
		}
		u.Name = name
		if err := u.Validate(); err != nil {
			return nil, fileStamp{}, fmt.Errorf("%s: %w", path, err)
		}
		users[name] = u
	}
	return users, fileStamp{mtime: fi.ModTime(), size: fi.Size()}, nil
}

// reload rereads the file if it changed since the last read.
func (db *UserDB) reload(force bool) error {
	fi, err := os.Stat(db.path)
	var st fileStamp
	if err == nil {
		st = fileStamp{mtime: fi.ModTime(), size: fi.Size()}
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if !force && st == db.stamp {
		return db.err
	}
	users, st, err := readUsers(db.path)
	if err != nil {
		db.err = err
		return err
	}
	db.users, db.stamp, db.err = users, st, nil
	db.gen++
	return nil
}

// generation counts the reads of the file that put users in force: a
// server compares it to the one it last applied to open connections.
func (db *UserDB) generation() uint64 {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.gen
}

// refresh reads the file again if it changed on disk (a stat), as
// Lookup does.
func (db *UserDB) refresh() { _ = db.reload(false) } // on failure the last good users stay in force

// current returns a copy of the named user as in force now, without
// looking at the file, and the generation it belongs to.
func (db *UserDB) current(name string) (User, bool, uint64) {
	db.mu.Lock()
	defer db.mu.Unlock()
	u, ok := db.users[name]
	if !ok {
		return User{}, false, db.gen
	}
	return cloneUser(u), true, db.gen
}

// Reload reads the file again now, changed or not (SIGHUP). On failure
// the last good users stay in force and the error says why.
func (db *UserDB) Reload() error { return db.reload(true) }

// Lookup returns a copy of the named user, reading the file again if it
// changed. A file that became invalid keeps the previous users in force.
func (db *UserDB) Lookup(name string) (User, bool) {
	db.refresh()
	u, ok, _ := db.current(name)
	return u, ok
}

// Err is why the file could not be read the last time it changed; nil when
// the users in force are the file's.
func (db *UserDB) Err() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.err
}

func cloneUser(u *User) User {
	c := *u
	c.Keys = slices.Clone(u.Keys)
	c.Allow = slices.Clone(u.Allow)
	if u.Confine != nil {
		c.Confine = ptr(*u.Confine)
	}
	return c
}

// List returns every user, sorted by name.
func (db *UserDB) List() ([]User, error) {
	if err := db.reload(false); err != nil {
		return nil, err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	out := make([]User, 0, len(db.users))
	for _, u := range db.users {
		out = append(out, cloneUser(u))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Update reads the file afresh, lets fn change the users, validates them
// and writes the file atomically (mode 0600), all under a lock, so that
// two edits at once both land.
func (db *UserDB) Update(fn func(users map[string]*User) error) error {
	if err := os.MkdirAll(filepath.Dir(db.path), 0o700); err != nil {
		return err
	}
	unlock, err := lockFile(db.path + ".lock")
	if err != nil {
		return fmt.Errorf("lock the users database: %w", err)
	}
	defer unlock()
	users, _, err := readUsers(db.path)
	if err != nil {
		return err
	}
	ids := make(map[string]string, len(users))
	for name, u := range users {
		ids[name] = u.ID
	}
	if err := fn(users); err != nil {
		return err
	}
	for name, u := range users {
		u.Name = name
		if id, had := ids[name]; had {
			u.ID = id // an edit never makes a user someone else
		} else if u.ID == "" {
			u.ID = newUserID()
		}
		if err := u.Validate(); err != nil {
			return err
		}
	}
	b, err := encodeUsers(users)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(db.path, b, 0o600); err != nil {
		return err
	}
	return db.reload(true)
}

// newUserID is a user's ID: 64 random bits, in hex.
func newUserID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return hex.EncodeToString(b[:])
}

func encodeUsers(users map[string]*User) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# execd users database. Manage it with \"execd user add|set|passwd|del|list\";\n")
	buf.WriteString("# hand edits are read at the next login or channel, at once on SIGHUP.\n# Passwords are argon2id hashes; an id tells a user from an earlier one of the name.\n")
	if err := toml.NewEncoder(&buf).Encode(usersFile{Users: users}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Size is a byte count written for people: "2GiB", "500MiB", "10GB", "1024".
type Size int64

// ParseSize reads a size: a number with an optional unit B, K/KiB, M/MiB,
// G/GiB, T/TiB (powers of 1024) or KB, MB, GB, TB (powers of 1000).
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	mult := map[string]float64{
		"": 1, "B": 1,
		"K": 1 << 10, "KiB": 1 << 10, "KB": 1e3,
		"M": 1 << 20, "MiB": 1 << 20, "MB": 1e6,
		"G": 1 << 30, "GiB": 1 << 30, "GB": 1e9,
		"T": 1 << 40, "TiB": 1 << 40, "TB": 1e12,
	}
	m, ok := mult[unit]
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || f < 0 || f*m > 1<<62 {
		return 0, fmt.Errorf("bad size %q (want for example 2GiB, 500MiB, 10GB or 0 for none)", s)
	}
	return Size(f * m), nil
}

// String formats the size with a binary unit when it is a whole multiple.
func (s Size) String() string {
	for _, u := range []struct {
		name string
		n    int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if int64(s) >= u.n && int64(s)%u.n == 0 {
			return strconv.FormatInt(int64(s)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	*s = v
	return err
}

// Duration is a time.Duration written as "90s", "1h".
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q (want for example 90s or 1h)", b)
	}
	*d = Duration(v)
	return nil
}
