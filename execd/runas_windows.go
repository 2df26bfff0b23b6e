package execd

import (
	"fmt"
	"os"

	"github.com/execd-project/execd/internal/proc"
)

// runAs: commands on Windows run as the daemon's account; a user with a
// run_as account cannot run commands there.
func runAs(name string) (*proc.Credential, error) {
	if name == "" {
		return nil, nil
	}
	return nil, fmt.Errorf("run_as %q: not supported on Windows (commands run as the daemon's account)", name)
}

// giveTo does nothing on Windows: files belong to the daemon's account.
func giveTo(*os.Root, string, string) error { return nil }
