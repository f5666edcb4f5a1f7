package retention

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// WithCredentials returns a copy of d that logs in with the credentials in
// file instead of its own: what `prune --destination-credentials` does, so
// that a host whose own credentials may only write (docs/security.md) is
// pruned from another host with credentials that may delete. file is, by
// driver: s3, an AWS shared credentials file (spec.s3.credentialsFile);
// sftp, a private key (a PEM or OpenSSH key) or else a password file; ftp,
// a password file. A local destination has no credentials.
func WithCredentials(d *v1.Destination, file string) (*v1.Destination, error) {
	if !filepath.IsAbs(file) {
		abs, err := filepath.Abs(file)
		if err != nil {
			return nil, err
		}
		file = abs
	}
	c := *d
	switch s := d.Spec; {
	case s.S3 != nil:
		x := *s.S3
		x.CredentialsFile = file
		c.Spec.S3 = &x
	case s.SFTP != nil:
		x := *s.SFTP
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("destination %s: credentials: %w", d.Metadata.Name, err)
		}
		if bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN ")) {
			x.PrivateKeyFile, x.PasswordFile = file, ""
		} else {
			x.PrivateKeyFile, x.PasswordFile = "", file
		}
		c.Spec.SFTP = &x
	case s.FTP != nil:
		x := *s.FTP
		x.PasswordFile = file
		c.Spec.FTP = &x
	default:
		return nil, fmt.Errorf("destination %s: a %s destination has no credentials to replace", d.Metadata.Name, s.Driver())
	}
	return &c, nil
}

// ParseCredentialFlags reads the values of --destination-credentials:
// NAME=FILE gives destination NAME its own credentials; a bare FILE
// applies to every destination (the usual case: a policy with one). The
// key "" holds a bare FILE.
func ParseCredentialFlags(values []string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range values {
		name, file, ok := strings.Cut(v, "=")
		if !ok {
			name, file = "", v
		}
		if file == "" {
			return nil, fmt.Errorf("--destination-credentials %q: no file", v)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--destination-credentials: two files for destination %q", name)
		}
		out[name] = file
	}
	return out, nil
}
