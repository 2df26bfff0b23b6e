// Package transcode turns a command's output from its code page into UTF-8
// as it streams (and stdin the other way), for Windows consoles writing
// GBK and legacy programs anywhere. A character split across two reads is
// held back until its second half arrives, never broken; bytes that are
// not valid in the code page become U+FFFD, never dropped silently.
package transcode

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
	"golang.org/x/text/transform"
)

// Names of the encodings a daemon or a command can choose.
const (
	Auto    = "auto"    // the code page the command writes in (Windows console or ANSI code page; the locale elsewhere)
	UTF8    = "utf-8"   // already UTF-8: passed through untouched
	GBK     = "gbk"     // code page 936 (GBK with Microsoft's 0x80 euro sign)
	GB18030 = "gb18030" // code page 54936
	Raw     = "raw"     // bytes untouched, for binary output
)

// ErrUnknown is wrapped for an encoding name or code page with no transcoder.
var ErrUnknown = errors.New("transcode: unknown encoding")

// Names lists the names a user may give.
func Names() []string { return []string{Auto, UTF8, GBK, GB18030, Raw} }

// Check validates a name a user gave (empty means Auto).
func Check(name string) error {
	switch strings.ToLower(name) {
	case "", Auto, UTF8, "utf8", GBK, "cp936", GB18030, Raw:
		return nil
	}
	return fmt.Errorf("%w %q (one of %s)", ErrUnknown, name, strings.Join(Names(), ", "))
}

// Normalize maps accepted spellings to the canonical names.
func Normalize(name string) string {
	switch strings.ToLower(name) {
	case "", Auto:
		return Auto
	case UTF8, "utf8":
		return UTF8
	case GBK, "cp936":
		return GBK
	}
	return strings.ToLower(name)
}

// codePages maps Windows code pages to encodings and the names reported
// for them.
var codePages = map[uint32]struct {
	name string
	enc  encoding.Encoding
}{
	65001: {UTF8, nil},
	936:   {GBK, simplifiedchinese.GBK},
	54936: {GB18030, simplifiedchinese.GB18030},
	950:   {"big5", traditionalchinese.Big5},
	932:   {"shift_jis", japanese.ShiftJIS},
	949:   {"euc-kr", korean.EUCKR},
	437:   {"cp437", charmap.CodePage437},
	850:   {"cp850", charmap.CodePage850},
	866:   {"cp866", charmap.CodePage866},
	1250:  {"windows-1250", charmap.Windows1250},
	1251:  {"windows-1251", charmap.Windows1251},
	1252:  {"windows-1252", charmap.Windows1252},
	1253:  {"windows-1253", charmap.Windows1253},
	1254:  {"windows-1254", charmap.Windows1254},
	1255:  {"windows-1255", charmap.Windows1255},
	1256:  {"windows-1256", charmap.Windows1256},
	1257:  {"windows-1257", charmap.Windows1257},
	1258:  {"windows-1258", charmap.Windows1258},
	20127: {UTF8, nil}, // US-ASCII is UTF-8 already
}

// ForCodePage names the encoding of a Windows code page.
func ForCodePage(cp uint32) (string, error) {
	e, ok := codePages[cp]
	if !ok {
		return "", fmt.Errorf("%w: code page %d", ErrUnknown, cp)
	}
	return e.name, nil
}

// lookup returns the encoding for a canonical name; nil for UTF8 and Raw.
func lookup(name string) (encoding.Encoding, error) {
	switch name {
	case UTF8, Raw:
		return nil, nil
	case GBK:
		return simplifiedchinese.GBK, nil
	case GB18030:
		return simplifiedchinese.GB18030, nil
	}
	for _, e := range codePages {
		if e.name == name {
			return e.enc, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknown, name)
}

// Decoder returns a reader giving r's bytes, written in the named encoding,
// as UTF-8. For UTF8 and Raw it returns r itself.
func Decoder(r io.Reader, name string) (io.Reader, error) {
	enc, err := lookup(name)
	if err != nil || enc == nil {
		return r, err
	}
	return transform.NewReader(r, enc.NewDecoder()), nil
}

// Encoder returns a reader giving r's UTF-8 as the named encoding, for a
// command's stdin. A character the code page cannot hold becomes the
// code page's replacement character. For UTF8 and Raw it returns r itself.
func Encoder(r io.Reader, name string) (io.Reader, error) {
	enc, err := lookup(name)
	if err != nil || enc == nil {
		return r, err
	}
	return transform.NewReader(r, encoding.ReplaceUnsupported(enc.NewEncoder())), nil
}
