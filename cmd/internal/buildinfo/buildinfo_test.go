package buildinfo_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/execd-project/execd/cmd/internal/buildinfo"
)

func TestShortAndLong(t *testing.T) {
	tests := []struct {
		name        string
		info        buildinfo.Info
		short, long string
	}{
		{"not stamped", buildinfo.Info{Version: "0.1.0"}, "0.1.0", "0.1.0"},
		{"stamped", buildinfo.Info{Version: "0.1.0", Commit: "0311492abcdef0123456789", Time: "2026-11-30T23:00:01Z", Go: "go1.26.8"},
			"0.1.0+0311492abcde", "0.1.0 (commit 0311492abcdef0123456789, 2026-11-30T23:00:01Z, go1.26.8)"},
		{"dirty", buildinfo.Info{Version: "0.2.0", Commit: "abc", Modified: true},
			"0.2.0+abc-dirty", "0.2.0 (commit abc with uncommitted changes)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.short, tc.info.Short())
			assert.Equal(t, tc.long, tc.info.Long())
		})
	}
	assert.Equal(t, buildinfo.Release, buildinfo.Read().Version, "a test binary reports the source's release")
}

func TestPseudoVersions(t *testing.T) {
	for v, pseudo := range map[string]bool{
		"v0.0.0-20261130231524-43061731f315":       true,
		"v0.0.0-20261130231524-43061731f315+dirty": true,
		"v0.1.1-0.20261130231524-43061731f315":     true,
		"(devel)":                                  true,
		"v0.2.0":                                   false,
		"v1.0.0-rc.1":                              false,
	} {
		assert.Equal(t, pseudo, buildinfo.IsPseudo(v), v)
	}
}
