// Package atomicfile replaces files so that a reader (the agent's watcher, a
// status reader, a crash) sees either the old content or the new, never half
// of either. It is the one writer of status sidecars, keys and the manifests
// init writes.
//
// It imports nothing of Aegis.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with body and mode: the bytes go to a temporary file
// in the same directory whose name is unique per write and starts with a dot
// (which the agent's manifest loader ignores), which is fsynced, renamed over
// path, and the directory fsynced so the rename survives a power cut. Every
// error is returned; on error path is unchanged and the temporary file gone.
func Write(path string, body []byte, mode os.FileMode) error {
	tmp, err := writeTemp(path, body, mode)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// Create writes body to path, which must not exist yet (a new key is never
// written over an old one), with the same guarantees as Write.
func Create(path string, body []byte, mode os.FileMode) error {
	tmp, err := writeTemp(path, body, mode)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// A hard link fails if path exists, where a rename would replace it.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s already exists: not overwriting it", path)
		}
		return err
	}
	return syncDir(filepath.Dir(path))
}

// writeTemp writes body to a new temporary file beside path, named
// uniquely and starting with a dot (which the agent's manifest loader
// ignores), with mode set before the first byte lands (a secret is never
// readable under a looser mode, even for a moment), and fsynced. It
// returns the temporary file's name; on error nothing is left behind.
func writeTemp(path string, body []byte, mode os.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(body)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
