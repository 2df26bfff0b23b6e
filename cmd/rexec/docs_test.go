package main_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// docFiles are the README and the documents beside it, from the module's root.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	require.NoError(t, err)
	return append([]string{"../../README.md"}, files...)
}

// docBlock is the first sh block of the section under heading in the
// document file (a path from the module's root).
func docBlock(t *testing.T, file, heading string) string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("..", "..", file))
	require.NoError(t, err)
	_, sec, ok := strings.Cut(string(text), "\n"+heading+"\n")
	require.True(t, ok, "%s: %s", file, heading)
	_, block, ok := strings.Cut(sec, "```sh\n")
	require.True(t, ok, "%s: %s", file, heading)
	block, _, _ = strings.Cut(block, "```")
	return block
}

// anchorOf is the anchor GitHub gives a heading: lower case, spaces to
// dashes, punctuation other than dashes and underscores dropped.
func anchorOf(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

var (
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeading = regexp.MustCompile(`(?m)^#+ (.+)$`)
	mdFence   = regexp.MustCompile("(?ms)^```.*?^```")
)

// Every link between the documents reaches a file that exists and, with
// a #fragment, a heading in it; the README stays a page a newcomer reads
// at once.
func TestDocsLinks(t *testing.T) {
	anchors := map[string]map[string]bool{}
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		text, err := os.ReadFile(path)
		require.NoError(t, err)
		a := map[string]bool{}
		for _, m := range mdHeading.FindAllStringSubmatch(mdFence.ReplaceAllString(string(text), ""), -1) {
			a[anchorOf(strings.ReplaceAll(m[1], "`", ""))] = true
		}
		anchors[path] = a
		return a
	}
	for _, file := range docFiles(t) {
		text, err := os.ReadFile(file)
		require.NoError(t, err)
		body := mdFence.ReplaceAllString(string(text), "")
		for _, m := range mdLink.FindAllStringSubmatch(body, -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			target, frag, _ := strings.Cut(link, "#")
			path := file
			if target != "" {
				path = filepath.Join(filepath.Dir(file), target)
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s: link %s: no such file", file, link)
					continue
				}
			}
			if frag != "" && strings.HasSuffix(path, ".md") && !anchorsOf(path)[frag] {
				t.Errorf("%s: link %s: no such heading in %s", file, link, path)
			}
		}
	}
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	assert.LessOrEqual(t, strings.Count(string(readme), "\n"), 300, "README.md: at most 300 lines; the rest belongs in docs/")
}
