// Package tlsid computes the fingerprint by which rexec pins an execd
// identity and execd prints it.
package tlsid

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
)

// Fingerprint returns "SHA256:" and the unpadded base64 SHA-256 of the
// certificate's public key, the form ssh prints host keys in. A
// certificate renewed with the same key keeps its fingerprint.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}
