// Package atomicfile writes a file whole or not at all: to a temporary
// file beside it, synced, then renamed over it (or linked to its name, when
// it must not exist yet).
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile replaces path with b, mode perm. Readers see the old content
// or the new, never a mix; a crash leaves at most a stray temporary file.
func WriteFile(path string, b []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, b, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // after the rename this fails harmlessly
	return os.Rename(tmp, path)
}

// CreateExclusive creates path with b, mode perm, only if it does not
// exist: when two processes create the same file at once, one wins and
// the other gets an error wrapping fs.ErrExist, never a file of the two
// mixed, nor one replacing the other. The file appears whole (a hard link
// of a complete temporary file).
func CreateExclusive(path string, b []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, b, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // the link, when made, keeps the content
	err = os.Link(tmp, path)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	// A file system without hard links: an exclusive create, written in place.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return err
	}
	return f.Close()
}

// writeTemp writes b to a synced temporary file beside path.
func writeTemp(path string, b []byte, perm fs.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	fail := func(err error) (string, error) {
		_ = f.Close()
		_ = os.Remove(tmp)
		return "", err
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(b); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}
