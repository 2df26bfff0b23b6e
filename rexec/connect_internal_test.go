package rexec

import (
	"errors"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
)

// A name that does not resolve is reported by its name, not by the
// resolver that was asked.
func TestConnectErrorNamesTheHost(t *testing.T) {
	dns := &net.DNSError{Err: "no such host", Name: "lab9", Server: "10.255.255.53:53", IsNotFound: true}
	err := connectError(&net.OpError{Op: "dial", Net: "tcp", Err: dns})
	assert.Equal(t, "rexec: could not resolve host lab9: no such host", err.Error())
	var de *net.DNSError
	assert.True(t, errors.As(err, &de))
	refused := connectError(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")})
	assert.Contains(t, refused.Error(), "rexec: connect:")
}
