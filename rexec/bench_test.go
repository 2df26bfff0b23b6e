package rexec_test

import (
	"fmt"
	"io"
	"testing"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/internal/daemontest"
)

// BenchmarkStdout streams b.N MiB of stdout through TLS over loopback.
func BenchmarkStdout(b *testing.B) {
	for _, plaintext := range []bool{false, true} {
		b.Run(fmt.Sprintf("plaintext=%v", plaintext), func(b *testing.B) {
			d := daemontest.Start(b, &execd.Server{}, plaintext)
			c := dialTB(b, d)
			b.SetBytes(1 << 20)
			s, err := c.NewSession()
			if err != nil {
				b.Fatal(err)
			}
			s.Stdout = io.Discard
			b.ResetTimer()
			if err := s.Run(b.Context(), "head", "-c", fmt.Sprint(b.N<<20), "/dev/zero"); err != nil {
				b.Fatal(err)
			}
		})
	}
}
