package main

import (
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"
)

// The flags every command that connects shares, and what a command
// needs from the process.

// env is what run needs from the process: streams, signals, environment.
type env struct {
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	signals <-chan os.Signal
	getenv  func(string) string
	listEnv func() []string // the whole environment; nil: os.Environ
	exe     string          // this program, to start control masters with; "": none are started
}

// environ lists the environment as KEY=VALUE.
func (e env) environ() []string {
	if e.listEnv == nil {
		return os.Environ()
	}
	return e.listEnv()
}

// connFlags are the flags of every command that connects to a daemon.
type connFlags struct {
	port           int
	connectTimeout time.Duration
	plaintext      bool
	strictHostKey  bool
	configPath     string
	knownHosts     string
	verbose        bool
	user           string
	identities     []string
	trace          bool
	traceFile      string
	control        string          // --control: auto, no, check, exit ("": $REXEC_CONTROL, else auto)
	controlPersist time.Duration   // how long a master stays with no client
	typed          *typedPasswords // passwords typed so far, for reconnections

	// Set by ssh's options (see sshmode.go); rexec's flags leave them zero.
	quiet          bool          // -q: no notes on stderr
	batch          bool          // BatchMode: never ask for a secret
	noPassword     bool          // PasswordAuthentication=no
	noPubkey       bool          // PubkeyAuthentication=no
	identitiesOnly bool          // IdentitiesOnly: only the agent's copies of the -i keys
	lenientKeys    bool          // an unreadable -i key is a warning, as in ssh
	agentSock      string        // IdentityAgent: the agent's socket, or "none"
	network        string        // -4, -6: tcp4 or tcp6
	keepAlive      time.Duration // ServerAliveInterval
	keepAliveMax   int           // ServerAliveCountMax
	sshMode        bool          // rexec's own failures exit 255, usage errors too
}

// status maps a status of rexec's own: a usage error is cf.usage().
func (cf *connFlags) status(st int) int {
	if st == exitUsage {
		return cf.usage()
	}
	return st
}

// usage is the exit status of a usage error: 2, or 255 in ssh mode, where
// every failure of rexec's own is 255 and a remote 2 stays 2.
func (cf *connFlags) usage() int {
	if cf.sshMode {
		return exitTransport
	}
	return exitUsage
}

// register defines the connection flags on f.
func (cf *connFlags) register(f *pflag.FlagSet) {
	f.IntVarP(&cf.port, "port", "p", 0, "port of the daemon (default 7022)")
	f.DurationVar(&cf.connectTimeout, "connect-timeout", 10*time.Second, "time limit for connecting and the handshakes")
	f.BoolVar(&cf.plaintext, "plaintext", false, "connect without TLS (the daemon must run with --insecure-plaintext)")
	f.BoolVar(&cf.strictHostKey, "strict-host-key", false, "refuse daemons whose identity is not pinned yet")
	f.StringVarP(&cf.configPath, "config", "F", "", "config file (default $XDG_CONFIG_HOME/rexec/config.toml)")
	f.StringVar(&cf.knownHosts, "known-hosts", "", "known hosts file (default $XDG_CONFIG_HOME/rexec/known_hosts)")
	f.BoolVarP(&cf.verbose, "verbose", "v", false, "log connection details to stderr")
	f.StringVarP(&cf.user, "login", "l", "", "user to log in as (default: USER@ in HOST, the config file, then the local user)")
	f.StringArrayVarP(&cf.identities, "identity", "i", nil, "private key file, repeatable (default $XDG_CONFIG_HOME/rexec/id_ed25519 when it exists, else ~/.ssh/id_ed25519; then the keys of ssh-agent)")
	f.BoolVar(&cf.trace, "trace", false, "print every frame sent and received on stderr (passwords masked)")
	f.StringVar(&cf.traceFile, "trace-file", "", "append every frame sent and received to this file as JSON lines")
	f.DurationVar(&cf.keepAlive, "keepalive", 15*time.Second, "ping the daemon this often; three pings unanswered end the connection, so that a network that died in silence is noticed (and the command resumed); 0: never")
	f.StringVar(&cf.control, "control", "", "share one connection per host between invocations, as ssh's ControlMaster: auto (the default, or $REXEC_CONTROL), no; check or exit act on HOST's master")
	f.DurationVar(&cf.controlPersist, "control-persist", 10*time.Minute, "how long a control master stays with no client (0: until its last client leaves)")
}
