package hostlist

import (
	"fmt"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExpand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a", []string{"a"}},
		{"a,b, c ,,", []string{"a", "b", "c"}},
		{"node[1-3]", []string{"node1", "node2", "node3"}},
		{"node[01-03]", []string{"node01", "node02", "node03"}},
		{"node[08-10]", []string{"node08", "node09", "node10"}},
		{"node[9-11]", []string{"node9", "node10", "node11"}},
		{"node[001-002,7]", []string{"node001", "node002", "node7"}},
		{"web[1,3-4].lab", []string{"web1.lab", "web3.lab", "web4.lab"}},
		{"r[1-2]n[1-2]", []string{"r1n1", "r1n2", "r2n1", "r2n2"}},
		{"127.0.0.[2-4]", []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}},
		{"alice@node[1-2]:7023", []string{"alice@node1:7023", "alice@node2:7023"}},
		{"h:[7022-7023]", []string{"h:7022", "h:7023"}},
		{"[::1]:7022,bob@[::1]", []string{"[::1]:7022", "bob@[::1]"}},
		{"a,b,a,node[1-2],node1", []string{"a", "b", "node1", "node2"}},
		{"n[0-1]", []string{"n0", "n1"}},
		{"n[5]", []string{"n5"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Expand(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestExpandErrors(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"node[1-3", ErrSyntax},
		{"node1-3]", ErrSyntax},
		{"node[]", ErrSyntax},
		{"node[3-1]", ErrSyntax},
		{"node[a-c]", ErrSyntax},
		{"node[1-]", ErrSyntax},
		{"node[[1-2]]", ErrSyntax},
		{"node[1-2]]", ErrSyntax},
		{"node[1-1000000000]", ErrTooMany},
		{"a[1-1000]b[1-1000]", ErrTooMany},
		{"n[1-60000],m[1-60000]", ErrTooMany},
		{"n[1234567890123456789]", ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Expand(tt.in)
			require.ErrorIs(t, err, tt.want)
			assert.Contains(t, err.Error(), "hostlist: ")
		})
	}
}

func TestCompress(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{"a"}, "a"},
		{[]string{"node01", "node02", "node03", "node07"}, "node[01-03,07]"},
		{[]string{"node9", "node10", "node11"}, "node[9-11]"},
		{[]string{"node09", "node10"}, "node[09-10]"},
		{[]string{"node99", "node100"}, "node[99-100]"},
		{[]string{"node01", "node1"}, "node[01,1]"},
		{[]string{"127.0.0.3", "127.0.0.2", "127.0.0.9", "127.0.0.4"}, "127.0.0.[2-4,9]"},
		{[]string{"web1.lab", "web2.lab", "db", "x"}, "db,web[1-2].lab,x"},
		{[]string{"[::1]:7022", "a"}, "[::1]:7022,a"},
		{[]string{"b", "a", "b"}, "a,b"},
		{[]string{"127.0.0.2:7100", "127.0.0.3:7100", "127.0.0.5:7100"}, "127.0.0.[2-3,5]:7100"},
		{[]string{"h1:7022", "h1:7023", "h2:7022"}, "h1:[7022-7023],h2:7022"},
		{[]string{"r1n1", "r2n1", "r1n2"}, "r1n[1-2],r2n1"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, Compress(tt.in))
			back, err := Expand(tt.want)
			require.NoError(t, err)
			assert.ElementsMatch(t, dedupe(tt.in), back)
		})
	}
}

func TestCompressRoundTripsRanges(t *testing.T) {
	for _, in := range []string{"n[0-120]", "n[001-150]", "n[1-9],n[01-20]", "a[1-3]b[1-3]", "x[7-7],x[0009-0011]"} {
		names, err := Expand(in)
		require.NoError(t, err)
		back, err := Expand(Compress(names))
		require.NoError(t, err, Compress(names))
		assert.ElementsMatch(t, names, back, "%s -> %s", in, Compress(names))
	}
}

// FuzzExpand checks that no list crashes Expand or makes it exceed its
// bound, and that whatever it expands compresses back to the same set.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"node[01-40]", "a,b", "[::1]:7022", "r[1-2]n[3,5-6]x", "n[9-11],n[009-011]", "x[", "]", "a[1-99999]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		names, err := Expand(s)
		if err != nil {
			return
		}
		if len(names) > MaxHosts {
			t.Fatalf("%q expanded to %d names", s, len(names))
		}
		c := Compress(names)
		back, err := Expand(c)
		if err != nil {
			t.Fatalf("Compress(%q) = %q, which does not expand: %v", s, c, err)
		}
		a, b := append([]string(nil), names...), back
		sort.Strings(a)
		sort.Strings(b)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("%q -> %q -> %d names, want %d", s, c, len(b), len(a))
		}
	})
}
