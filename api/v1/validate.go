package v1

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-playground/validator/v10"
)

// FileChecker gives validation the facts it needs about referenced files.
// os.Stat fits; tests pass a fake. A FileChecker that is also a FileReader
// lets validation look inside recipients files.
type FileChecker interface {
	Stat(path string) (fs.FileInfo, error)
}

// FileReader reads a referenced file (os.ReadFile fits).
type FileReader interface {
	ReadFile(path string) ([]byte, error)
}

// ValidateOptions say how far validation looks beyond the manifests.
type ValidateOptions struct {
	// Files gives the facts about the files manifests reference; nil
	// checks none.
	Files FileChecker
	// Offline checks the schema, names, references between objects and
	// the rules across objects, but no referenced file, whatever Files is:
	// for CI on a machine that is not the backup host.
	Offline bool
	// AgentUID is the effective user ID the agent runs as (os.Geteuid()):
	// a secret or key file must be owned by root or by this user. Checked
	// only when Files gives ownership (a *syscall.Stat_t from Sys()).
	AgentUID int
}

// Validate checks objects as ValidateWith does, with the files that fc
// describes, for an agent running as the current effective user.
func Validate(objs []*Object, fc FileChecker) ErrorList {
	return ValidateWith(objs, ValidateOptions{Files: fc, AgentUID: os.Geteuid()})
}

// ValidateWith checks decoded objects: their field rules, the rules between
// fields, the references between objects (names unique per kind,
// destinations that exist) and, unless opts.Offline, the files they
// reference. Every problem is reported, on the line of the offending field
// (or of its parent when the field is missing), sorted by file and line.
func ValidateWith(objs []*Object, opts ValidateOptions) ErrorList {
	v := &validation{fc: opts.Files, uid: opts.AgentUID}
	if opts.Offline {
		v.fc = nil
	}
	for _, o := range objs {
		switch {
		case o.Policy != nil:
			v.tags(o, o.Policy)
			v.policy(o, &o.Policy.Spec)
		case o.Destination != nil:
			v.tags(o, o.Destination)
			v.destination(o, &o.Destination.Spec)
		}
	}
	v.uniqueNames(objs)
	v.destinationRefs(objs)
	v.errs.sort()
	return v.errs
}

// Defaults fills what a policy may leave out: compression is zstd at
// level 3 unless the manifest says otherwise.
func Defaults(p *BackupPolicy) {
	if p.Spec.Compression == nil {
		p.Spec.Compression = &Compression{Algorithm: CompressionZstd, Level: 3}
		return
	}
	if p.Spec.Compression.Algorithm == "" {
		p.Spec.Compression.Algorithm = CompressionZstd
	}
}

type validation struct {
	fc   FileChecker
	uid  int
	errs ErrorList
}

// add reports a problem of o at path, unless Decode already rejected the
// value there or above it.
func (v *validation) add(o *Object, path, format string, args ...any) {
	if o.isBroken(path) {
		return
	}
	v.errs = append(v.errs, FieldError{
		File: o.File, Line: o.LineOf(path), Kind: o.Kind, Name: o.Name, Field: path,
		Message: fmt.Sprintf(format, args...),
	})
}

// inlineName names embedded structs in validator namespaces, to be cut out.
const inlineName = "<inline>"

var tagValidator = newTagValidator()

func newTagValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	// Namespaces use the JSON names, so they are the manifest's field paths.
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name != "" && name != "-":
			return name
		case f.Anonymous:
			return inlineName
		}
		return f.Name
	})
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(v.RegisterValidation("dns1123", func(fl validator.FieldLevel) bool {
		return isDNS1123Label(fl.Field().String())
	}))
	must(v.RegisterValidation("abspath", func(fl validator.FieldLevel) bool {
		p := fl.Field().String()
		return path.IsAbs(p) && path.Clean(p) == p
	}))
	return v
}

var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// IsDNS1123Label reports whether s is a valid object or source name.
func IsDNS1123Label(s string) bool { return isDNS1123Label(s) }

func isDNS1123Label(s string) bool {
	return len(s) <= 63 && dns1123Label.MatchString(s)
}

// tags applies the validate struct tags of the types.
func (v *validation) tags(o *Object, obj any) {
	err := tagValidator.Struct(obj)
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		if err != nil {
			v.add(o, "", "cannot validate: %v", err)
		}
		return
	}
	for _, fe := range verrs {
		v.add(o, fieldPath(fe.Namespace()), "%s", tagMessage(fe))
	}
}

// fieldPath turns "BackupPolicy.spec.sources[0].name" into
// "spec.sources[0].name".
func fieldPath(ns string) string {
	_, p, _ := strings.Cut(ns, ".")
	p = strings.ReplaceAll(p, inlineName+".", "")
	return p
}

func tagMessage(fe validator.FieldError) string {
	param := fe.Param()
	switch fe.Tag() {
	case "required":
		if strings.HasSuffix(fe.Namespace(), "]") {
			return "must not be empty"
		}
		return "is required"
	case "dns1123":
		return "must be a DNS-1123 label (lower-case letters, digits and '-', at most 63 characters)"
	case "abspath":
		p := fmt.Sprint(fe.Value())
		if !path.IsAbs(p) {
			return "must be an absolute path"
		}
		return fmt.Sprintf("must be a clean absolute path (did you mean %q?)", path.Clean(p))
	case "oneof":
		return "must be one of: " + param
	case "eq":
		return "must be " + param
	case "url":
		return "must be a URL such as https://s3.example.com"
	case "hostname_rfc1123|ip":
		return "must be a host name or an IP address"
	case "min":
		switch fe.Kind() {
		case reflect.Slice, reflect.Map:
			if param == "1" {
				return "must not be empty"
			}
			return "must have at least " + param + " items"
		case reflect.String:
			return "must be at least " + param + " characters long"
		}
		if param == "0" {
			return "must not be negative"
		}
		return "must be at least " + param
	case "max":
		switch fe.Kind() {
		case reflect.Slice, reflect.Map:
			return "must have at most " + param + " items"
		case reflect.String:
			return "must be at most " + param + " characters long"
		}
		return "must be at most " + param
	}
	if param != "" {
		return fmt.Sprintf("fails the %s=%s check", fe.Tag(), param)
	}
	return fmt.Sprintf("fails the %s check", fe.Tag())
}

// oneOf reports unless exactly one of the named blocks is set.
func (v *validation) oneOf(o *Object, at string, names []string, set []bool) {
	var found []string
	for i, s := range set {
		if s {
			found = append(found, names[i])
		}
	}
	switch len(found) {
	case 1:
	case 0:
		v.add(o, at, "exactly one of %s must be set", strings.Join(names, ", "))
	default:
		v.add(o, at, "exactly one of %s must be set (found: %s)", strings.Join(names, ", "), strings.Join(found, ", "))
	}
}

func (v *validation) destination(o *Object, s *DestinationSpec) {
	v.oneOf(o, "spec", []string{"local", "s3", "sftp", "ftp"},
		[]bool{s.Local != nil, s.S3 != nil, s.SFTP != nil, s.FTP != nil})
	if s3 := s.S3; s3 != nil {
		// These providers have no standard endpoint to derive from the region.
		if s3.Endpoint == "" && (s3.Provider == "other" || s3.Provider == "minio") {
			v.add(o, "spec.s3.endpoint", "is required when provider is %s", s3.Provider)
		}
		if s3.Bucket != "" {
			if err := CheckBucketName(s3.Provider, s3.Bucket); err != nil {
				v.add(o, "spec.s3.bucket", "%v", err)
			}
		}
		v.secretFile(o, "spec.s3.credentialsFile", s3.CredentialsFile)
	}
	if sftp := s.SFTP; sftp != nil {
		if sftp.PrivateKeyFile == "" && sftp.PasswordFile == "" {
			v.add(o, "spec.sftp", "set privateKeyFile or passwordFile")
		}
		v.secretFile(o, "spec.sftp.privateKeyFile", sftp.PrivateKeyFile)
		v.secretFile(o, "spec.sftp.passwordFile", sftp.PasswordFile)
		v.file(o, "spec.sftp.knownHostsFile", sftp.KnownHostsFile)
	}
	if ftp := s.FTP; ftp != nil {
		v.secretFile(o, "spec.ftp.passwordFile", ftp.PasswordFile)
		v.file(o, "spec.ftp.caFile", ftp.CAFile)
	}
	v.bandwidth(o, s.Bandwidth)
}

// bandwidth checks spec.bandwidth, each problem on its field, with the
// parsers CompileBandwidth uses.
func (v *validation) bandwidth(o *Object, b *Bandwidth) {
	const at = "spec.bandwidth"
	if b == nil {
		return
	}
	if b.Limit == "" && len(b.Schedule) == 0 {
		v.add(o, at, "set limit, schedule or both")
	}
	if b.TimeZone != "" {
		if _, err := LoadTimeZone(b.TimeZone); err != nil {
			v.add(o, at+".timeZone", "%v", err)
		}
	}
	if b.Limit != "" {
		if _, err := ParseBandwidth(b.Limit); err != nil {
			v.add(o, at+".limit", "%v", err)
		}
	}
	for i, w := range b.Schedule {
		p := fmt.Sprintf("%s.schedule[%d]", at, i)
		if _, err := parseDays(w.Days); err != nil {
			v.add(o, p+".days", "%v", err)
		}
		if w.Between != "" {
			if _, _, err := parseBetween(w.Between); err != nil {
				v.add(o, p+".between", "%v", err)
			}
		}
		if w.Limit != "" {
			if _, err := ParseBandwidth(w.Limit); err != nil {
				v.add(o, p+".limit", "%v", err)
			}
		}
	}
}

const encryptionRequired = "is required: set age, openssl or none: true (unencrypted backups must be asked for explicitly)"

func (v *validation) policy(o *Object, s *BackupPolicySpec) {
	tz := s.TimeZone
	if _, err := LoadTimeZone(tz); err != nil {
		v.add(o, "spec.timeZone", "%v", err)
		tz = ""
	}
	if s.Schedule != "" {
		if _, err := ParseSchedule(s.Schedule, tz); err != nil {
			v.add(o, "spec.schedule", "%v", err)
		}
	}

	firstSource := map[string]int{}
	for i := range s.Sources {
		v.source(o, i, &s.Sources[i], firstSource)
	}

	listed := map[string]bool{}
	for i, d := range s.Destinations {
		if d != "" && listed[d] {
			v.add(o, fmt.Sprintf("spec.destinations[%d]", i), "destination %q is listed twice", d)
		}
		listed[d] = true
	}

	if c := s.Compression; c != nil && c.Algorithm == CompressionGzip && c.Level > 9 {
		v.add(o, "spec.compression.level", "must be at most 9 for gzip")
	}

	v.encryption(o, s.Encryption)

	if r := s.Retention; r != nil {
		if r.Within != "" {
			if _, err := ParseRetentionDuration(r.Within); err != nil {
				v.add(o, "spec.retention.within", "%v", err)
			}
		}
		if r.Schedule != "" {
			if _, err := ParseSchedule(r.Schedule, tz); err != nil {
				v.add(o, "spec.retention.schedule", "%v", err)
			}
		}
	}
	v.hooks(o, "spec.hooks", s.Hooks)
	v.drills(o, s)
	if n := s.Notify; n != nil {
		for i, w := range n.Webhooks {
			v.secretFile(o, fmt.Sprintf("spec.notify.webhooks[%d].secretFile", i), w.SecretFile)
		}
	}
}

// source checks spec.sources[i]; first maps the names seen so far to their
// index.
func (v *validation) source(o *Object, i int, src *Source, first map[string]int) {
	at := fmt.Sprintf("spec.sources[%d]", i)
	if src.Name != "" {
		if j, dup := first[src.Name]; dup {
			v.add(o, at+".name", "duplicate source name %q (first at line %d)",
				src.Name, o.LineOf(fmt.Sprintf("spec.sources[%d].name", j)))
		} else {
			first[src.Name] = i
		}
	}
	v.oneOf(o, at, []string{"files", "postgres", "mysql", "dockerVolume", "system"},
		[]bool{src.Files != nil, src.Postgres != nil, src.MySQL != nil, src.DockerVolume != nil, src.System != nil})
	if pg := src.Postgres; pg != nil {
		v.secretFile(o, at+".postgres.passwordFile", pg.PasswordFile)
	}
	if my := src.MySQL; my != nil {
		v.secretFile(o, at+".mysql.passwordFile", my.PasswordFile)
	}
	if dv := src.DockerVolume; dv != nil {
		v.oneOf(o, at+".dockerVolume", []string{"name", "selector"}, []bool{dv.Name != "", len(dv.Selector) > 0})
	}
	v.hooks(o, at+".hooks", src.Hooks)
}

func (v *validation) encryption(o *Object, e *Encryption) {
	const at = "spec.encryption"
	if e == nil {
		v.add(o, at, encryptionRequired)
		return
	}
	if e.Age == nil && e.OpenSSL == nil && !e.None {
		v.add(o, at, encryptionRequired)
		return
	}
	v.oneOf(o, at, []string{"age", "openssl", "none"}, []bool{e.Age != nil, e.OpenSSL != nil, e.None})
	if age := e.Age; age != nil {
		if len(age.Recipients) == 0 && age.RecipientsFile == "" && !o.isBroken(at+".age.recipients") {
			v.add(o, at+".age", "set recipients or recipientsFile")
		}
		for i, r := range age.Recipients {
			p := fmt.Sprintf("%s.age.recipients[%d]", at, i)
			switch {
			case isAgeSecretKey(r):
				v.add(o, p, "is an age secret key: a manifest must name public keys (age1...) only")
			case !isAgeRecipient(r):
				v.add(o, p, "must be an age public key (age1...)")
			}
		}
		v.recipientsFile(o, at+".age.recipientsFile", age.RecipientsFile)
	}
	if ssl := e.OpenSSL; ssl != nil {
		v.secretFile(o, at+".openssl.keyFile", ssl.KeyFile)
	}
}

// bech32Charset is the data alphabet of Bech32, in which age keys are written.
const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

// isAgeRecipient reports whether s looks like an age public key: "age1",
// then (after an optional plugin name ending in "1") at least a checksum's
// worth of lower-case Bech32 characters. The key itself is not parsed.
func isAgeRecipient(s string) bool {
	if !strings.HasPrefix(s, "age1") {
		return false
	}
	data := s[strings.LastIndex(s, "1")+1:]
	if len(data) < 6 {
		return false
	}
	for _, c := range data {
		if !strings.ContainsRune(bech32Charset, c) {
			return false
		}
	}
	return true
}

func (v *validation) hooks(o *Object, at string, h *Hooks) {
	if h == nil {
		return
	}
	for _, list := range []struct {
		name  string
		hooks []Hook
	}{{"before", h.Before}, {"after", h.After}, {"onFailure", h.OnFailure}} {
		for i, hook := range list.hooks {
			p := fmt.Sprintf("%s.%s[%d]", at, list.name, i)
			if len(hook.Command) > 0 && strings.TrimSpace(hook.Command[0]) == "" {
				v.add(o, p+".command[0]", "must not be empty")
			}
			if hook.Timeout != "" {
				if d, err := time.ParseDuration(hook.Timeout); err != nil || d <= 0 {
					v.add(o, p+".timeout", "must be a positive duration such as 30s or 5m")
				}
			}
		}
	}
}

// secretFile checks a file holding a secret: it must be a regular file
// that neither group nor others can read or write.
func (v *validation) secretFile(o *Object, at, name string) {
	fi, ok := v.stat(o, at, name)
	if !ok {
		return
	}
	if !fi.Mode().IsRegular() {
		v.add(o, at, "secret file %s is not a regular file", name)
		return
	}
	perm := fi.Mode().Perm()
	switch {
	case perm&0o044 != 0:
		v.add(o, at, "secret file %s is readable by group or others (mode %04o); chmod 600 it", name, perm)
	case perm&0o022 != 0:
		v.add(o, at, "secret file %s is writable by group or others (mode %04o); chmod 600 it", name, perm)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int64(st.Uid) != int64(v.uid) {
		if v.uid == 0 {
			v.add(o, at, "secret file %s is owned by uid %d, not by root, the user the agent runs as; chown root it", name, st.Uid)
		} else {
			v.add(o, at, "secret file %s is owned by uid %d, not by root or by uid %d, the user the agent runs as; chown it", name, st.Uid, v.uid)
		}
	}
}

// isAgeSecretKey reports whether s is an age identity, which must never
// be where recipients belong (nor repeated in a message).
func isAgeSecretKey(s string) bool {
	return strings.HasPrefix(strings.ToUpper(strings.TrimSpace(s)), "AGE-SECRET-KEY-")
}

// recipientsFile checks an age recipients file: it must exist and hold no
// identity (the output of age-keygen is an identity file, not a recipients
// file). The secret is never repeated.
func (v *validation) recipientsFile(o *Object, at, name string) {
	fi, ok := v.stat(o, at, name)
	if !ok {
		return
	}
	if fi.IsDir() {
		v.add(o, at, "file %s is a directory", name)
		return
	}
	r, ok := v.fc.(FileReader)
	if !ok {
		return
	}
	data, err := r.ReadFile(name)
	if err != nil {
		v.add(o, at, "cannot read file %s: %v", name, err)
		return
	}
	for i, line := range strings.Split(string(data), "\n") {
		if isAgeSecretKey(line) {
			v.add(o, at, "file %s holds an age secret key on line %d: a recipients file must list public keys (age1...) only; keep the identity for restores and list its public key here", name, i+1)
			return
		}
	}
}

// file checks a referenced file that holds no secret.
func (v *validation) file(o *Object, at, name string) {
	if fi, ok := v.stat(o, at, name); ok && fi.IsDir() {
		v.add(o, at, "file %s is a directory", name)
	}
}

// stat returns the file's facts, or false after reporting why there are
// none. Empty and malformed paths are left to the tag rules.
func (v *validation) stat(o *Object, at, name string) (fs.FileInfo, bool) {
	if v.fc == nil || name == "" || !path.IsAbs(name) || path.Clean(name) != name || o.isBroken(at) {
		return nil, false
	}
	fi, err := v.fc.Stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.add(o, at, "file %s does not exist", name)
		return nil, false
	case err != nil:
		v.add(o, at, "cannot check file %s: %v", name, err)
		return nil, false
	}
	return fi, true
}

// uniqueNames reports every object named like an earlier one of its kind.
func (v *validation) uniqueNames(objs []*Object) {
	first := map[string]*Object{}
	for _, o := range objs {
		if o.Name == "" {
			continue
		}
		key := o.Kind + "/" + o.Name
		f, dup := first[key]
		if !dup {
			first[key] = o
			continue
		}
		v.add(o, "metadata.name", "duplicate name: %s %q is already defined at %s:%d",
			o.Kind, o.Name, f.File, f.LineOf("metadata.name"))
	}
}

// destinationRefs reports destinations a policy names that do not exist.
func (v *validation) destinationRefs(objs []*Object) {
	exists := map[string]bool{}
	for _, o := range objs {
		if o.Destination != nil {
			exists[o.Name] = true
		}
	}
	for _, o := range objs {
		if o.Policy == nil {
			continue
		}
		for i, d := range o.Policy.Spec.Destinations {
			if d != "" && !exists[d] {
				v.add(o, fmt.Sprintf("spec.destinations[%d]", i), "destination %q not found", d)
			}
		}
	}
}

// ParseRetentionDuration parses a span such as "36h", "7d" or "1d12h": a Go
// duration that also accepts d for days of 24 hours. Negative spans are
// refused.
func ParseRetentionDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("invalid duration %q: use a number and a unit, such as 36h, 7d or 1d12h", s)
	if s == "" {
		return 0, bad
	}
	if s[0] == '-' {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	isNum := func(c byte) bool { return c >= '0' && c <= '9' || c == '.' }
	var total time.Duration
	for rest := strings.TrimPrefix(s, "+"); rest != ""; {
		i := 0
		for i < len(rest) && isNum(rest[i]) {
			i++
		}
		j := i
		for j < len(rest) && !isNum(rest[j]) {
			j++
		}
		num, unit := rest[:i], rest[i:j]
		rest = rest[j:]
		if num == "" || unit == "" {
			return 0, bad
		}
		var d time.Duration
		if unit == "d" {
			days, err := strconv.ParseFloat(num, 64)
			if err != nil || days*24 > float64(1<<63-1)/float64(time.Hour) {
				return 0, bad
			}
			d = time.Duration(days * 24 * float64(time.Hour))
		} else {
			var err error
			if d, err = time.ParseDuration(num + unit); err != nil {
				return 0, bad
			}
		}
		if total+d < total {
			return 0, bad
		}
		total += d
	}
	return total, nil
}

// CheckBucketName applies the S3 bucket naming rules, which every S3
// service enforces: 3 to 63 lower-case letters, digits, dots and hyphens,
// starting and ending with a letter or digit, no two dots in a row, not an
// IP address, none of the reserved prefixes and suffixes. Google Cloud
// Storage (provider gcs) also allows underscores.
func CheckBucketName(provider, name string) error {
	gcs := provider == "gcs"
	bad := func(format string, args ...any) error {
		return fmt.Errorf("invalid bucket name %q: %s", name, fmt.Sprintf(format, args...))
	}
	if n := len(name); n < 3 || n > 63 {
		return bad("it is %d characters long; S3 allows 3 to 63", n)
	}
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '-':
		case c == '_' && gcs:
		case c >= 'A' && c <= 'Z':
			return bad("upper-case letters are not allowed (did you mean %q?)", strings.ToLower(name))
		case c == '/':
			return bad("a bucket name has no \"/\": put the path inside the bucket in prefix")
		default:
			return bad("%q is not allowed; use lower-case letters, digits, dots and hyphens", c)
		}
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	switch {
	case !alnum(name[0]) || !alnum(name[len(name)-1]):
		return bad("it must begin and end with a lower-case letter or a digit")
	case strings.Contains(name, ".."):
		return bad("it must not have two dots in a row")
	case ipv4Like.MatchString(name):
		return bad("it must not be formatted as an IP address")
	case strings.HasPrefix(name, "xn--"), strings.HasPrefix(name, "sthree-"):
		return bad("the prefixes xn-- and sthree- are reserved")
	case strings.HasSuffix(name, "-s3alias"), strings.HasSuffix(name, "--ol-s3"), strings.HasSuffix(name, "--x-s3"):
		return bad("the suffixes -s3alias, --ol-s3 and --x-s3 are reserved")
	}
	return nil
}

var ipv4Like = regexp.MustCompile(`^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$`)
