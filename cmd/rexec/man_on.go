//go:build manpage

package main

import (
	"github.com/spf13/cobra"

	"github.com/execd-project/execd/cmd/internal/manpage"
)

// manCommand is the hidden __man DIR, in the build that writes the man
// pages (make man: go build -tags manpage).
func manCommand() *cobra.Command {
	return manpage.Command(
		manpage.Section{Title: "ENVIRONMENT", Items: [][2]string{
			{"REXEC_PASSWORD", "the password for a password login, for scripts: rexec asks on the terminal otherwise. It is never sent anywhere but the daemon, inside TLS."},
			{"REXEC_CONTROL", "no: connect by itself, sharing no connection (as --control no)."},
			{"USER", "the login name when neither USER@HOST, -l nor the config file gives one."},
			{"XDG_CONFIG_HOME", "rexec's directory is $XDG_CONFIG_HOME/rexec (else ~/.config/rexec): config.toml, known_hosts, id_ed25519."},
			{"XDG_RUNTIME_DIR", "where the sockets of connection-sharing masters are."},
			{"SSH_AUTH_SOCK", "an ssh-agent whose ed25519 keys rexec tries to log in with."},
			{"SSH_ASKPASS, SSH_ASKPASS_REQUIRE, DISPLAY", "ask for passphrases and passwords with a program, as ssh does."},
			{"LANG, LC_*", "sent with every command, as ssh's SendEnv LANG LC_* (-e sets others)."},
			{"TERM", "sent with -t for the remote pty."},
			{"NO_COLOR", "no colours in rexec's own output."},
		}},
		manpage.Section{Title: "FILES", Items: [][2]string{
			{"~/.config/rexec/config.toml", "host aliases, groups and defaults."},
			{"~/.config/rexec/known_hosts", "the daemons' pinned identities."},
			{"~/.config/rexec/id_ed25519", "the key rexec logs in with (rexec keygen)."},
		}},
		manpage.Section{Title: "EXIT STATUS", Items: [][2]string{
			{"0-125", "the remote command's status."},
			{"126, 127", "the command could not be run (127: not found, or refused)."},
			{"128+N", "signal N ended the remote command (143 for TERM)."},
			{"1", "get, put: some files failed, one line each."},
			{"2", "a usage error."},
			{"255", "the connection, TLS, the daemon's identity, the login or the protocol failed."},
		}},
	)
}
