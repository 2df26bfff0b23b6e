// Package hostlist expands and compresses host lists in pdsh's notation:
// "node[01-40],web[1,3-5].lab,alice@db:7023". A bracket holding numbers and
// ranges stands for each of them (zero-padded to the width of the lower
// bound when it starts with 0); several brackets in one name multiply. A
// bracket holding a colon is an IPv6 address ("[::1]:7022") and stays as
// it is.
package hostlist

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// MaxHosts bounds what one list may expand to, so that a typing slip
// ("node[1-100000000]") is an error rather than an exhausted machine.
const MaxHosts = 100000

// Errors of Expand.
var (
	// ErrSyntax is wrapped by errors in the notation.
	ErrSyntax = errors.New("hostlist: bad syntax")
	// ErrTooMany is wrapped when a list expands beyond MaxHosts.
	ErrTooMany = errors.New("hostlist: too many hosts")
)

// Split cuts a list at the commas that are outside brackets, dropping
// empty items and surrounding spaces.
func Split(list string) ([]string, error) {
	var items []string
	depth, start := 0, 0
	for i := 0; i < len(list); i++ {
		switch list[i] {
		case '[':
			if depth > 0 {
				return nil, fmt.Errorf("%w: nested '[' in %q", ErrSyntax, list)
			}
			depth++
		case ']':
			if depth == 0 {
				return nil, fmt.Errorf("%w: ']' without '[' in %q", ErrSyntax, list)
			}
			depth--
		case ',':
			if depth == 0 {
				items = appendItem(items, list[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("%w: '[' without ']' in %q", ErrSyntax, list)
	}
	return appendItem(items, list[start:]), nil
}

func appendItem(items []string, s string) []string {
	if s = strings.TrimSpace(s); s != "" {
		items = append(items, s)
	}
	return items
}

// Expand turns a list into host names, in order, each once.
func Expand(list string) ([]string, error) {
	items, err := Split(list)
	if err != nil {
		return nil, err
	}
	var out []string
	seen := map[string]bool{}
	for _, it := range items {
		names, err := ExpandItem(it, MaxHosts-len(out))
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out, nil
}

// ExpandItem expands one item (no top-level commas) into at most limit
// names.
func ExpandItem(item string, limit int) ([]string, error) {
	if strings.ContainsAny(item, " \t\r\n") {
		return nil, fmt.Errorf("%w: space in host %q", ErrSyntax, item)
	}
	open := strings.IndexByte(item, '[')
	if open < 0 {
		if strings.IndexByte(item, ']') >= 0 {
			return nil, fmt.Errorf("%w: ']' without '[' in %q", ErrSyntax, item)
		}
		if limit < 1 {
			return nil, fmt.Errorf("%w: more than %d", ErrTooMany, MaxHosts)
		}
		return []string{item}, nil
	}
	closeAt := strings.IndexByte(item[open:], ']')
	if closeAt < 0 {
		return nil, fmt.Errorf("%w: '[' without ']' in %q", ErrSyntax, item)
	}
	closeAt += open
	prefix, body, rest := item[:open], item[open+1:closeAt], item[closeAt+1:]
	if strings.IndexByte(body, ']') >= 0 || strings.IndexByte(body, '[') >= 0 {
		return nil, fmt.Errorf("%w: nested brackets in %q", ErrSyntax, item)
	}
	var values []string
	if strings.IndexByte(body, ':') >= 0 {
		values = []string{"[" + body + "]"} // an IPv6 address, kept as written
	} else {
		v, err := ranges(body, limit)
		if err != nil {
			return nil, fmt.Errorf("%w in %q", err, item)
		}
		values = v
	}
	tails, err := ExpandItem(rest, max(limit/len(values), 1))
	if err != nil {
		return nil, err
	}
	if len(values)*len(tails) > limit {
		return nil, fmt.Errorf("%w: %q expands to more than %d", ErrTooMany, item, MaxHosts)
	}
	out := make([]string, 0, len(values)*len(tails))
	for _, v := range values {
		for _, t := range tails {
			out = append(out, prefix+v+t)
		}
	}
	return out, nil
}

// ranges expands "01-03,7" into "01","02","03","7".
func ranges(body string, limit int) ([]string, error) {
	if body == "" {
		return nil, fmt.Errorf("%w: empty brackets", ErrSyntax)
	}
	var out []string
	for _, part := range strings.Split(body, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		a, err := number(lo)
		if err != nil {
			return nil, err
		}
		b, err := number(hi)
		if err != nil {
			return nil, err
		}
		if b < a {
			return nil, fmt.Errorf("%w: range %s goes down", ErrSyntax, part)
		}
		if b-a >= uint64(limit-len(out)) {
			return nil, fmt.Errorf("%w: range %s has more than %d hosts", ErrTooMany, part, MaxHosts)
		}
		width := 0
		if len(lo) > 1 && lo[0] == '0' {
			width = len(lo) // node[01-10]: keep the padding
		}
		for n := a; n <= b; n++ {
			out = append(out, fmt.Sprintf("%0*d", width, n))
		}
	}
	return out, nil
}

// number parses 1 to 18 decimal digits.
func number(s string) (uint64, error) {
	if s == "" || len(s) > 18 {
		return 0, fmt.Errorf("%w: %q is not a number", ErrSyntax, s)
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %q is not a number", ErrSyntax, s)
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

// Compress writes names as a short list that Expand turns back into the
// same set: names that differ in one number share brackets,
// "node01,node02,node03,node07" becoming "node[01-03,07]" and
// "10.0.0.2:7022,10.0.0.3:7022" becoming "10.0.0.[2-3]:7022". The number
// that varies is looked for from the last one backwards.
func Compress(names []string) string {
	rest := dedupe(names)
	var out []string
	for pos := 1; len(rest) > 0; pos++ {
		type key struct{ prefix, suffix string }
		groups := map[key][]string{}
		members := map[key][]string{}
		var keys []key
		var left, plain []string
		for _, n := range rest {
			p, d, s, ok := nthNumberFromEnd(n, pos)
			if !ok {
				plain = append(plain, n)
				continue
			}
			k := key{p, s}
			if _, seen := groups[k]; !seen {
				keys = append(keys, k)
			}
			groups[k] = append(groups[k], d)
			members[k] = append(members[k], n)
		}
		for _, k := range keys {
			if len(groups[k]) == 1 {
				left = append(left, members[k]...) // alone here; maybe another number varies
				continue
			}
			out = append(out, k.prefix+"["+runs(groups[k])+"]"+k.suffix)
		}
		out = append(out, plain...)
		rest = left
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// nthNumberFromEnd splits a name around its pos-th run of digits counted
// from the end (1 is the last). Names holding brackets or commas, or a
// number too long to parse, are not split.
func nthNumberFromEnd(n string, pos int) (prefix, digits, suffix string, ok bool) {
	if strings.ContainsAny(n, "[],") {
		return "", "", "", false
	}
	end := len(n)
	for {
		for end > 0 && !isDigit(n[end-1]) {
			end--
		}
		start := end
		for start > 0 && isDigit(n[start-1]) {
			start--
		}
		if start == end || end-start > 18 {
			return "", "", "", false
		}
		if pos--; pos == 0 {
			return n[:start], n[start:end], n[end:], true
		}
		end = start
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func dedupe(s []string) []string {
	seen := map[string]bool{}
	out := s[:0:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// runs writes sorted numbers as "01-03,07": a run continues while each
// number is one more than the last and is written alike (the same width,
// or both without a leading zero), so that expanding gives the same names.
func runs(digits []string) string {
	sort.Slice(digits, func(i, j int) bool {
		a, _ := strconv.ParseUint(digits[i], 10, 64)
		b, _ := strconv.ParseUint(digits[j], 10, 64)
		if a != b {
			return a < b
		}
		return digits[i] < digits[j]
	})
	var parts []string
	for i := 0; i < len(digits); {
		j := i
		for j+1 < len(digits) && follows(digits[j], digits[j+1]) && alike(digits[i], digits[j+1]) {
			j++
		}
		if j == i {
			parts = append(parts, digits[i])
		} else {
			parts = append(parts, digits[i]+"-"+digits[j])
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func follows(a, b string) bool {
	x, _ := strconv.ParseUint(a, 10, 64)
	y, _ := strconv.ParseUint(b, 10, 64)
	return y == x+1
}

// alike reports whether a range starting at lo may include d: Expand pads
// every number of a range to lo's width when lo starts with 0, and pads
// none otherwise.
func alike(lo, d string) bool {
	if len(lo) > 1 && lo[0] == '0' {
		return len(d) == len(lo)
	}
	return len(d) == 1 || d[0] != '0'
}
