package setup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
	"go.yaml.in/yaml/v3"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile/atomicfile"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// PlannedFile is a key or secret file init will write with the manifests.
type PlannedFile struct {
	Path string
	Body []byte
	What string
	// Key files are never overwritten; a secret file is replaced.
	Key bool
}

// Plan is everything init is about to write.
type Plan struct {
	ManifestPath string
	Manifest     []byte
	Files        []PlannedFile
	// Problems are what validation says of the manifests as they would be
	// written; empty for good answers.
	Problems v1.ErrorList
}

// Prepare turns answers into the manifest bytes and the secret and
// key files to write. It writes nothing. It fills what the answers derive
// (secret file paths, a generated key's recipient) back into a, so that
// the wizard shows them and --save-answers records them.
func Prepare(a *Answers, dirs Dirs, file string) (*Plan, error) {
	plan := &Plan{ManifestPath: file}
	if plan.ManifestPath == "" {
		plan.ManifestPath = filepath.Join(dirs.Config, a.Policy+".yaml")
	}
	var errs []error
	for i := range a.Destinations {
		if err := a.Destinations[i].storeSecrets(dirs, plan); err != nil {
			errs = append(errs, err)
		}
	}
	for i := range a.Sources {
		if err := a.Sources[i].storeSecrets(a.Policy, dirs, plan); err != nil {
			errs = append(errs, err)
		}
	}
	if err := a.Encryption.Prepare(a.Policy, dirs, plan); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	body, err := renderManifests(a)
	if err != nil {
		return nil, err
	}
	plan.Manifest = body
	objs, derrs := v1.Decode(plan.ManifestPath, body)
	plan.Problems = append(derrs, v1.Validate(objs, plannedFiles{plan})...)
	return plan, nil
}

// storeSecrets plans the files of the destination's secrets and points the
// spec at them.
func (d *DestinationAnswer) storeSecrets(dirs Dirs, plan *Plan) error {
	switch {
	case d.S3 != nil && (d.AccessKeyID != nil || d.SecretAccessKey != nil):
		if d.AccessKeyID == nil || d.SecretAccessKey == nil {
			return fmt.Errorf("destination %s: give both the access key ID and the secret access key, or neither (then the agent uses AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)", d.Name)
		}
		id, err := d.AccessKeyID.resolve("destination " + d.Name + ": access key ID")
		if err != nil {
			return err
		}
		secret, err := d.SecretAccessKey.resolve("destination " + d.Name + ": secret access key")
		if err != nil {
			return err
		}
		d.S3.CredentialsFile = secretPath(dirs, d.Name, "s3-credentials")
		plan.Files = append(plan.Files, PlannedFile{
			Path: d.S3.CredentialsFile, What: "S3 credentials of destination " + d.Name,
			Body: s3CredentialsFile(id, secret),
		})
	case d.Password != nil && (d.SFTP != nil || d.FTP != nil):
		pw, err := d.Password.resolve("destination " + d.Name + ": password")
		if err != nil {
			return err
		}
		p := secretPath(dirs, d.Name, "password")
		if d.SFTP != nil {
			d.SFTP.PasswordFile = p
		} else {
			d.FTP.PasswordFile = p
		}
		plan.Files = append(plan.Files, PlannedFile{Path: p, What: "password of destination " + d.Name, Body: []byte(pw + "\n")})
	}
	return nil
}

// s3CredentialsFile is the AWS shared credentials format (what the AWS
// CLI and the S3 clients read with a profile of "default").
func s3CredentialsFile(id, secret string) []byte {
	return fmt.Appendf(nil, "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", id, secret)
}

func (s *SourceAnswer) storeSecrets(policy string, dirs Dirs, plan *Plan) error {
	if s.Password == nil {
		return nil
	}
	pw, err := s.Password.resolve("source " + s.Name + ": password")
	if err != nil {
		return err
	}
	p := secretPath(dirs, policy+"-"+s.Name, "password")
	switch {
	case s.Postgres != nil:
		s.Postgres.PasswordFile = p
	case s.MySQL != nil:
		s.MySQL.PasswordFile = p
	default:
		return fmt.Errorf("source %s: only postgres and mysql sources take a password", s.Name)
	}
	plan.Files = append(plan.Files, PlannedFile{Path: p, What: "password of source " + s.Name, Body: []byte(pw + "\n")})
	return nil
}

// IdentityPath is where init keeps the age identity of a policy.
func IdentityPath(dirs Dirs, policy string) string {
	return filepath.Join(dirs.Keys, policy+".key")
}

func OpenSSLKeyPath(dirs Dirs, policy string) string {
	return filepath.Join(dirs.Keys, policy+"-openssl.key")
}

// Prepare settles the keys: with age and no recipients given, the
// identity file's public key (the file is generated when missing); with
// openssl, the key file (generated when missing).
func (e *EncryptionAnswer) Prepare(policy string, dirs Dirs, plan *Plan) error {
	if e.Mode == "" {
		e.Mode = "age"
	}
	switch e.Mode {
	case "age":
		if len(e.Recipients) > 0 || e.RecipientsFile != "" {
			if e.NewKey != nil {
				plan.Files = append(plan.Files, PlannedFile{Path: e.IdentityFile, What: "age identity (the key that decrypts)", Body: e.NewKey, Key: true})
			}
			return nil
		}
		if e.IdentityFile == "" {
			e.IdentityFile = IdentityPath(dirs, policy)
		}
		pub, err := ageKeyOf(e.IdentityFile)
		switch {
		case err == nil:
			e.Recipients = []string{pub}
			return nil
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		k, err := snapshot.GenerateKey(snapshot.KeyKindAge, time.Now())
		if err != nil {
			return err
		}
		e.NewKey, e.Recipients = k.Body, []string{k.Public}
		plan.Files = append(plan.Files, PlannedFile{Path: e.IdentityFile, What: "age identity (the key that decrypts)", Body: k.Body, Key: true})
	case "openssl":
		if e.KeyFile == "" {
			e.KeyFile = OpenSSLKeyPath(dirs, policy)
		}
		if e.NewKey == nil {
			if _, err := os.Stat(e.KeyFile); err == nil {
				return nil
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			k, err := snapshot.GenerateKey(snapshot.KeyKindOpenSSL, time.Now())
			if err != nil {
				return err
			}
			e.NewKey = k.Body
		}
		plan.Files = append(plan.Files, PlannedFile{Path: e.KeyFile, What: "openssl key (the key that decrypts)", Body: e.NewKey, Key: true})
	case "none":
	default:
		return fmt.Errorf("encryption: mode %q is not age, openssl or none", e.Mode)
	}
	return nil
}

// ageKeyOf returns the public key of an age identity file.
func ageKeyOf(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return "", fmt.Errorf("age identity %s: %w", name, err)
	}
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			return x.Recipient().String(), nil
		}
	}
	return "", fmt.Errorf("age identity %s holds no X25519 identity", name)
}

// objects builds the manifests' objects from the answers.
func (a *Answers) objects() ([]*v1.Destination, *v1.BackupPolicy) {
	var dests []*v1.Destination
	var names []string
	for _, d := range a.Destinations {
		dests = append(dests, &v1.Destination{
			TypeMeta: v1.TypeMeta{APIVersion: v1.APIVersion, Kind: v1.KindDestination},
			Metadata: v1.ObjectMeta{Name: d.Name},
			Spec:     d.DestinationSpec,
		})
		names = append(names, d.Name)
	}
	names = append(names, a.OtherDestinations...)
	p := &v1.BackupPolicy{
		TypeMeta: v1.TypeMeta{APIVersion: v1.APIVersion, Kind: v1.KindBackupPolicy},
		Metadata: v1.ObjectMeta{Name: a.Policy, Labels: a.Labels},
		Spec: v1.BackupPolicySpec{
			Schedule:     a.Schedule,
			TimeZone:     a.TimeZone,
			Suspend:      a.Suspend,
			Destinations: names,
			Compression:  a.Compression,
			Hooks:        a.Hooks,
			Notify:       a.Notify,
		},
	}
	for _, s := range a.Sources {
		p.Spec.Sources = append(p.Spec.Sources, s.Source)
	}
	r := a.Retention
	p.Spec.Retention = &r
	e := a.Encryption
	switch e.Mode {
	case "age":
		p.Spec.Encryption = &v1.Encryption{Age: &v1.AgeEncryption{Recipients: e.Recipients, RecipientsFile: e.RecipientsFile}}
	case "openssl":
		p.Spec.Encryption = &v1.Encryption{OpenSSL: &v1.OpenSSLEncryption{KeyFile: e.KeyFile, Iterations: e.Iterations}}
	case "none":
		p.Spec.Encryption = &v1.Encryption{None: true}
	}
	return dests, p
}

const manifestHeader = `Written by aegis-agent init. Re-run it to change this setup (it edits what
is here), or edit by hand: aegis-agent validate checks, and the agent picks
changes up by itself.`

// renderManifests writes the objects as YAML documents in the order of the
// types' fields, with comments where a reader needs to know more.
func renderManifests(a *Answers) ([]byte, error) {
	dests, p := a.objects()
	var out bytes.Buffer
	first := true
	emit := func(obj any, comment string, annotate func(*yaml.Node)) error {
		node, err := toNode(obj)
		if err != nil {
			return err
		}
		if annotate != nil {
			annotate(node)
		}
		if first {
			comment = strings.TrimSpace(manifestHeader + "\n\n" + comment)
			first = false
		} else {
			out.WriteString("---\n")
		}
		node.HeadComment = comment
		body, err := encodeNode(node)
		out.Write(body)
		return err
	}
	for _, d := range dests {
		if err := emit(d, destinationComment(d), nil); err != nil {
			return nil, err
		}
	}
	if err := emit(p, "", func(n *yaml.Node) { annotatePolicy(n, a) }); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func destinationComment(d *v1.Destination) string {
	switch {
	case d.Spec.S3 != nil && d.Spec.S3.CredentialsFile == "":
		return "Credentials: the agent's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)."
	}
	return ""
}

// annotatePolicy adds the comments a policy's reader needs.
func annotatePolicy(doc *yaml.Node, a *Answers) {
	spec := mapValue(doc, "spec")
	if spec == nil {
		return
	}
	if k := mapKey(spec, "encryption"); k != nil {
		switch e := a.Encryption; {
		case e.Mode == "age" && e.IdentityFile != "":
			k.HeadComment = fmt.Sprintf("Restoring needs the age identity %s: keep a copy off this host.", e.IdentityFile)
		case e.Mode == "openssl":
			k.HeadComment = fmt.Sprintf("Restoring needs the key file %s: keep a copy off this host.", e.KeyFile)
		case e.Mode == "none":
			k.HeadComment = "Unencrypted: anyone who can read the destination can read these backups."
		}
	}
	if v := mapValue(spec, "schedule"); v != nil {
		v.Style = yaml.DoubleQuotedStyle
		v.LineComment = DescribeSchedule(a.Schedule)
	}
}

func encodeNode(n *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	err := enc.Close()
	return b.Bytes(), err
}

// toNode converts a typed object into a YAML node tree whose keys follow
// the order of the struct fields (through JSON, which keeps it), with
// plain styles so that the encoder quotes only what needs quoting.
func toNode(obj any) (*yaml.Node, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(j, &doc); err != nil {
		return nil, err
	}
	n := doc.Content[0]
	restyle(n)
	return n, nil
}

func restyle(n *yaml.Node) {
	switch n.Kind {
	case yaml.ScalarNode:
		n.Style = 0
		// A string that a YAML 1.1 reader (PyYAML, so Ansible) would take
		// for a boolean or null keeps its quotes.
		if n.ShortTag() == "!!str" && yaml11Words[strings.ToLower(n.Value)] {
			n.Style = yaml.DoubleQuotedStyle
		}
	case yaml.MappingNode:
		n.Style = 0
		for _, c := range n.Content {
			restyle(c)
		}
	case yaml.SequenceNode:
		width, flat := 0, true
		for _, c := range n.Content {
			restyle(c)
			if c.Kind != yaml.ScalarNode {
				flat = false
			}
			width += len(c.Value) + 4
		}
		// Short lists of scalars read best on one line: [disk, offsite].
		if flat && width <= 88 {
			n.Style = yaml.FlowStyle
		} else {
			n.Style = 0
		}
	}
}

var yaml11Words = map[string]bool{
	"y": true, "n": true, "yes": true, "no": true, "on": true, "off": true,
	"true": true, "false": true, "null": true, "~": true, "": true,
}

func mapKey(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i]
		}
	}
	return nil
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// plannedFiles lets validation see the files init is about to write as
// if they were there (mode 0600), and everything else as it is.
type plannedFiles struct{ plan *Plan }

func (p plannedFiles) Stat(name string) (fs.FileInfo, error) {
	for _, f := range p.plan.Files {
		if f.Path == name {
			return plannedInfo{name: filepath.Base(name), size: int64(len(f.Body))}, nil
		}
	}
	return os.Stat(name)
}

type plannedInfo struct {
	name string
	size int64
}

func (i plannedInfo) Name() string       { return i.name }
func (i plannedInfo) Size() int64        { return i.size }
func (i plannedInfo) Mode() fs.FileMode  { return 0o600 }
func (i plannedInfo) ModTime() time.Time { return time.Time{} }
func (i plannedInfo) IsDir() bool        { return false }
func (i plannedInfo) Sys() any           { return nil }

// Write writes the key and secret files (0600, in directories of
// 0700), then the manifest, each atomically.
func Write(plan *Plan, dirs Dirs) ([]string, error) {
	var wrote []string
	for _, f := range plan.Files {
		if f.Key {
			if old, err := os.ReadFile(f.Path); err == nil {
				if bytes.Equal(old, f.Body) {
					continue
				}
				return wrote, fmt.Errorf("%s already exists: not overwriting a key", f.Path)
			}
		} else if old, err := os.ReadFile(f.Path); err == nil && bytes.Equal(old, f.Body) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
			return wrote, err
		}
		write := atomicfile.Write
		if f.Key {
			write = atomicfile.Create // never over a key, even one written meanwhile
		}
		if err := write(f.Path, f.Body, 0o600); err != nil {
			return wrote, fmt.Errorf("write %s: %w", f.What, err)
		}
		wrote = append(wrote, fmt.Sprintf("%s (%s, mode 0600)", f.Path, f.What))
	}
	if err := os.MkdirAll(filepath.Dir(plan.ManifestPath), 0o750); err != nil {
		return wrote, err
	}
	if old, err := os.ReadFile(plan.ManifestPath); err == nil && bytes.Equal(old, plan.Manifest) {
		return append(wrote, plan.ManifestPath+" (unchanged)"), nil
	}
	if err := atomicfile.Write(plan.ManifestPath, plan.Manifest, 0o640); err != nil {
		return wrote, fmt.Errorf("write manifests: %w", err)
	}
	return append(wrote, plan.ManifestPath+" (manifests)"), nil
}

// DescribeSchedule says a schedule in words, for the manifest and the
// wizard.
func DescribeSchedule(s string) string {
	for _, p := range SchedulePresets {
		if p.Expr == s {
			return p.Label
		}
	}
	return ""
}

var SchedulePresets = []struct{ Expr, Label string }{
	{"0 * * * *", "every hour, on the hour"},
	{"0 */6 * * *", "every 6 hours"},
	{"0 2 * * *", "every day at 02:00"},
	{"0 2 * * 0", "every Sunday at 02:00"},
}
