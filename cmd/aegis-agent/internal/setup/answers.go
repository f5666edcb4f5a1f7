// Package setup is the model behind aegis-agent init: the answers (read
// from an answers file, the flags of --non-interactive, an existing setup
// or the wizard's forms), their checks (each answer alone, and live against
// buckets, servers and databases), and what they make: the manifests, key
// and secret files, written atomically. It knows nothing of the terminal:
// the wizard's forms (and the UI libraries they need) stay in the command.
package setup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile"
)

// Answers is everything `init` asks. The wizard fills it screen by
// screen; --non-interactive fills it from --answers and flags. Both hand it
// to Prepare, so the same answers always give the same manifest bytes.
//
// Its YAML form (--answers, --save-answers) reuses the manifest's own field
// names for each destination and source, so a user who knows the manifests
// knows the answers file. Secrets are never part of it: a secret is named
// by the environment variable or file to read it from (Secret).
type Answers struct {
	// Policy is the BackupPolicy's name; the manifest file is POLICY.yaml.
	Policy       string              `json:"policy"`
	Destinations []DestinationAnswer `json:"destinations"`
	// OtherDestinations are destinations the policy uses that are defined
	// in other manifest files: init names them and leaves them alone.
	OtherDestinations []string         `json:"otherDestinations,omitempty"`
	Sources           []SourceAnswer   `json:"sources"`
	Encryption        EncryptionAnswer `json:"encryption"`
	Schedule          string           `json:"schedule"`
	TimeZone          string           `json:"timeZone,omitempty"`
	Retention         v1.Retention     `json:"retention"`
	Compression       *v1.Compression  `json:"compression,omitempty"`
	Notify            *v1.Notify       `json:"notify,omitempty"`

	// Kept as they are when init edits a policy that has them.
	Labels  map[string]string `json:"labels,omitempty"`
	Suspend bool              `json:"suspend,omitempty"`
	Hooks   *v1.Hooks         `json:"hooks,omitempty"`
}

// DestinationAnswer is one Destination: its name and the manifest's spec, plus
// the secrets init stores for it.
type DestinationAnswer struct {
	Name               string `json:"name"`
	v1.DestinationSpec `json:",inline"`
	// S3: the access key pair, stored as an AWS credentials file.
	AccessKeyID     *Secret `json:"accessKeyID,omitempty"`
	SecretAccessKey *Secret `json:"secretAccessKey,omitempty"`
	// SFTP and FTP: the login password.
	Password *Secret `json:"password,omitempty"`
}

// SourceAnswer is one source as the manifest has it, plus the database
// password init stores for it.
type SourceAnswer struct {
	v1.Source `json:",inline"`
	Password  *Secret `json:"password,omitempty"`
}

// EncryptionAnswer is the encryption choice.
type EncryptionAnswer struct {
	// Mode is age (the default), openssl or none.
	Mode string `json:"mode"`
	// Age: the public keys, and where the identity of a key that init
	// generated (or found) lives. Without recipients, init uses the
	// identity file, generating it when it does not exist.
	Recipients     []string `json:"recipients,omitempty"`
	RecipientsFile string   `json:"recipientsFile,omitempty"`
	IdentityFile   string   `json:"identityFile,omitempty"`
	// OpenSSL: the key file, generated when it does not exist.
	KeyFile    string `json:"keyFile,omitempty"`
	Iterations int    `json:"iterations,omitempty"`

	// NewKey holds a key generated in this session, written with the
	// manifests.
	NewKey []byte `json:"-"`
}

// Secret says where a secret comes from: an environment variable or a
// file. The wizard sets value directly from what was typed.
type Secret struct {
	Env  string `json:"env,omitempty"`
	File string `json:"file,omitempty"`

	Value string `json:"-"`
	// Loaded is set once value holds the secret.
	Loaded bool `json:"-"`
}

func TypedSecret(v string) *Secret { return &Secret{Value: v, Loaded: true} }

// resolve reads the secret from where it is said to be.
func (s *Secret) resolve(what string) (string, error) {
	if s.Loaded {
		return s.Value, nil
	}
	switch {
	case s.Env != "" && s.File != "":
		return "", fmt.Errorf("%s: give env or file, not both", what)
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok || v == "" {
			return "", fmt.Errorf("%s: environment variable %s is not set", what, s.Env)
		}
		s.Value = v
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		// A trailing newline is how editors and `echo` end a file, never
		// part of the secret.
		s.Value = strings.TrimRight(string(b), "\r\n")
		if s.Value == "" {
			return "", fmt.Errorf("%s: %s is empty", what, s.File)
		}
	default:
		return "", fmt.Errorf("%s: say where the secret comes from (env: VARIABLE or file: PATH)", what)
	}
	s.Loaded = true
	return s.Value, nil
}

// Dirs are where init writes.
type Dirs struct {
	Config, Keys, Secrets string
}

// The defaults init proposes.
var (
	defaultRetention = v1.Retention{Hourly: 24, Daily: 7, Weekly: 4, Monthly: 12}
	defaultSchedule  = "0 * * * *"
	DefaultLocalPath = "/var/backups/aegis"
)

// NewAnswers returns the answers of a fresh setup before any question.
func NewAnswers() *Answers {
	return &Answers{
		Policy:      defaultPolicyName(),
		Schedule:    defaultSchedule,
		TimeZone:    systemTimeZone(),
		Retention:   defaultRetention,
		Encryption:  EncryptionAnswer{Mode: "age"},
		Compression: &v1.Compression{Algorithm: v1.CompressionZstd, Level: 3},
	}
}

// defaultPolicyName is this host's short name as a DNS-1123 label.
func defaultPolicyName() string {
	h, _ := os.Hostname()
	h, _, _ = strings.Cut(h, ".")
	if n := toLabel(h); n != "" {
		return n
	}
	return "server"
}

var notLabel = regexp.MustCompile(`[^a-z0-9-]+`)

// toLabel turns s into a DNS-1123 label, or "" when nothing is left.
func toLabel(s string) string {
	s = notLabel.ReplaceAllString(strings.ToLower(s), "-")
	s = strings.Trim(s, "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	return s
}

// systemTimeZone is the IANA name of this host's zone, or UTC.
func systemTimeZone() string {
	if tz := os.Getenv("TZ"); tz != "" {
		if _, err := v1.LoadTimeZone(strings.TrimPrefix(tz, ":")); err == nil {
			return strings.TrimPrefix(tz, ":")
		}
	}
	if b, err := os.ReadFile("/etc/timezone"); err == nil {
		if tz := strings.TrimSpace(string(b)); tz != "" {
			if _, err := v1.LoadTimeZone(tz); err == nil {
				return tz
			}
		}
	}
	if target, err := os.Readlink("/etc/localtime"); err == nil {
		if _, tz, ok := strings.Cut(target, "zoneinfo/"); ok {
			if _, err := v1.LoadTimeZone(tz); err == nil {
				return tz
			}
		}
	}
	return "UTC"
}

// DefaultDestName proposes a name for a destination of a kind.
func DefaultDestName(kind, provider string) string {
	switch kind {
	case "local":
		return "disk"
	case "s3":
		if provider == "" || provider == "other" {
			return "s3"
		}
		return provider
	}
	return kind
}

// ReadAnswersFile reads an answers file ("-" is standard input). Unknown
// fields are errors, as in manifests.
func ReadAnswersFile(name string) (*Answers, error) {
	var data []byte
	var err error
	if name == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, fmt.Errorf("answers file: %w", err)
	}
	a := &Answers{}
	if err := yaml.UnmarshalStrict(data, a); err != nil {
		return nil, fmt.Errorf("answers file %s: %w", name, err)
	}
	return a, nil
}

// ResolveSecrets reads every secret the answers name, so that a missing
// variable or file is reported before anything is checked or written.
func ResolveSecrets(a *Answers) []error {
	var errs []error
	try := func(s *Secret, what string) {
		if s != nil {
			if _, err := s.resolve(what); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, d := range a.Destinations {
		try(d.AccessKeyID, "destination "+d.Name+": access key ID")
		try(d.SecretAccessKey, "destination "+d.Name+": secret access key")
		try(d.Password, "destination "+d.Name+": password")
	}
	for _, s := range a.Sources {
		try(s.Password, "source "+s.Name+": password")
	}
	return errs
}

// MarshalAnswers is the answers file form of a: what --save-answers writes,
// in the order of the fields.
func MarshalAnswers(a *Answers) ([]byte, error) {
	node, err := toNode(a)
	if err != nil {
		return nil, err
	}
	body, err := encodeNode(node)
	if err != nil {
		return nil, err
	}
	head := "# Answers for `aegis-agent init --non-interactive --answers FILE`: the same\n" +
		"# answers write the same manifests. Secrets are not in this file: each is\n" +
		"# named by its file (passwordFile, credentialsFile), or given as\n" +
		"# `password: {env: VARIABLE}` or `{file: PATH}`.\n"
	return append([]byte(head), body...), nil
}

// Existing is a policy already in the config directory, as answers.
type Existing struct {
	File    string
	Answers *Answers
}

// LoadExisting finds the policy init should edit: the one named policy, or
// the only one there is. It returns nil when there is none to edit.
func LoadExisting(dirs Dirs, policy string) (*Existing, []string, error) {
	configDir := dirs.Config
	if _, err := os.Stat(configDir); errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	cfg, err := reconcile.LoadConfig(configDir)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	for _, o := range cfg.Objects {
		if o.Policy != nil {
			names = append(names, o.Name)
		}
	}
	sort.Strings(names)
	var obj *v1.Object
	for _, o := range cfg.Objects {
		if o.Policy != nil && (o.Name == policy || (policy == "" && len(names) == 1)) {
			obj = o
		}
	}
	if obj == nil {
		return nil, names, nil
	}
	a, err := answersFromConfig(cfg, obj)
	if err != nil {
		return nil, names, err
	}
	a.Encryption.IdentityFile = findIdentity(dirs.Keys, a.Encryption.Recipients)
	return &Existing{File: obj.File, Answers: a}, names, nil
}

// LastEdited returns the policy of the config directory whose manifest
// file changed last, or "" when there is none.
func LastEdited(dirs Dirs) string {
	cfg, err := reconcile.LoadConfig(dirs.Config)
	if err != nil {
		return ""
	}
	last, when := "", time.Time{}
	for _, o := range cfg.Objects {
		if o.Policy == nil {
			continue
		}
		if fi, err := os.Stat(o.File); err == nil && (last == "" || fi.ModTime().After(when)) {
			last, when = o.Name, fi.ModTime()
		}
	}
	return last
}

// answersFromConfig turns a policy and the destinations of its file back
// into answers, so that init can edit it.
func answersFromConfig(cfg *reconcile.Config, obj *v1.Object) (*Answers, error) {
	p := obj.Policy
	// init rewrites the whole file: it must hold nothing but this policy
	// and its destinations.
	inFile := map[string]*v1.Destination{}
	for _, o := range cfg.Objects {
		if o.File != obj.File || o == obj {
			continue
		}
		if o.Destination == nil || !contains(p.Spec.Destinations, o.Name) {
			return nil, fmt.Errorf("%s holds %s/%s besides policy %s: init rewrites the whole file, so move other objects to files of their own first",
				obj.File, o.Kind, o.Name, obj.Name)
		}
		inFile[o.Name] = o.Destination
	}
	a := &Answers{
		Policy:      p.Metadata.Name,
		Schedule:    p.Spec.Schedule,
		TimeZone:    p.Spec.TimeZone,
		Compression: p.Spec.Compression,
		Labels:      p.Metadata.Labels,
		Suspend:     p.Spec.Suspend,
		Hooks:       p.Spec.Hooks,
		Notify:      p.Spec.Notify,
	}
	if r := p.Spec.Retention; r != nil {
		a.Retention = *r
	}
	for _, name := range p.Spec.Destinations {
		d, ok := inFile[name]
		if !ok {
			a.OtherDestinations = append(a.OtherDestinations, name)
			continue
		}
		a.Destinations = append(a.Destinations, DestinationAnswer{Name: name, DestinationSpec: d.Spec})
	}
	for _, s := range p.Spec.Sources {
		a.Sources = append(a.Sources, SourceAnswer{Source: s})
	}
	if e := p.Spec.Encryption; e != nil {
		switch e.Mode() {
		case "age":
			a.Encryption = EncryptionAnswer{Mode: "age", Recipients: e.Age.Recipients, RecipientsFile: e.Age.RecipientsFile}
		case "openssl":
			a.Encryption = EncryptionAnswer{Mode: "openssl", KeyFile: e.OpenSSL.KeyFile, Iterations: e.OpenSSL.Iterations}
		case "none":
			a.Encryption = EncryptionAnswer{Mode: "none"}
		}
	}
	return a, nil
}

// findIdentity returns the key file of the keys directory whose public key
// is one of recipients, or "".
func findIdentity(keysDir string, recipients []string) string {
	if len(recipients) == 0 {
		return ""
	}
	matches, _ := filepath.Glob(filepath.Join(keysDir, "*.key"))
	sort.Strings(matches)
	for _, m := range matches {
		if pub, err := ageKeyOf(m); err == nil && contains(recipients, pub) {
			return m
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// kvSpec is one --destination or --source flag value: comma-separated
// key=value pairs; a key may repeat for lists (path=/etc,path=/srv).
type kvSpec struct {
	flag  string
	pairs [][2]string
	used  map[int]bool
}

func parseKV(flag, s string) (*kvSpec, error) {
	k := &kvSpec{flag: flag, used: map[int]bool{}}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, val, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%s: %q is not key=value", flag, part)
		}
		k.pairs = append(k.pairs, [2]string{strings.TrimSpace(key), val})
	}
	return k, nil
}

func (k *kvSpec) all(key string) []string {
	var out []string
	for i, p := range k.pairs {
		if p[0] == key {
			k.used[i] = true
			out = append(out, p[1])
		}
	}
	return out
}

func (k *kvSpec) str(key string) string {
	v := k.all(key)
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

func (k *kvSpec) num(key string, errs *[]error) int {
	s := k.str(key)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %s=%q is not a number", k.flag, key, s))
	}
	return n
}

func (k *kvSpec) boolean(key string, def bool, errs *[]error) bool {
	s := k.str(key)
	if s == "" {
		return def
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %s=%q is not true or false", k.flag, key, s))
	}
	return b
}

func (k *kvSpec) secret(key string) *Secret {
	env, file := k.str(key+"-env"), k.str(key+"-from-file")
	if env == "" && file == "" {
		return nil
	}
	return &Secret{Env: env, File: file}
}

// unused reports keys that no rule read: typos must not pass silently.
func (k *kvSpec) unused() error {
	var bad []string
	for i, p := range k.pairs {
		if !k.used[i] {
			bad = append(bad, p[0])
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: unknown key(s) %s", k.flag, strings.Join(bad, ", "))
	}
	return nil
}

// DestinationFromFlag parses --destination type=KIND,key=value,...
func DestinationFromFlag(s string) (DestinationAnswer, error) {
	k, err := parseKV("--destination", s)
	if err != nil {
		return DestinationAnswer{}, err
	}
	var errs []error
	kind := k.str("type")
	d := DestinationAnswer{Name: k.str("name")}
	switch kind {
	case "local":
		d.Local = &v1.LocalDestination{Path: k.str("path")}
	case "s3":
		d.S3 = &v1.S3Destination{
			Provider: k.str("provider"), Endpoint: k.str("endpoint"), Bucket: k.str("bucket"),
			Prefix: k.str("prefix"), Region: k.str("region"), StorageClass: k.str("storage-class"),
			CredentialsFile: k.str("credentials-file"),
		}
		if d.S3.Provider == "" {
			d.S3.Provider = "aws"
		}
		d.AccessKeyID, d.SecretAccessKey = k.secret("access-key-id"), k.secret("secret-access-key")
	case "sftp":
		d.SFTP = &v1.SFTPDestination{
			Host: k.str("host"), Port: k.num("port", &errs), User: k.str("user"), Path: k.str("path"),
			PrivateKeyFile: k.str("private-key-file"), PasswordFile: k.str("password-file"),
			KnownHostsFile: k.str("known-hosts-file"),
		}
		d.Password = k.secret("password")
	case "ftp":
		d.FTP = &v1.FTPDestination{
			Host: k.str("host"), Port: k.num("port", &errs), User: k.str("user"), Path: k.str("path"),
			PasswordFile: k.str("password-file"), TLS: k.str("tls"), CAFile: k.str("ca-file"),
		}
		d.Password = k.secret("password")
	default:
		return d, fmt.Errorf("--destination: type=%q is not one of local, s3, sftp, ftp", kind)
	}
	if d.Name == "" {
		prov := ""
		if d.S3 != nil {
			prov = d.S3.Provider
		}
		d.Name = DefaultDestName(kind, prov)
	}
	if err := k.unused(); err != nil {
		errs = append(errs, err)
	}
	return d, errors.Join(errs...)
}

// SourceFromFlag parses --source type=KIND,key=value,...
func SourceFromFlag(s string) (SourceAnswer, error) {
	k, err := parseKV("--source", s)
	if err != nil {
		return SourceAnswer{}, err
	}
	var errs []error
	kind := k.str("type")
	src := SourceAnswer{Source: v1.Source{Name: k.str("name")}}
	switch kind {
	case "files":
		src.Files = &v1.FilesSource{Paths: k.all("path"), Exclude: k.all("exclude"), OneFileSystem: k.boolean("one-file-system", false, &errs)}
	case "postgres":
		src.Postgres = &v1.PostgresSource{
			Host: k.str("host"), Port: k.num("port", &errs), User: k.str("user"),
			PasswordFile: k.str("password-file"), Databases: k.all("database"),
		}
		if g := k.str("globals"); g != "" {
			b := k.boolean("globals", true, &errs)
			src.Postgres.Globals = &b
		}
		src.Password = k.secret("password")
	case "mysql":
		src.MySQL = &v1.MySQLSource{
			Host: k.str("host"), Port: k.num("port", &errs), Socket: k.str("socket"), User: k.str("user"),
			PasswordFile: k.str("password-file"), Databases: k.all("database"),
		}
		src.Password = k.secret("password")
	case "docker-volume", "dockerVolume":
		kind = "docker"
		src.DockerVolume = &v1.DockerVolumeSource{Name: k.str("volume"), StopContainers: k.boolean("stop-containers", false, &errs)}
		for _, l := range k.all("label") {
			lk, lv, _ := strings.Cut(l, "=")
			if src.DockerVolume.Selector == nil {
				src.DockerVolume.Selector = map[string]string{}
			}
			src.DockerVolume.Selector[lk] = lv
		}
	case "system":
		src.System = &v1.SystemSource{ExtraPaths: k.all("extra-path")}
	default:
		return src, fmt.Errorf("--source: type=%q is not one of files, postgres, mysql, docker-volume, system", kind)
	}
	if src.Name == "" {
		src.Name = kind
	}
	if err := k.unused(); err != nil {
		errs = append(errs, err)
	}
	return src, errors.Join(errs...)
}

// RetentionFromFlag parses --retention hourly=24,daily=7,...
func RetentionFromFlag(s string) (v1.Retention, error) {
	k, err := parseKV("--retention", s)
	if err != nil {
		return v1.Retention{}, err
	}
	var errs []error
	r := v1.Retention{
		KeepLast: k.num("keep-last", &errs), Hourly: k.num("hourly", &errs), Daily: k.num("daily", &errs),
		Weekly: k.num("weekly", &errs), Monthly: k.num("monthly", &errs), Yearly: k.num("yearly", &errs),
		Within: k.str("within"),
	}
	if err := k.unused(); err != nil {
		errs = append(errs, err)
	}
	return r, errors.Join(errs...)
}

// secretPath is where init stores a secret of an object.
func secretPath(dirs Dirs, name, what string) string {
	return filepath.Join(dirs.Secrets, name+"."+what)
}
