//go:build unix

package execd

import (
	"github.com/execd-project/execd/internal/asuser"
	"github.com/execd-project/execd/internal/proc"
)

// platformEnv is the base of every command's environment: nothing.
func platformEnv() []string { return nil }

func credential(c *asuser.Cred) *proc.Credential {
	return &proc.Credential{Uid: c.Uid, Gid: c.Gid, Groups: c.Groups}
}
