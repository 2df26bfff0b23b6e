//go:build unix

package execd

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestAutoEncodingFromLocale(t *testing.T) {
	for _, tt := range []struct{ lcAll, lang, want string }{
		{"", "zh_CN.GBK", "gbk"},
		{"", "zh_CN.gb2312", "gbk"},
		{"", "zh_CN.GB18030", "gb18030"},
		{"", "zh_CN.UTF-8", "utf-8"},
		{"zh_CN.GBK", "en_US.UTF-8", "gbk"},
		{"C.UTF-8", "zh_CN.GBK", "utf-8"},
		{"", "", "utf-8"},
	} {
		t.Setenv("LC_ALL", tt.lcAll)
		t.Setenv("LC_CTYPE", "")
		t.Setenv("LANG", tt.lang)
		assert.Equal(t, tt.want, autoEncoding(false), "LC_ALL=%q LANG=%q", tt.lcAll, tt.lang)
	}
	s := &Server{Encoding: "GBK"}
	got, err := s.outputEncoding("", false)
	assert.NoError(t, err)
	assert.Equal(t, "gbk", got)
	got, err = s.outputEncoding("raw", false)
	assert.NoError(t, err)
	assert.Equal(t, "raw", got, "the client's choice wins")
	_, err = (&Server{Encoding: "latin9"}).outputEncoding("", false)
	assert.Error(t, err)
}
