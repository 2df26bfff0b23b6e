package execd

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/execd-project/execd/internal/atomicfile"
	"github.com/execd-project/execd/internal/tlsid"
)

// Names of the daemon's identity files in its state directory.
const (
	CertFile = "cert.pem"
	KeyFile  = "key.pem"
)

// Fingerprint returns the identity of a certificate as clients pin it:
// "SHA256:" and the unpadded base64 SHA-256 of its public key, as ssh
// prints host keys. A certificate renewed with the same key keeps it.
func Fingerprint(cert *x509.Certificate) string { return tlsid.Fingerprint(cert) }

// LoadOrCreateIdentity loads the daemon's key and self-signed certificate
// from dir, creating both (ed25519, key file mode 0600) on first start. It
// reports whether it created them.
func LoadOrCreateIdentity(dir string) (tls.Certificate, bool, error) {
	return loadOrCreateIdentity(dir)
}

// waitIdentity loads the identity another process is creating: its key
// exists, its certificate follows within moments.
func waitIdentity(certPath, keyPath string) (tls.Certificate, bool, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		cert, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err == nil {
			cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
			return cert, false, err
		}
		if time.Now().After(deadline) {
			return tls.Certificate{}, false, fmt.Errorf("load identity: %s exists without %s (another execd creating it did not finish): %w", keyPath, certPath, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func loadOrCreateIdentity(dir string) (tls.Certificate, bool, error) {
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil {
		cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
		return cert, false, err
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, false, fmt.Errorf("load identity from %s: %w", dir, err)
	}
	if _, serr := os.Stat(keyPath); serr == nil {
		return waitIdentity(certPath, keyPath)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("create state directory: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	host, _ := os.Hostname()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, false, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "execd " + host},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(100, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	// Two daemons starting at once on one state directory: the first to
	// create the key makes the identity; the other waits for its
	// certificate and uses it.
	if err := atomicfile.CreateExclusive(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return waitIdentity(certPath, keyPath)
		}
		return tls.Certificate{}, false, err
	}
	if err := atomicfile.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tls.Certificate{}, false, err
	}
	cert, err = tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
	return cert, true, err
}
