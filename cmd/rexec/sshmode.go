package main

import (
	"bufio"
	"context"

	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/execd-project/execd/cmd/internal/buildinfo"
	"github.com/execd-project/execd/cmd/rexec/internal/inventory"
	"github.com/execd-project/execd/internal/userkey"
)

// The ssh-compatible mode: rexec called as "ssh" (a link), as "rexec
// --ssh", or for a host whose config entry says ssh = true, takes
// OpenSSH's command line, so that git, rsync, Ansible and pdsh can use it
// where they would run ssh. The remote command is what sshd would run:
// the words joined with single spaces, handed to the remote shell
// (sh -c); no command means a login shell.

// sshOptstring is OpenSSH's getopt string: which letters take a value.
const sshOptstring = "1246ab:c:e:fgi:kl:m:no:p:qstvxAB:CD:E:F:GI:J:KL:MNO:P:Q:R:S:TVw:W:XYy"

// sshTakesValue reports whether ssh's option letter c takes a value, and
// whether it is an option at all.
func sshTakesValue(c byte) (value, known bool) {
	i := strings.IndexByte(sshOptstring, c)
	if i < 0 || c == ':' {
		return false, false
	}
	return i+1 < len(sshOptstring) && sshOptstring[i+1] == ':', true
}

// sshCall is an ssh command line, parsed.
type sshCall struct {
	host    string   // as given, USER@ and ssh:// taken off
	user    string   // from USER@HOST or ssh://USER@HOST (also in opts)
	port    int      // from ssh://HOST:PORT (also in opts)
	command []string // the words after the host
	opts    []sshOpt // in the order given: the first value of a key wins
	ttys    int      // -t count
	noTTY   bool     // -T
	noStdin bool     // -n
	quiet   bool     // -q
	verbose int      // -v count
	printG  bool     // -G
	version bool     // -V
	config  string   // -F
}

// sshOpt is one setting, from a flag (-p, -l, -i...) or -o Key=Value.
type sshOpt struct {
	key, value string // key lower-case
}

// sshUsageError is a command line ssh would refuse; it exits 255, as ssh.
type sshUsageError struct{ msg string }

func (e *sshUsageError) Error() string { return e.msg }

func sshUsagef(format string, args ...any) error {
	return &sshUsageError{fmt.Sprintf(format, args...)}
}

// parseSSH reads an ssh command line as OpenSSH does: options, the host,
// more options, then the command from the first word that is not one.
func parseSSH(args []string) (*sshCall, error) {
	c := &sshCall{}
	hostSeen := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			if !hostSeen && i < len(args) {
				if err := c.setHost(args[i]); err != nil {
					return nil, err
				}
				hostSeen = true
				i++
			}
			c.command = args[min(i, len(args)):]
			break
		}
		if len(a) < 2 || a[0] != '-' {
			if hostSeen {
				c.command = args[i:]
				break
			}
			if err := c.setHost(a); err != nil {
				return nil, err
			}
			hostSeen = true
			continue
		}
		for j := 1; j < len(a); j++ {
			letter := a[j]
			takes, known := sshTakesValue(letter)
			if !known {
				return nil, sshUsagef("unknown option -- %c", letter)
			}
			if !takes {
				c.flag(letter)
				continue
			}
			value := a[j+1:]
			if value == "" {
				i++
				if i >= len(args) {
					return nil, sshUsagef("option requires an argument -- %c", letter)
				}
				value = args[i]
			}
			if err := c.valued(letter, value); err != nil {
				return nil, err
			}
			break
		}
	}
	if !hostSeen && !c.version {
		return nil, sshUsagef("a HOST is needed: usage: ssh [options] [user@]hostname [command [argument ...]]")
	}
	return c, nil
}

// setHost takes [USER@]HOST or ssh://[USER@]HOST[:PORT].
func (c *sshCall) setHost(h string) error {
	if rest, ok := strings.CutPrefix(h, "ssh://"); ok {
		rest = strings.TrimSuffix(rest, "/")
		if strings.Contains(rest, "/") {
			return sshUsagef("bad ssh:// address %q: no path is allowed", h)
		}
		c.user, rest = splitUser(rest)
		host, port := rest, ""
		if strings.HasPrefix(rest, "[") {
			if end := strings.Index(rest, "]"); end > 0 {
				host, port = rest[1:end], strings.TrimPrefix(rest[end+1:], ":")
			}
		} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
			host, port = rest[:i], rest[i+1:]
		}
		if port != "" {
			n, err := strconv.Atoi(port)
			if err != nil || n <= 0 || n > 65535 {
				return sshUsagef("bad port in %q", h)
			}
			c.port = n
		}
		h = host
	} else {
		c.user, h = splitUser(h)
	}
	if h == "" {
		return sshUsagef("no host in %q", h)
	}
	c.host = h
	// As settings at this place in the command line: the first value
	// wins, so "-l bob alice@lab1" logs in as bob, as with ssh.
	if c.user != "" {
		c.opts = append(c.opts, sshOpt{"user", c.user})
	}
	if c.port != 0 {
		c.opts = append(c.opts, sshOpt{"port", strconv.Itoa(c.port)})
	}
	return nil
}

// flag takes a letter without a value.
func (c *sshCall) flag(letter byte) {
	switch letter {
	case 't':
		c.ttys++
	case 'T':
		c.noTTY = true
	case 'n':
		c.noStdin = true
	case 'q':
		c.quiet = true
	case 'v':
		c.verbose++
	case 'G':
		c.printG = true
	case 'V':
		c.version = true
	case '4':
		c.opts = append(c.opts, sshOpt{"addressfamily", "inet"})
	case '6':
		c.opts = append(c.opts, sshOpt{"addressfamily", "inet6"})
	case 's':
		c.opts = append(c.opts, sshOpt{"subsystem", "yes"})
	case 'f':
		c.opts = append(c.opts, sshOpt{"forkafterauthentication", "yes"})
	case 'N':
		c.opts = append(c.opts, sshOpt{"sessiontype", "none"})
	}
	// 1 2 a A C g k K M x X Y y: agent and X11 forwarding, compression,
	// GSSAPI, master mode, protocol versions: nothing to do here.
}

// valued takes a letter with its value.
func (c *sshCall) valued(letter byte, v string) error {
	switch letter {
	case 'o':
		o, err := parseSSHOption(v)
		if err != nil {
			return err
		}
		c.opts = append(c.opts, o)
	case 'p':
		c.opts = append(c.opts, sshOpt{"port", v})
	case 'l':
		c.opts = append(c.opts, sshOpt{"user", v})
	case 'i':
		c.opts = append(c.opts, sshOpt{"identityfile", v})
	case 'F':
		c.config = v
	case 'L', 'R', 'D':
		c.opts = append(c.opts, sshOpt{"forward", "-" + string(letter) + " " + v})
	case 'W':
		c.opts = append(c.opts, sshOpt{"forward", "-W " + v})
	case 'J':
		c.opts = append(c.opts, sshOpt{"proxyjump", v})
	case 'O':
		c.opts = append(c.opts, sshOpt{"controlcommand", v})
	case 'w':
		c.opts = append(c.opts, sshOpt{"tunnel", v})
	case 'E':
		c.opts = append(c.opts, sshOpt{"logfile", v})
	}
	// b (bind address), c (ciphers), m (MACs), e (escape character),
	// I (PKCS#11), P (tag), Q (query), S (control path), B (bind
	// interface): taken, with no meaning here.
	return nil
}

// parseSSHOption reads one -o argument or config line: "Key=Value",
// "Key Value" or "Key = Value", a value possibly in double quotes.
func parseSSHOption(s string) (sshOpt, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexAny(s, "= \t")
	if i <= 0 {
		return sshOpt{}, sshUsagef("bad option %q: want Key=Value", s)
	}
	key := strings.ToLower(s[:i])
	v := strings.TrimLeft(s[i:], " \t")
	v = strings.TrimPrefix(v, "=")
	v = strings.TrimSpace(v)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if _, known := sshKeys[key]; !known {
		return sshOpt{}, sshUsagef("Bad configuration option: %s", s[:i])
	}
	return sshOpt{key, v}, nil
}

// sshKeys are the settings rexec knows. true: honoured; false: accepted
// and without meaning for execd (connection sharing, compression,
// forwarding of agents and X11, ciphers, GSSAPI...).
var sshKeys = map[string]bool{
	"port": true, "user": true, "hostname": true, "identityfile": true,
	"connecttimeout": true, "serveraliveinterval": true, "serveralivecountmax": true,
	"stricthostkeychecking": true, "batchmode": true, "sendenv": true, "setenv": true,
	"requesttty": true, "loglevel": true, "passwordauthentication": true,
	"pubkeyauthentication": true, "identitiesonly": true, "identityagent": true,
	"addressfamily": true, "userknownhostsfile": true, "proxyjump": true,
	"proxycommand": true, "localforward": true, "remoteforward": true,
	"dynamicforward": true, "sessiontype": true, "forkafterauthentication": true,

	"controlmaster": false, "controlpath": false, "controlpersist": false,
	"compression": false, "forwardagent": false, "forwardx11": false,
	"forwardx11trusted": false, "preferredauthentications": false,
	"kbdinteractiveauthentication": false, "challengeresponseauthentication": false,
	"gssapiauthentication": false, "gssapidelegatecredentials": false,
	"hostbasedauthentication": false, "hostkeyalgorithms": false, "ciphers": false,
	"macs": false, "kexalgorithms": false, "pubkeyacceptedkeytypes": false,
	"pubkeyacceptedalgorithms": false, "tcpkeepalive": false, "connectionattempts": false,
	"updatehostkeys": false, "hashknownhosts": false, "checkhostip": false,
	"visualhostkey": false, "addkeystoagent": false, "escapechar": false,
	"numberofpasswordprompts": false, "globalknownhostsfile": false, "ipqos": false,
	"exitonforwardfailure": false, "clearallforwardings": false, "usekeychain": false,
	"tunnel": false, "tunneldevice": false, "forwardx11timeout": false,
	"verifyhostkeydns": false, "canonicalizehostname": false, "rekeylimit": false,
	"streamlocalbindunlink": false, "permitlocalcommand": false, "localcommand": false,
	"logverbose": false, "syslogfacility": false, "bindaddress": false,
	"bindinterface": false, "nohostauthenticationforlocalhost": false,
	"hostkeyalias": false, "fingerprinthash": false, "enableescapecommandline": false,
	"obscurekeystroketiming": false, "stdinnull": false, "certificatefile": false,
	"pkcs11provider": false, "securitykeyprovider": false, "xauthlocation": false,
	"gatewayports": false, "requiredrsasize": false, "channeltimeout": false,
	"protocol": false, "casignaturealgorithms": false, "revokedhostkeys": false,
	"host": false, "match": false, "include": false,
}

// sshSettings are the settings of one call, resolved: the first value of
// each key (command line, then the -F file), all values of the lists.
type sshSettings struct {
	first map[string]string
	lists map[string][]string // identityfile, sendenv, setenv
}

func (s *sshSettings) add(o sshOpt) {
	switch o.key {
	case "identityfile", "sendenv", "setenv", "forward", "localforward", "remoteforward", "dynamicforward":
		s.lists[o.key] = append(s.lists[o.key], o.value)
		return
	}
	if _, ok := s.first[o.key]; !ok {
		s.first[o.key] = o.value
	}
}

func (s *sshSettings) get(key string) string { return s.first[key] }

// parseSSHYes reads an ssh option's yes or no.
func parseSSHYes(key, v string) (bool, error) {
	switch v := strings.ToLower(v); v {
	case "yes", "true":
		return true, nil
	case "no", "false":
		return false, nil
	default:
		return false, sshUsagef("%s: want yes or no, got %q", key, v)
	}
}

// readSSHConfig applies the blocks of an ssh_config file that match host
// (Host patterns with * ? and !); Match blocks are taken as not matching.
func readSSHConfig(file, host string, add func(sshOpt)) error {
	f, err := os.Open(file)
	if err != nil {
		return sshUsagef("Can't open user config file %s: %v", file, errors.Unwrap(err))
	}
	defer func() { _ = f.Close() }() // read only
	sc := bufio.NewScanner(f)
	applies := true
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		o, err := parseSSHOption(line)
		if err != nil {
			return sshUsagef("%s line %d: %v", file, n, err)
		}
		switch o.key {
		case "host":
			applies = hostMatches(strings.Fields(o.value), host)
		case "match":
			applies = strings.EqualFold(strings.TrimSpace(o.value), "all")
		case "include":
			return sshUsagef("%s line %d: Include is not supported", file, n)
		default:
			if applies {
				add(o)
			}
		}
	}
	return sc.Err()
}

// hostMatches applies ssh's Host patterns: any positive match and no
// negated one.
func hostMatches(patterns []string, host string) bool {
	matched := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		ok, _ := path.Match(strings.ToLower(strings.TrimPrefix(p, "!")), strings.ToLower(host))
		if ok && neg {
			return false
		}
		matched = matched || ok
	}
	return matched
}

// sshEnvs expands SendEnv patterns against the local environment and adds
// SetEnv's KEY=VALUE, as -e entries.
func sshEnvs(st *sshSettings, environ []string) ([]string, error) {
	var envs []string
	for _, pats := range st.lists["sendenv"] {
		for _, p := range strings.Fields(pats) {
			for _, kv := range environ {
				k, _, _ := strings.Cut(kv, "=")
				if ok, _ := path.Match(p, k); ok && k != "" {
					envs = append(envs, kv)
				}
			}
		}
	}
	for _, kvs := range st.lists["setenv"] {
		for _, kv := range strings.Fields(kvs) {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				return nil, sshUsagef("SetEnv wants KEY=VALUE, got %q", kv)
			}
			envs = append(envs, kv)
		}
	}
	return envs, nil
}

// runSSH runs rexec in the ssh-compatible mode. Its exit status is the
// remote command's, or 255 for any failure of its own, as ssh's.
func runSSH(ctx context.Context, args []string, e env) error {
	c, err := parseSSH(args)
	if err != nil {
		return fail(exitTransport, "%v", err)
	}
	if c.version {
		fmt.Fprintf(e.stderr, "rexec %s, in the manner of OpenSSH's ssh (execd protocol)\n", buildinfo.Read().Long())
		return nil
	}
	st := &sshSettings{first: map[string]string{}, lists: map[string][]string{}}
	for _, o := range c.opts {
		st.add(o)
	}
	if c.config != "" && c.config != "none" {
		if err := readSSHConfig(expandTilde(c.config, e.getenv), c.host, st.add); err != nil {
			return fail(exitTransport, "%v", err)
		}
	}
	opts, err := sshOptions(c, st, e)
	if err != nil {
		return fail(exitTransport, "%v", err)
	}
	host := c.host
	if hn := st.get("hostname"); hn != "" {
		host = hn
	}
	if c.printG {
		return printSSHConfig(c, st, opts, host, e)
	}
	if err := sshRefusals(c, st); err != nil {
		return fail(exitTransport, "%v", err)
	}
	argv := []string{host}
	if len(c.command) > 0 {
		// sshd's way: the words joined by single spaces, run by the shell.
		argv = append(argv, strings.Join(c.command, " "))
		opts.shell = true
	}
	return remote(ctx, opts, argv, e)
}

// sshOptions turns the settings into rexec's options.
func sshOptions(c *sshCall, st *sshSettings, e env) (*options, error) {
	opts := &options{framing: "on", recvBuffer: 1024}
	cf := &opts.connFlags
	cf.sshMode = true
	cf.connectTimeout = 10 * time.Second
	cf.quiet = c.quiet || slices.Contains([]string{"quiet", "fatal", "error"}, strings.ToLower(st.get("loglevel")))
	cf.verbose = c.verbose > 0 || strings.HasPrefix(strings.ToLower(st.get("loglevel")), "debug")
	cf.lenientKeys = true
	cf.user = st.get("user")
	for _, o := range sshConnOptions {
		if v := st.get(o.name); v != "" {
			if err := o.apply(cf, v, e); err != nil {
				return nil, err
			}
		}
	}
	for _, p := range st.lists["identityfile"] {
		cf.identities = append(cf.identities, expandTilde(p, e.getenv))
	}
	if err := sshPty(c, st, opts, e); err != nil {
		return nil, err
	}
	opts.noStdin = c.noStdin
	var err error
	if opts.envs, err = sshEnvs(st, e.environ()); err != nil {
		return nil, err
	}
	return opts, nil
}

// sshConnOptions is every ssh option rexec applies to its connection, by
// its name in lower case, each applied to the first value given (never
// empty).
var sshConnOptions = []struct {
	name  string
	apply func(cf *connFlags, v string, e env) error
}{
	{"port", func(cf *connFlags, v string, _ env) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 65535 {
			return sshUsagef("Bad port '%s'", v)
		}
		cf.port = n
		return nil
	}},
	{"connecttimeout", func(cf *connFlags, v string, _ env) error {
		if v == "none" {
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return sshUsagef("ConnectTimeout: want seconds, got %q", v)
		}
		if n > 0 {
			cf.connectTimeout = time.Duration(n) * time.Second
		}
		return nil
	}},
	{"serveraliveinterval", func(cf *connFlags, v string, _ env) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return sshUsagef("ServerAliveInterval: want seconds, got %q", v)
		}
		cf.keepAlive = time.Duration(n) * time.Second
		return nil
	}},
	{"serveralivecountmax", func(cf *connFlags, v string, _ env) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return sshUsagef("ServerAliveCountMax: want a number, got %q", v)
		}
		cf.keepAliveMax = n
		return nil
	}},
	{"stricthostkeychecking", func(cf *connFlags, v string, _ env) error {
		switch v := strings.ToLower(v); v {
		case "yes", "true":
			cf.strictHostKey = true
		case "ask", "accept-new", "no", "off", "false":
			// pin a new daemon; a changed identity is refused whatever this says
		default:
			return sshUsagef("StrictHostKeyChecking: unknown value %q", v)
		}
		return nil
	}},
	{"userknownhostsfile", func(cf *connFlags, v string, _ env) error {
		if v == "/dev/null" {
			cf.knownHosts = os.DevNull
		}
		return nil
	}},
	{"batchmode", sshYes("batchmode", func(cf *connFlags, yes bool) { cf.batch = yes })},
	{"passwordauthentication", sshYes("passwordauthentication", func(cf *connFlags, yes bool) { cf.noPassword = !yes })},
	{"pubkeyauthentication", sshYes("pubkeyauthentication", func(cf *connFlags, yes bool) { cf.noPubkey = !yes })},
	{"identitiesonly", sshYes("identitiesonly", func(cf *connFlags, yes bool) { cf.identitiesOnly = yes })},
	{"identityagent", func(cf *connFlags, v string, e env) error {
		if v != "SSH_AUTH_SOCK" && v != "$SSH_AUTH_SOCK" {
			cf.agentSock = expandTilde(v, e.getenv)
		}
		return nil
	}},
	{"addressfamily", func(cf *connFlags, v string, _ env) error {
		switch v := strings.ToLower(v); v {
		case "any":
		case "inet":
			cf.network = "tcp4"
		case "inet6":
			cf.network = "tcp6"
		default:
			return sshUsagef("AddressFamily: unknown value %q", v)
		}
		return nil
	}},
}

// sshYes is the ssh option key's yes or no, set by set.
func sshYes(key string, set func(cf *connFlags, yes bool)) func(cf *connFlags, v string, _ env) error {
	return func(cf *connFlags, v string, _ env) error {
		b, err := parseSSHYes(key, v)
		if err != nil {
			return err
		}
		set(cf, b)
		return nil
	}
}

// sshPty decides the pty as ssh does, from -t, -T and RequestTTY.
func sshPty(c *sshCall, st *sshSettings, opts *options, e env) error {
	_, stdinTTY := terminalFd(e.stdin)
	switch v := strings.ToLower(st.get("requesttty")); {
	case c.noTTY || v == "no":
		opts.noPty = true
	case c.ttys > 1 || v == "force":
		opts.forcePty = true
	case c.ttys == 1 || v == "yes":
		// as ssh: -t gives a pty when stdin is a terminal, -tt always
		if stdinTTY {
			opts.forcePty = true
		} else {
			opts.noPty = true
			if !opts.quiet {
				fmt.Fprintln(e.stderr, "Pseudo-terminal will not be allocated because stdin is not a terminal.")
			}
		}
	case v == "" || v == "auto":
	default:
		return sshUsagef("RequestTTY: unknown value %q", v)
	}
	return nil
}

// sshRefusals names what ssh would do and execd does not.
func sshRefusals(c *sshCall, st *sshSettings) error {
	if f := st.lists["forward"]; len(f) > 0 {
		return sshUsagef("port forwarding (%s) is not supported by execd", f[0])
	}
	for _, k := range []string{"localforward", "remoteforward", "dynamicforward"} {
		if len(st.lists[k]) > 0 {
			return sshUsagef("%s is not supported by execd", k)
		}
	}
	if v := st.get("proxyjump"); v != "" && v != "none" {
		return sshUsagef("ProxyJump/-J is not supported by execd")
	}
	if v := st.get("proxycommand"); v != "" && v != "none" {
		return sshUsagef("ProxyCommand is not supported by execd")
	}
	if st.get("subsystem") == "yes" {
		return sshUsagef("subsystems (-s, as sftp uses) are not served by execd: use 'rexec get', 'rexec put' or 'rexec sh'")
	}
	if v := st.get("controlcommand"); v != "" {
		return sshUsagef("-O %s: rexec keeps no master connection", v)
	}
	if st.get("forkafterauthentication") == "yes" {
		return sshUsagef("-f (go to the background) is not supported; run rexec with & or use --timeout")
	}
	if st.get("sessiontype") == "none" {
		return sshUsagef("-N (no command) means nothing without forwarding, which execd does not do")
	}
	return nil
}

// printSSHConfig is -G: the resolved settings in ssh's format, lower-case
// keys, one per line; git runs it to learn that this ssh takes -p and
// SendEnv.
func printSSHConfig(c *sshCall, st *sshSettings, opts *options, host string, e env) error {
	d, status, err := opts.newDialer(e)
	if err != nil {
		return fail(opts.status(status), "%v", err)
	}
	defer d.close()
	tgt, err := d.fc.Resolve(host, opts.port)
	if err != nil {
		return fail(exitTransport, "%v", err)
	}
	user, err := opts.loginUser("", tgt.User, e)
	if err != nil {
		return fail(exitTransport, "%v", err)
	}
	hostname, port, err := net.SplitHostPort(tgt.Addr)
	if err != nil {
		return fail(exitTransport, "%v", err)
	}
	var b strings.Builder
	line := func(k string, v any) { fmt.Fprintf(&b, "%s %v\n", k, v) }
	line("host", c.host)
	line("user", user)
	line("hostname", hostname)
	line("port", port)
	family := "any"
	switch opts.network {
	case "tcp4":
		family = "inet"
	case "tcp6":
		family = "inet6"
	}
	line("addressfamily", family)
	line("batchmode", yesNo(opts.batch))
	line("connecttimeout", int(opts.connectTimeout/time.Second))
	line("identitiesonly", yesNo(opts.identitiesOnly))
	line("passwordauthentication", yesNo(!opts.noPassword))
	line("pubkeyauthentication", yesNo(!opts.noPubkey))
	line("serveraliveinterval", int(opts.keepAlive/time.Second))
	line("serveralivecountmax", max(opts.keepAliveMax, 3))
	strict := "accept-new"
	if opts.strictHostKey {
		strict = "true"
	}
	line("stricthostkeychecking", strict)
	tty := "auto"
	switch {
	case opts.noPty:
		tty = "no"
	case opts.forcePty:
		tty = "force"
	}
	line("requesttty", tty)
	line("userknownhostsfile", d.kh.Path)
	files, _, _ := opts.keyFiles(e)
	for _, f := range files {
		line("identityfile", f)
	}
	for _, v := range st.lists["sendenv"] {
		line("sendenv", v)
	}
	for _, v := range st.lists["setenv"] {
		line("setenv", v)
	}
	_, _ = io.WriteString(e.stdout, b.String())
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// expandTilde expands a leading ~/ to $HOME, as ssh does for file names.
func expandTilde(p string, getenv func(string) string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home := homeDir(getenv); home != "" {
			return filepath.Join(home, rest)
		}
	}
	return p
}

// start runs rexec: in the ssh-compatible mode when sshInvocation says
// so, else with rexec's own command line.
func start(ctx context.Context, argv0 string, args []string, e env) error {
	if sshArgs, ok := sshInvocation(argv0, args, e.getenv); ok {
		return runSSH(ctx, sshArgs, e)
	}
	return run(ctx, args, e)
}

// sshInvocation decides whether a command line is for the ssh-compatible
// mode, and returns the arguments to parse as ssh's: rexec called as
// ssh, "rexec --ssh ARGS", or ARGS whose host (read as ssh reads it) has
// ssh = true in config.toml.
func sshInvocation(argv0 string, args []string, getenv func(string) string) ([]string, bool) {
	name := strings.TrimSuffix(filepath.Base(argv0), ".exe")
	if name == "ssh" {
		return args, true
	}
	if len(args) > 0 && args[0] == "--ssh" {
		return args[1:], true
	}
	c, err := parseSSH(args)
	if err != nil || c.host == "" {
		return args, false
	}
	cdir, err := userkey.ConfigDir(getenv)
	if err != nil {
		return args, false
	}
	fc, err := inventory.Load(filepath.Join(cdir, "config.toml"), false)
	if err != nil {
		return args, false
	}
	if h, ok := fc.Hosts[c.host]; ok && h.SSH {
		return args, true
	}
	return args, false
}
