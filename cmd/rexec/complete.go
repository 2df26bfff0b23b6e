package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/execd-project/execd/frame"
)

// completionTimeout bounds a remote completion: a Tab never hangs.
const completionTimeout = 3 * time.Second

// remotePaths completes HOST:PATH arguments of get and put with the
// remote directory's entries, as scp's completion does: it logs in with
// keys only (never asking for a secret), to a daemon already pinned, and
// lists the directory the path names so far. Anything else completes as
// local files.
func remotePaths(ctx context.Context, tf *transferFlags, e env) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		host, p, ok := splitRemote(toComplete)
		if !ok || host == "" {
			return nil, cobra.ShellCompDirectiveDefault
		}
		ctx, cancel := context.WithTimeout(ctx, completionTimeout)
		defer cancel()
		tf.batch, tf.strictHostKey, tf.quiet = true, true, true
		tf.connectTimeout = completionTimeout
		client, err := tf.dial(ctx, host, e)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer func() { _ = client.Close() }() // best effort
		fsys, err := client.OpenFS(ctx, "")
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		dir, prefix := "", p
		if i := strings.LastIndexByte(p, '/'); i >= 0 {
			dir, prefix = p[:i+1], p[i+1:]
		}
		list := dir
		if list == "" {
			list = "~"
		}
		entries, err := fsys.ReadDir(ctx, list)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, en := range entries {
			if !strings.HasPrefix(en.Name, prefix) || (strings.HasPrefix(en.Name, ".") && !strings.HasPrefix(prefix, ".")) {
				continue
			}
			c := host + ":" + dir + en.Name // as typed so far, for the shell to match
			if en.Type == frame.FileDir {
				c += "/"
			}
			out = append(out, c)
		}
		return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
	}
}
