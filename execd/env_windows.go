package execd

import (
	"os"

	"github.com/execd-project/execd/internal/asuser"
	"github.com/execd-project/execd/internal/proc"
)

// platformEnv is the base of every command's environment: the daemon's
// own (the account's profile), less the variables of its start.
func platformEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if len(kv) > 0 && kv[0] != '=' { // cmd.exe's per-drive directories
			env = append(env, kv)
		}
	}
	return env
}

func credential(*asuser.Cred) *proc.Credential { return nil }
