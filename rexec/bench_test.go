package rexec_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/execd-project/execd/execd"
	"github.com/execd-project/execd/execd/execdtest"
	"github.com/execd-project/execd/rexec"
)

// BenchmarkStdout streams b.N MiB of stdout through TLS over loopback.
func BenchmarkStdout(b *testing.B) {
	for _, plaintext := range []bool{false, true} {
		b.Run(fmt.Sprintf("plaintext=%v", plaintext), func(b *testing.B) {
			d := execdtest.Start(b, &execd.Server{}, plaintext)
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

// BenchmarkGetPut copies a 256 MiB file each way through TLS over loopback.
func BenchmarkGetPut(b *testing.B) {
	served, local := b.TempDir(), b.TempDir()
	d := execdtest.Start(b, &execd.Server{Dir: served}, false)
	c := dialTB(b, d)
	const size = 256 << 20
	src := filepath.Join(local, "src.bin")
	if err := os.WriteFile(src, randomBytes(size, 1), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(served, "src.bin"), randomBytes(size, 1), 0o644); err != nil {
		b.Fatal(err)
	}
	opts := &rexec.TransferOptions{Restart: true}
	b.Run("get", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := c.Get(b.Context(), "src.bin", filepath.Join(local, "dst.bin"), opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("put", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := c.Put(b.Context(), []string{src}, "dst.bin", opts); err != nil {
				b.Fatal(err)
			}
		}
	})
}
