package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestBeyondLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9722": false, "127.1.2.3:1": false, "[::1]:9722": false,
		"0.0.0.0:9722": true, "[::]:9722": true, "10.0.0.5:9722": true,
	} {
		ta, err := net.ResolveTCPAddr("tcp", addr)
		assert.NoError(t, err)
		assert.Equal(t, want, beyondLoopback(ta), addr)
	}
}

func TestWithToken(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	h := withToken(ok, []byte("0123456789abcdef"))
	for _, tc := range []struct {
		path, auth string
		want       int
	}{
		{"/metrics", "", 401},
		{"/metrics", "Bearer 0123456789abcdeX", 401},
		{"/metrics", "bearer 0123456789abcdef", 401},
		{"/metrics", "Basic 0123456789abcdef", 401},
		{"/metrics", "Bearer 0123456789abcdef", 200},
		{"/healthz", "", 200},
		{"/readyz", "", 200},
	} {
		r := httptest.NewRequest("GET", tc.path, nil)
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		assert.Equal(t, tc.want, w.Code, "%s %q", tc.path, tc.auth)
	}
	w := httptest.NewRecorder()
	withToken(ok, nil).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	assert.Equal(t, 200, w.Code, "no token, no guard")
}
