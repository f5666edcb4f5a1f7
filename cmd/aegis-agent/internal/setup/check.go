package setup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/registry"
)

// The checks of single answers. The wizard runs each as its answer is
// given (and shows the message under the field); --non-interactive runs
// them all and reports every failure. Each message says what to give
// instead.

func CheckName(s string) error {
	if s == "" {
		return errors.New("a name is required")
	}
	if toLabel(s) != s {
		return fmt.Errorf("%q is not a valid name: use lower-case letters, digits and '-', such as %q", s, OrDefault(toLabel(s), "web"))
	}
	return nil
}

func OrDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func CheckAbsPath(s string) error {
	if s == "" {
		return errors.New("a path is required")
	}
	if !path.IsAbs(s) {
		return fmt.Errorf("%s is not an absolute path: start it with /", s)
	}
	if path.Clean(s) != s {
		return fmt.Errorf("write %s as %s", s, path.Clean(s))
	}
	return nil
}

// CheckExisting: an absolute path that exists.
func CheckExisting(s string) error {
	if err := CheckAbsPath(s); err != nil {
		return err
	}
	if _, err := os.Stat(s); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s does not exist on this host", s)
		}
		return fmt.Errorf("cannot use %s: %v", s, err)
	}
	return nil
}

func CheckExistingFile(s string) error {
	if err := CheckExisting(s); err != nil {
		return err
	}
	if fi, _ := os.Stat(s); fi.IsDir() {
		return fmt.Errorf("%s is a directory: give a file", s)
	}
	return nil
}

// SplitList splits a comma-separated answer.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func CheckPathList(s string) error {
	list := SplitList(s)
	if len(list) == 0 {
		return errors.New("give at least one path, such as /etc or /var/www (separate several with commas)")
	}
	var bad []string
	for _, p := range list {
		if err := CheckExisting(p); err != nil {
			bad = append(bad, err.Error())
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// CheckLocalTarget: a directory that exists, or that can be created under
// one that does.
func CheckLocalTarget(s string) error {
	if err := CheckAbsPath(s); err != nil {
		return err
	}
	for p := s; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is a file, not a directory", p)
			}
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cannot use %s: %v", s, err)
		}
		if p == "/" {
			return nil
		}
	}
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func CheckBucket(s string) error {
	switch {
	case s == "":
		return errors.New("a bucket name is required")
	case !bucketName.MatchString(s) || strings.Contains(s, ".."):
		return fmt.Errorf("%q is not a valid bucket name: 3 to 63 lower-case letters, digits, '.' and '-'", s)
	case net.ParseIP(s) != nil:
		return fmt.Errorf("%q looks like an IP address, which is not a valid bucket name", s)
	}
	return nil
}

func CheckEndpoint(required bool) func(string) error {
	return func(s string) error {
		if s == "" {
			if required {
				return errors.New("this provider needs an endpoint URL, such as https://minio.example.com:9000")
			}
			return nil
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("%q is not an endpoint URL: write it as https://HOST[:PORT]", s)
		}
		return nil
	}
}

var hostRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$`)

func CheckHost(s string) error {
	if s == "" {
		return errors.New("a host name or IP address is required")
	}
	if net.ParseIP(s) == nil && !hostRE.MatchString(s) {
		return fmt.Errorf("%q is not a host name or IP address", s)
	}
	return nil
}

// CheckDBHost accepts a host name, an IP address, or the directory of a
// Unix socket.
func CheckDBHost(s string) error {
	if s == "" {
		return nil
	}
	if strings.HasPrefix(s, "/") {
		if err := CheckExisting(s); err != nil {
			return fmt.Errorf("socket directory: %w", err)
		}
		return nil
	}
	return CheckHost(s)
}

func CheckPort(s string) error {
	if s == "" {
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q is not a port: give a number from 1 to 65535", s)
	}
	return nil
}

func CheckCount(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a count: give a whole number, 0 or more", s)
	}
	return nil
}

func CheckTimeZone(s string) error {
	if s == "" {
		return nil
	}
	if _, err := v1.LoadTimeZone(s); err != nil {
		return fmt.Errorf("%q is not a time zone: use an IANA name such as UTC or Europe/Berlin", s)
	}
	return nil
}

func CheckSchedule(tz string) func(string) error {
	return func(s string) error {
		if strings.TrimSpace(s) == "" {
			return errors.New("a schedule is required, such as 0 * * * * (hourly) or @daily")
		}
		if _, err := v1.ParseSchedule(s, tz); err != nil {
			return fmt.Errorf("%v: use 5 cron fields (minute hour day month weekday, such as 30 2 * * *) or @hourly, @daily, @weekly, @every 6h", err)
		}
		return nil
	}
}

func CheckRecipients(s string) error {
	list := SplitList(s)
	if len(list) == 0 {
		return errors.New("give at least one age public key (age1...)")
	}
	for _, r := range list {
		if strings.HasPrefix(strings.ToUpper(r), "AGE-SECRET-KEY-") {
			return errors.New("that is a secret key: give its public key (age1...), which `age-keygen -y` prints; the secret never goes on this host's manifests")
		}
		if _, err := age.ParseX25519Recipient(r); err != nil {
			return fmt.Errorf("%q is not an age public key (age1...)", r)
		}
	}
	return nil
}

func CheckURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not a URL: write it as https://HOST/PATH", s)
	}
	return nil
}

var volumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func CheckVolume(s string) error {
	if !volumeName.MatchString(s) {
		return fmt.Errorf("%q is not a Docker volume name (letters, digits, '_', '.', '-')", s)
	}
	return nil
}

// CheckKnownHosts: the file exists and knows the host, since the agent
// refuses a host whose key it cannot verify.
func CheckKnownHosts(host string, port int) func(string) error {
	return func(s string) error {
		if err := CheckExistingFile(s); err != nil {
			return err
		}
		cb, err := knownhosts.New(s)
		if err != nil {
			return fmt.Errorf("%s: %v", s, err)
		}
		if port == 0 {
			port = 22
		}
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		// Any key does: an unknown host gives a KeyError without Want.
		err = cb(addr, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}, probeKey{})
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) && len(ke.Want) == 0 {
			return fmt.Errorf("%s has no key for %s: check the server's fingerprint, then add it with: ssh-keyscan -p %d %s >> %s", s, host, port, host, s)
		}
		return nil
	}
}

// probeKey is a public key no host has, to ask known_hosts whether a host
// is listed at all.
type probeKey struct{}

func (probeKey) Type() string                            { return "ssh-ed25519" }
func (probeKey) Marshal() []byte                         { return []byte("aegis-probe") }
func (probeKey) Verify(_ []byte, _ *ssh.Signature) error { return errors.New("probe key") }

// CheckAnswers runs every check of single answers, for --non-interactive.
func CheckAnswers(a *Answers) []error {
	var errs []error
	add := func(where string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
	}
	add("policy", CheckName(a.Policy))
	if len(a.Destinations)+len(a.OtherDestinations) == 0 {
		errs = append(errs, errors.New("no destination: give one with --destination type=local,path=/var/backups/aegis (or in the answers file)"))
	}
	if len(a.Sources) == 0 {
		errs = append(errs, errors.New("no source: give one with --source type=files,path=/etc (or in the answers file)"))
	}
	for _, d := range a.Destinations {
		w := "destination " + d.Name
		add(w, CheckName(d.Name))
		switch {
		case d.Local != nil:
			add(w+": path", CheckLocalTarget(d.Local.Path))
		case d.S3 != nil:
			add(w+": bucket", CheckBucket(d.S3.Bucket))
			add(w+": endpoint", CheckEndpoint(d.S3.Provider == "minio" || d.S3.Provider == "other")(d.S3.Endpoint))
		case d.SFTP != nil:
			add(w+": host", CheckHost(d.SFTP.Host))
			if d.SFTP.PrivateKeyFile != "" {
				add(w+": private key", CheckExistingFile(d.SFTP.PrivateKeyFile))
			}
			add(w+": known hosts", CheckKnownHosts(d.SFTP.Host, d.SFTP.Port)(d.SFTP.KnownHostsFile))
		case d.FTP != nil:
			add(w+": host", CheckHost(d.FTP.Host))
			if d.FTP.CAFile != "" {
				add(w+": CA file", CheckExistingFile(d.FTP.CAFile))
			}
		}
	}
	for _, s := range a.Sources {
		w := "source " + s.Name
		add(w, CheckName(s.Name))
		switch {
		case s.Files != nil:
			add(w+": paths", CheckPathList(strings.Join(s.Files.Paths, ",")))
		case s.Postgres != nil:
			add(w+": host", CheckDBHost(s.Postgres.Host))
		case s.MySQL != nil:
			add(w+": host", CheckDBHost(s.MySQL.Host))
			if s.MySQL.Socket != "" {
				add(w+": socket", CheckExisting(s.MySQL.Socket))
			}
		case s.DockerVolume != nil && s.DockerVolume.Name != "":
			add(w+": volume", CheckVolume(s.DockerVolume.Name))
		case s.System != nil:
			for _, p := range s.System.ExtraPaths {
				add(w+": extra path", CheckExisting(p))
			}
		}
	}
	add("schedule", CheckSchedule(a.TimeZone)(a.Schedule))
	add("time zone", CheckTimeZone(a.TimeZone))
	if a.Encryption.Mode == "age" && len(a.Encryption.Recipients) > 0 {
		add("encryption: age recipients", CheckRecipients(strings.Join(a.Encryption.Recipients, ",")))
	}
	if n := a.Notify; n != nil {
		add("notify: ping URL", CheckURL(n.Ping))
		for _, w := range n.Webhooks {
			add("notify: webhook URL", CheckURL(w.URL))
		}
	}
	return errs
}

// LiveResult is the outcome of a check against the real thing.
type LiveResult struct {
	// Checked is false when this build cannot check this kind yet.
	Checked bool
	What    string
	Err     error
}

// sourceChecker is what a source driver offers when it can test its login
// without backing anything up.
type sourceChecker interface {
	Check(ctx context.Context) error
}

// liveCheckTimeout bounds one live check: a wizard must not hang on a
// firewall that drops packets.
const liveCheckTimeout = 20 * time.Second

// CheckDestinationLive connects to a remote destination with the answered
// credentials and checks it can write there. A local destination is not
// touched (its path check is enough, and nothing is created before the
// user confirms).
func CheckDestinationLive(ctx context.Context, d DestinationAnswer) LiveResult {
	res := LiveResult{What: DescribeDestination(d)}
	if d.Local != nil {
		return res
	}
	network, addr := destinationAddress(d)
	if err := refused(ctx, network, addr); err != nil {
		res.Checked, res.Err = true, err
		return res
	}
	err := withTempSecrets(func(dirs Dirs, plan *Plan) error {
		c := d
		c.DestinationSpec = cloneDestSpec(d.DestinationSpec)
		if err := c.storeSecrets(dirs, plan); err != nil {
			return err
		}
		if err := plan.writeTemp(); err != nil {
			return err
		}
		dst, err := registry.Destination(&v1.Destination{
			TypeMeta: v1.TypeMeta{APIVersion: v1.APIVersion, Kind: v1.KindDestination},
			Metadata: v1.ObjectMeta{Name: d.Name}, Spec: c.DestinationSpec,
		}, registry.Options{})
		if err != nil {
			return err
		}
		defer dst.Close()
		res.Checked = true
		ctx, cancel := context.WithTimeout(ctx, liveCheckTimeout)
		defer cancel()
		return dst.Check(ctx)
	})
	if errors.Is(err, drivers.ErrNotSupported) {
		return res
	}
	res.Checked, res.Err = true, err
	return res
}

// CheckSourceLive logs in to a database with the answered credentials,
// when the source's driver can check a login.
func CheckSourceLive(ctx context.Context, s SourceAnswer) LiveResult {
	res := LiveResult{What: DescribeSource(s)}
	if s.Postgres == nil && s.MySQL == nil && s.DockerVolume == nil {
		return res
	}
	network, addr := sourceAddress(s.Source)
	if err := refused(ctx, network, addr); err != nil {
		res.Checked, res.Err = true, err
		return res
	}
	err := withTempSecrets(func(dirs Dirs, plan *Plan) error {
		c := s
		c.Source = cloneSource(s.Source)
		if err := c.storeSecrets("check", dirs, plan); err != nil {
			return err
		}
		if err := plan.writeTemp(); err != nil {
			return err
		}
		drv, err := registry.Source(c.Source, registry.Options{})
		if err != nil {
			return err
		}
		chk, ok := drv.(sourceChecker)
		if !ok {
			return drivers.ErrNotSupported
		}
		res.Checked = true
		ctx, cancel := context.WithTimeout(ctx, liveCheckTimeout)
		defer cancel()
		return chk.Check(ctx)
	})
	if errors.Is(err, drivers.ErrNotSupported) {
		return res
	}
	res.Checked, res.Err = true, err
	return res
}

// withTempSecrets runs fn with a private temporary directory for secrets
// and keys, removed afterwards: fn plans its secret files there, writes
// them with writeTemp, and hands them to a driver to check a login.
func withTempSecrets(fn func(Dirs, *Plan) error) error {
	dir, err := os.MkdirTemp("", "aegis-init-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	return fn(Dirs{Secrets: dir, Keys: dir}, &Plan{})
}

// writeTemp writes the files planned so far (for withTempSecrets).
func (p *Plan) writeTemp() error {
	for _, f := range p.Files {
		if err := os.WriteFile(f.Path, f.Body, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func cloneDestSpec(s v1.DestinationSpec) v1.DestinationSpec {
	if s.S3 != nil {
		c := *s.S3
		s.S3 = &c
	}
	if s.SFTP != nil {
		c := *s.SFTP
		s.SFTP = &c
	}
	if s.FTP != nil {
		c := *s.FTP
		s.FTP = &c
	}
	return s
}

func cloneSource(s v1.Source) v1.Source {
	if s.Postgres != nil {
		c := *s.Postgres
		s.Postgres = &c
	}
	if s.MySQL != nil {
		c := *s.MySQL
		s.MySQL = &c
	}
	return s
}

// DescribeDestination names a destination for messages: "s3 bucket acme at b2".
func DescribeDestination(d DestinationAnswer) string {
	switch {
	case d.Local != nil:
		return "directory " + d.Local.Path
	case d.S3 != nil:
		s := fmt.Sprintf("bucket %s (%s", d.S3.Bucket, d.S3.Provider)
		if d.S3.Endpoint != "" {
			s += " at " + d.S3.Endpoint
		} else if d.S3.Region != "" {
			s += " " + d.S3.Region
		}
		return s + ")"
	case d.SFTP != nil:
		return fmt.Sprintf("sftp://%s@%s%s", d.SFTP.User, d.SFTP.Host, d.SFTP.Path)
	case d.FTP != nil:
		return fmt.Sprintf("ftp://%s@%s%s", d.FTP.User, d.FTP.Host, d.FTP.Path)
	}
	return d.Name
}

func DescribeSource(s SourceAnswer) string {
	switch {
	case s.Files != nil:
		return "files " + strings.Join(s.Files.Paths, ", ")
	case s.Postgres != nil:
		return fmt.Sprintf("PostgreSQL as %s on %s", OrDefault(s.Postgres.User, "postgres"), OrDefault(s.Postgres.Host, "the local socket"))
	case s.MySQL != nil:
		return fmt.Sprintf("MySQL/MariaDB as %s on %s", OrDefault(s.MySQL.User, "root"), OrDefault(OrDefault(s.MySQL.Socket, s.MySQL.Host), "the local socket"))
	case s.DockerVolume != nil:
		if s.DockerVolume.Name != "" {
			return "Docker volume " + s.DockerVolume.Name
		}
		return "Docker volumes by label"
	case s.System != nil:
		return "system configuration"
	}
	return s.Name
}
