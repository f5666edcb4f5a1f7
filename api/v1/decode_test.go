package v1

import (
	"os"
	"strings"
	"testing"
)

func TestDecodeGoodFile(t *testing.T) {
	data, err := os.ReadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, errs := Decode("good.yaml", data)
	if len(errs) != 0 {
		t.Fatalf("Decode: unexpected errors:\n%v", errs)
	}
	if len(objs) != 2 {
		t.Fatalf("Decode returned %d objects, want 2 (the trailing --- is empty)", len(objs))
	}

	d := objs[0]
	if d.Kind != KindDestination || d.Name != "disk" || d.File != "good.yaml" || d.Line != 2 {
		t.Errorf("first object = %s/%s at %s:%d, want Destination/disk at good.yaml:2", d.Kind, d.Name, d.File, d.Line)
	}
	if d.Destination == nil || d.Policy != nil {
		t.Fatalf("Destination = %v, Policy = %v; want only Destination set", d.Destination, d.Policy)
	}
	if got, want := d.Destination.Spec.Local.Path, "/var/backups/aegis"; got != want {
		t.Errorf("spec.local.path = %q, want %q", got, want)
	}

	p := objs[1]
	if p.Kind != KindBackupPolicy || p.Name != "web" || p.Line != 8 || p.Policy == nil {
		t.Fatalf("second object = %s/%s at line %d (policy %v), want BackupPolicy/web at line 8", p.Kind, p.Name, p.Line, p.Policy)
	}
	spec := p.Policy.Spec
	if got, want := spec.Sources[0].Files.Paths[1], "/etc/nginx"; got != want {
		t.Errorf("spec.sources[0].files.paths[1] = %q, want %q", got, want)
	}
	// YAML 1.2: a bare no is a string, not false.
	if got, want := spec.Sources[1].Postgres.User, "no"; got != want {
		t.Errorf("spec.sources[1].postgres.user = %q, want %q", got, want)
	}
	if got, want := p.Policy.Metadata.Labels["team"], "no"; got != want {
		t.Errorf("metadata.labels[team] = %q, want %q", got, want)
	}
	if spec.Encryption == nil || spec.Encryption.Mode() != "age" {
		t.Errorf("spec.encryption = %+v, want age", spec.Encryption)
	}
	if spec.Retention == nil || spec.Retention.Monthly != 12 {
		t.Errorf("spec.retention = %+v, want monthly 12", spec.Retention)
	}
	if p.SpecHash == "" || p.SpecHash == d.SpecHash {
		t.Errorf("SpecHash = %q (destination %q), want distinct non-empty hashes", p.SpecHash, d.SpecHash)
	}

	for path, want := range map[string]int{
		"":                                8,
		"metadata.name":                   11,
		"metadata.labels[tier]":           14,
		"spec":                            15,
		"spec.sources[0]":                 19,
		"spec.sources[0].files.paths":     21,
		"spec.sources[0].files.paths[1]":  21,
		"spec.sources[1].postgres.user":   26,
		"spec.sources[1].mysql.host":      23, // absent: its source's line
		"spec.compression.level":          15, // absent: spec's line
		"spec.encryption.age.recipients":  30,
		"spec.retention.monthly":          31,
		"spec.destinations[0]":            28,
		"spec.sources[5].files.paths[10]": 18, // spec.sources
	} {
		if got := p.LineOf(path); got != want {
			t.Errorf("LineOf(%q) = %d, want %d", path, got, want)
		}
	}
}

func TestDecodeSpecHash(t *testing.T) {
	const base = `apiVersion: aegis.io/v1
kind: Destination
metadata: {name: disk}
spec:
  local: {path: /a}
`
	hash := func(doc string) string {
		t.Helper()
		objs, errs := Decode("h.yaml", []byte(doc))
		if len(errs) != 0 || len(objs) != 1 {
			t.Fatalf("Decode(%q) = %d objects, errors:\n%v", doc, len(objs), errs)
		}
		return objs[0].SpecHash
	}
	h := hash(base)
	if len(h) != 64 {
		t.Errorf("SpecHash = %q, want 64 hex digits", h)
	}
	reformatted := "# same spec, other layout\nkind: Destination\napiVersion: aegis.io/v1\nmetadata:\n  name: disk\n  labels: {a: b}\nspec:\n  local:\n    path: \"/a\"\n"
	if got := hash(reformatted); got != h {
		t.Errorf("SpecHash changed with layout and metadata only: %s != %s", got, h)
	}
	if got := hash(strings.Replace(base, "/a", "/b", 1)); got == h {
		t.Errorf("SpecHash did not change when spec.local.path did")
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
		// objects is how many objects Decode must still return.
		objects int
	}{
		{
			name: "unknown top-level field",
			yaml: `apiVersion: aegis.io/v1
kind: Destination
metadata: {name: disk}
specs:
  local: {path: /a}
`,
			want:    []string{`m.yaml:4: Destination/disk: specs: unknown field (did you mean "spec"?)`},
			objects: 1,
		},
		{
			name: "unknown fields nested deep",
			yaml: `apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: web}
spec:
  schedule: "@daily"
  sources:
    - name: a
      files: {paths: [/a]}
    - name: b
      files:
        paths: [/b]
        exludes: ["*.log"]
        followSymlinks: true
  destinations: [disk]
  encryption: {none: true}
`,
			want: []string{
				`m.yaml:12: BackupPolicy/web: spec.sources[1].files.exludes: unknown field (did you mean "exclude"?)`,
				`m.yaml:13: BackupPolicy/web: spec.sources[1].files.followSymlinks: unknown field (known fields: paths, exclude, oneFileSystem)`,
			},
			objects: 1,
		},
		{
			name: "field names are case-sensitive",
			yaml: `apiVersion: aegis.io/v1
kind: Destination
metadata: {Name: disk}
spec:
  local: {path: /a}
`,
			want:    []string{`m.yaml:3: Destination/?: metadata.Name: unknown field (did you mean "name"?)`},
			objects: 1,
		},
		{
			name: "wrong types",
			yaml: `apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: web
  labels: [a, b]
spec:
  schedule: "@daily"
  suspend: "yes"
  sources:
    - name: db
      postgres:
        port: "5432"
        databases: app
    - name: files
      files: {paths: [/a, {b: c}, /d], oneFileSystem: 1}
    - just-a-name
  destinations: {disk: true}
  compression: {level: high}
  encryption: none
  retention: {daily: 7.5}
`,
			want: []string{
				`m.yaml:5: BackupPolicy/web: metadata.labels: must be a mapping, not a list`,
				`m.yaml:8: BackupPolicy/web: spec.suspend: must be true or false, not the string "yes"`,
				`m.yaml:12: BackupPolicy/web: spec.sources[0].postgres.port: must be an integer, not the string "5432"`,
				`m.yaml:13: BackupPolicy/web: spec.sources[0].postgres.databases: must be a list, not the string "app"`,
				`m.yaml:15: BackupPolicy/web: spec.sources[1].files.paths[1]: must be a string, not a mapping`,
				`m.yaml:15: BackupPolicy/web: spec.sources[1].files.oneFileSystem: must be true or false, not the number 1`,
				`m.yaml:16: BackupPolicy/web: spec.sources[2]: must be a mapping, not the string "just-a-name"`,
				`m.yaml:17: BackupPolicy/web: spec.destinations: must be a list, not a mapping`,
				`m.yaml:18: BackupPolicy/web: spec.compression.level: must be an integer, not the string "high"`,
				`m.yaml:19: BackupPolicy/web: spec.encryption: must be a mapping, not the string "none"`,
				`m.yaml:20: BackupPolicy/web: spec.retention.daily: must be an integer, not the number 7.5`,
			},
			objects: 1,
		},
		{
			name: "integer out of range",
			yaml: `apiVersion: aegis.io/v1
kind: Destination
metadata: {name: disk}
spec:
  sftp: {host: h, port: 99999999999999999999, user: u, path: /p, knownHostsFile: /k, passwordFile: /p}
`,
			want:    []string{`m.yaml:5: Destination/disk: spec.sftp.port: must be an integer, not the number 99999999999999999999`},
			objects: 1,
		},
		{
			name: "duplicate keys",
			yaml: `apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: web
  labels: {a: x, b: y, a: z}
spec:
  schedule: "@daily"
  schedule: "@hourly"
  sources:
    - name: a
      files: {paths: [/a]}
      name: b
  destinations: [disk]
  encryption: {none: true}
metadata: {name: other}
`,
			want: []string{
				`m.yaml:5: BackupPolicy/web: metadata.labels[a]: duplicate key (first at line 5)`,
				`m.yaml:8: BackupPolicy/web: spec.schedule: duplicate key (first at line 7)`,
				`m.yaml:12: BackupPolicy/web: spec.sources[0].name: duplicate key (first at line 10)`,
				`m.yaml:15: BackupPolicy/web: metadata: duplicate key (first at line 3)`,
			},
			objects: 1,
		},
		{
			name: "missing apiVersion and kind",
			yaml: `metadata: {name: disk}
spec:
  local: {path: /a}
`,
			want: []string{
				`m.yaml:1: ?/disk: apiVersion: is required (apiVersion: aegis.io/v1)`,
				`m.yaml:1: ?/disk: kind: is required (BackupPolicy or Destination)`,
			},
		},
		{
			name: "unknown apiVersion",
			yaml: `apiVersion: aegis.io/v2
kind: Destination
metadata: {name: disk}
spec: {local: {path: /a}, bogus: 1}
`,
			want: []string{`m.yaml:1: Destination/disk: apiVersion: unsupported apiVersion "aegis.io/v2": must be aegis.io/v1`},
		},
		{
			name: "unknown kind",
			yaml: `# a comment
apiVersion: aegis.io/v1
kind: Backup
metadata: {name: web}
`,
			want: []string{`m.yaml:3: ?/web: kind: unknown kind "Backup": must be BackupPolicy or Destination`},
		},
		{
			name: "kind is no string",
			yaml: `apiVersion: aegis.io/v1
kind: [Destination]
`,
			want: []string{`m.yaml:2: kind: unknown kind a list: must be BackupPolicy or Destination`},
		},
		{
			name: "document is not a mapping",
			yaml: `- apiVersion: aegis.io/v1
  kind: Destination
`,
			want: []string{`m.yaml:1: a manifest must be a mapping with apiVersion, kind, metadata and spec, not a list`},
		},
		{
			name: "syntax: key indented wrongly deep in a mapping",
			yaml: `apiVersion: aegis.io/v1
kind: Destination
metadata:
  name: disk
spec:
  local:
    path: /a
   bad: 1
`,
			want: []string{`m.yaml:8: yaml: did not find expected key`},
		},
		{
			name: "syntax: list item indented wrongly",
			yaml: `apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: web}
spec:
  sources:
    - name: a
      files: {paths: [/a]}
   - name: b
`,
			want: []string{`m.yaml:8: yaml: did not find expected key`},
		},
		{
			name: "syntax: unterminated quote",
			yaml: `apiVersion: aegis.io/v1
kind: Destination
metadata: {name: "disk}
spec:
  local: {path: /a}
`,
			want: []string{`m.yaml:3: yaml: found unexpected end of stream`},
		},
		{
			name: "syntax: tab indentation",
			yaml: "apiVersion: aegis.io/v1\nkind: Destination\nmetadata:\n\tname: disk\n",
			want: []string{`m.yaml:4: yaml: found character that cannot start any token`},
		},
		{
			name: "syntax: mapping value in a plain scalar",
			yaml: `apiVersion: aegis.io/v1
kind: Destination
metadata: {name: disk}
spec:
  local: {path: /a}
  sftp: host: x
`,
			want: []string{`m.yaml:6: yaml: mapping values are not allowed in this context`},
		},
		{
			name: "syntax: unknown anchor",
			yaml: `apiVersion: aegis.io/v1
kind: Destination
metadata: {name: disk}
spec:
  local: *paths
`,
			want: []string{`m.yaml:5: yaml: unknown anchor 'paths' referenced`},
		},
		{
			name: "syntax error in a later document keeps the earlier ones",
			yaml: `apiVersion: aegis.io/v1
kind: Destination
metadata: {name: disk}
spec:
  local: {path: /a}
---
apiVersion: aegis.io/v1
kind: Destination
metadata: {name: [disk2}
`,
			want:    []string{`m.yaml:9: yaml: did not find expected ',' or ']'`},
			objects: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, errs := Decode("m.yaml", []byte(tt.yaml))
			assertErrors(t, errs, tt.want)
			if len(objs) != tt.objects {
				t.Errorf("Decode returned %d objects, want %d", len(objs), tt.objects)
			}
		})
	}
}

func TestDecodeMultiDocument(t *testing.T) {
	const file = `apiVersion: aegis.io/v1
kind: Destination
metadata: {name: disk}
spec:
  local: {path: /var/backups}
---
---
# the second document has problems
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: web}
spec:
  schedule: "@daily"
  sources:
    - name: site
      files: {paths: [/var/www], exclude: "*.log"}
  destinations: [disk]
  encryption: {none: true}
  retention: {daily: 7, hourly: 24, daly: 7}
`
	objs, errs := Decode("multi.yaml", []byte(file))
	assertErrors(t, errs, []string{
		`multi.yaml:16: BackupPolicy/web: spec.sources[0].files.exclude: must be a list, not the string "*.log"`,
		`multi.yaml:19: BackupPolicy/web: spec.retention.daly: unknown field (did you mean "daily"?)`,
	})
	if len(errs.For(KindDestination, "disk")) != 0 {
		t.Errorf("errors attributed to Destination/disk: %v", errs.For(KindDestination, "disk"))
	}
	if got := len(errs.For(KindBackupPolicy, "web")); got != 2 {
		t.Errorf("errors for BackupPolicy/web: %d, want 2", got)
	}
	if len(objs) != 2 {
		t.Fatalf("Decode returned %d objects, want 2", len(objs))
	}
	// The broken policy is decoded as far as possible.
	p := objs[1].Policy
	if p == nil || objs[1].Line != 9 {
		t.Fatalf("second object: policy %v at line %d, want a policy at line 9", p, objs[1].Line)
	}
	if got := p.Spec.Sources[0].Files.Paths; len(got) != 1 || got[0] != "/var/www" {
		t.Errorf("paths = %q, want [/var/www]", got)
	}
	if p.Spec.Retention.Daily != 7 || p.Spec.Retention.Hourly != 24 {
		t.Errorf("retention = %+v, want daily 7 and hourly 24", p.Spec.Retention)
	}
	// Validation does not report again what Decode rejected.
	assertErrors(t, Validate(objs, nil), nil)
}

func TestDecodeAliasesAndMerges(t *testing.T) {
	const file = `apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: web}
spec:
  schedule: "@daily"
  sources:
    - &site
      name: site
      files: {paths: [/var/www]}
    - <<: *site
      name: site2
      extra: 1
  destinations: [disk]
  encryption: {none: true}
`
	objs, errs := Decode("a.yaml", []byte(file))
	assertErrors(t, errs, []string{`a.yaml:12: BackupPolicy/web: spec.sources[1].extra: unknown field (known fields: name, files, postgres, mysql, dockerVolume, system, hooks)`})
	src := objs[0].Policy.Spec.Sources[1]
	if src.Name != "site2" || src.Files == nil || src.Files.Paths[0] != "/var/www" {
		t.Errorf("merged source = %+v, want site2 with the paths of site", src)
	}
}

func TestDecodeAliasBomb(t *testing.T) {
	// 100 sources x 100 hooks x 100 arguments, each through an alias.
	aliases := func(name string) string {
		return "[" + strings.TrimSuffix(strings.Repeat("*"+name+", ", 100), ", ") + "]"
	}
	doc := `apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: bomb}
spec:
  schedule: "@daily"
  hooks:
    before:
      - &arg x
      - &hook {command: ` + aliases("arg") + `}
      - &source {name: s, hooks: {before: ` + aliases("hook") + `}}
  sources: ` + aliases("source") + `
`
	objs, errs := Decode("b.yaml", []byte(doc))
	assertErrors(t, errs, []string{
		"b.yaml:1: BackupPolicy/bomb: document expands to more than 100000 values through aliases",
	})
	if len(objs) != 0 {
		t.Errorf("Decode returned %d objects, want the document refused", len(objs))
	}
}

func TestFieldErrorString(t *testing.T) {
	tests := []struct {
		e    FieldError
		want string
	}{
		{FieldError{File: "a.yaml", Line: 3, Kind: "BackupPolicy", Name: "web", Field: "spec.schedule", Message: "is required"}, "a.yaml:3: BackupPolicy/web: spec.schedule: is required"},
		{FieldError{File: "a.yaml", Line: 3, Kind: "BackupPolicy", Message: "bad"}, "a.yaml:3: BackupPolicy/?: bad"},
		{FieldError{File: "a.yaml", Line: 3, Name: "web", Field: "kind", Message: "bad"}, "a.yaml:3: ?/web: kind: bad"},
		{FieldError{File: "a.yaml", Line: 7, Message: "yaml: oops"}, "a.yaml:7: yaml: oops"},
		{FieldError{File: "a.yaml", Message: "unreadable"}, "a.yaml: unreadable"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	l := ErrorList{tests[0].e, tests[3].e}
	if got, want := l.Error(), tests[0].want+"\n"+tests[3].want; got != want {
		t.Errorf("ErrorList.Error() = %q, want %q", got, want)
	}
	if got := l.For("BackupPolicy", "web"); len(got) != 1 || got[0] != tests[0].e {
		t.Errorf("For(BackupPolicy, web) = %v, want the first error only", got)
	}
}

// assertErrors compares the full error lines.
func assertErrors(t *testing.T, errs ErrorList, want []string) {
	t.Helper()
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n got:\n  %s\n want:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
