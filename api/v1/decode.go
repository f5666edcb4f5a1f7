package v1

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	yamlv2 "go.yaml.in/yaml/v2"
	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"
)

// Object is one decoded manifest document.
type Object struct {
	// File and Line locate the start of the document (its first key).
	File string
	Line int

	Kind, Name string

	// Policy is set when Kind is BackupPolicy, Destination when it is
	// Destination.
	Policy      *BackupPolicy
	Destination *Destination

	// SpecHash is the hex SHA-256 of the canonical JSON of the spec: it
	// changes exactly when the spec does.
	SpecHash string

	// lines maps a field path ("spec.sources[0].files.paths[1]") to the
	// line of its key, or of the item for list items.
	lines map[string]int
	// broken holds the paths whose value Decode rejected; Validate does not
	// report again what is missing at or below them.
	broken map[string]bool
}

// LineOf returns the line of the field at path, or of its nearest ancestor
// present in the document.
func (o *Object) LineOf(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := o.lines[p]; ok {
			return l
		}
	}
	return o.Line
}

// parentPath drops the last element of a field path: "a.b[2]" -> "a.b" -> "a".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndex(p, "["); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndex(p, "."); i >= 0 {
		return p[:i]
	}
	return ""
}

// isBroken reports whether path is, or lies below, a value Decode rejected.
func (o *Object) isBroken(path string) bool {
	for p := path; p != ""; p = parentPath(p) {
		if o.broken[p] {
			return true
		}
	}
	return false
}

// Decode strictly decodes the manifest documents of one file. Empty
// documents are skipped. A document with an unknown or missing apiVersion or
// kind is reported and skipped; any other document yields an Object, decoded
// as far as possible even when it has errors, so that Validate can report
// every remaining problem and references to it resolve. A caller must not act
// on an object that has errors (see ErrorList.For). The errors are sorted by
// line.
func Decode(file string, data []byte) ([]*Object, ErrorList) {
	if err, tooBig := CheckManifestSize(file, int64(len(data))); tooBig {
		return nil, ErrorList{err}
	}
	var (
		objs []*Object
		errs ErrorList
	)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The parser cannot resume after a syntax error.
			errs = append(errs, syntaxError(file, data, err))
			break
		}
		if len(doc.Content) == 0 || isNull(doc.Content[0]) {
			continue
		}
		o, derrs := decodeDocument(file, doc.Content[0])
		errs = append(errs, derrs...)
		if o != nil {
			objs = append(objs, o)
		}
	}
	errs.sort()
	return objs, errs
}

func decodeDocument(file string, root *yaml.Node) (*Object, ErrorList) {
	d := &docDecoder{file: file, lines: map[string]int{}, broken: map[string]bool{}}
	if root.Kind != yaml.MappingNode {
		d.errorf(root.Line, "", "a manifest must be a mapping with apiVersion, kind, metadata and spec, not %s", describe(root))
		return nil, d.errs
	}
	if md, _ := lookup(root, "metadata"); md != nil {
		if n, _ := lookup(md, "name"); n != nil && n.Kind == yaml.ScalarNode && !isNull(n) {
			d.name = n.Value
		}
	}
	if !d.header(root) {
		return nil, d.errs
	}

	o := &Object{File: file, Line: root.Line, Kind: d.kind, Name: d.name, lines: d.lines, broken: d.broken}
	var target any
	if d.kind == KindBackupPolicy {
		o.Policy = &BackupPolicy{}
		target = o.Policy
	} else {
		o.Destination = &Destination{}
		target = o.Destination
	}
	clean := d.walk(root, reflect.TypeOf(target).Elem(), "", root.Line)
	if d.tooBig {
		// The other errors would repeat for every copy.
		d.errs = nil
		if d.aliased {
			d.errorf(root.Line, "", "document expands to more than %d values through aliases", maxNodes)
		} else {
			d.errorf(root.Line, "", "document has more than %d values", maxNodes)
		}
		return nil, d.errs
	}

	// The walk has reported every problem and dropped the offending values,
	// so the strict typed decoding of what is left succeeds.
	y, err := yaml.Marshal(clean)
	if err == nil {
		err = sigsyaml.UnmarshalStrict(y, target)
	}
	if err != nil {
		d.errorf(root.Line, "", "cannot decode: %v", err)
		return nil, d.errs
	}

	var spec any
	if o.Policy != nil {
		spec = o.Policy.Spec
	} else {
		spec = o.Destination.Spec
	}
	canonical, err := json.Marshal(spec)
	if err != nil {
		d.errorf(root.Line, "spec", "cannot encode: %v", err)
		return nil, d.errs
	}
	sum := sha256.Sum256(canonical)
	o.SpecHash = hex.EncodeToString(sum[:])
	return o, d.errs
}

// maxNodes bounds the nodes one document may hold or expand to through
// aliases.
const maxNodes = 100000

// MaxManifestSize is the largest manifest file Aegis reads, 1 MiB: far
// above any real policy, and a bound on the memory and time one file costs.
const MaxManifestSize = 1 << 20

// CheckManifestSize returns the error for a manifest file of size bytes
// and true when it is over MaxManifestSize; a loader may call it with the
// file's size before reading the file, and Decode calls it too.
func CheckManifestSize(file string, size int64) (FieldError, bool) {
	if size <= MaxManifestSize {
		return FieldError{}, false
	}
	return FieldError{File: file, Message: fmt.Sprintf(
		"manifest file is %d bytes, over the limit of 1 MiB (%d bytes); split it into several files", size, MaxManifestSize)}, true
}

// docDecoder checks one document's node tree against the Go type it decodes
// into, records the line of every field, and builds a copy of the tree
// without the values it rejected, with every string quoted so that the YAML
// 1.1 decoder underneath sigs.k8s.io/yaml reads what yaml.v3 read (no "no"
// turned into false).
type docDecoder struct {
	file, kind, name string
	lines            map[string]int
	broken           map[string]bool
	errs             ErrorList
	nodes            int
	tooBig           bool
	// aliased is set once the walk has followed an alias: only then can
	// the document be bigger than its text.
	aliased bool
}

func (d *docDecoder) errorf(line int, path, format string, args ...any) {
	d.errs = append(d.errs, FieldError{
		File: d.file, Line: line, Kind: d.kind, Name: d.name, Field: path,
		Message: fmt.Sprintf(format, args...),
	})
}

// header checks the apiVersion and kind that pick the document's type,
// sets d.kind when it is known and reports whether the document can be
// decoded.
func (d *docDecoder) header(root *yaml.Node) bool {
	av, avKey := lookup(root, "apiVersion")
	kind, kindKey := lookup(root, "kind")
	if present(kind) && kind.Kind == yaml.ScalarNode && (kind.Value == KindBackupPolicy || kind.Value == KindDestination) {
		d.kind = kind.Value
	}
	ok := true
	switch {
	case !present(av):
		d.errorf(keyLine(avKey, root), "apiVersion", "is required (apiVersion: %s)", APIVersion)
		ok = false
	case av.Kind != yaml.ScalarNode || av.Value != APIVersion:
		d.errorf(avKey.Line, "apiVersion", "unsupported apiVersion %s: must be %s", shown(av), APIVersion)
		ok = false
	}
	switch {
	case !present(kind):
		d.errorf(keyLine(kindKey, root), "kind", "is required (%s or %s)", KindBackupPolicy, KindDestination)
		ok = false
	case d.kind == "":
		d.errorf(kindKey.Line, "kind", "unknown kind %s: must be %s or %s", shown(kind), KindBackupPolicy, KindDestination)
		ok = false
	}
	return ok
}

// present reports whether a header field has a value.
func present(v *yaml.Node) bool {
	return v != nil && !isNull(v) && !(v.Kind == yaml.ScalarNode && v.Value == "")
}

// shown quotes a header value for a message.
func shown(v *yaml.Node) string {
	if v.Kind == yaml.ScalarNode {
		return strconv.Quote(v.Value)
	}
	return describe(v)
}

// keyLine is the line of a key, or of the document when it is absent.
func keyLine(key, root *yaml.Node) int {
	if key != nil {
		return key.Line
	}
	return root.Line
}

// lookup returns the value and key of the first pair named key of a mapping.
func lookup(m *yaml.Node, key string) (value, keyNode *yaml.Node) {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := deref(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return deref(m.Content[i+1]), m.Content[i]
		}
	}
	return nil, nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func nullNode() *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"} }
func emptyMap() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }
func emptySeq() *yaml.Node { return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"} }

// walk checks n against t and returns the clean copy of n, or nil when the
// value is dropped. line is where a problem with the value is reported: the
// line of its key, or of the item in a list.
func (d *docDecoder) walk(n *yaml.Node, t reflect.Type, path string, line int) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode {
		d.aliased = true
	}
	n = deref(n)
	if d.nodes++; d.nodes > maxNodes {
		d.tooBig = true
		return nil
	}
	if isNull(n) {
		// JSON null leaves the field at its zero value, like an absent key.
		return nullNode()
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.typeError(n, "a mapping", path, line)
			return emptyMap()
		}
		return d.walkStruct(n, t, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.typeError(n, "a mapping", path, line)
			return emptyMap()
		}
		return d.walkMap(n, t, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.typeError(n, "a list", path, line)
			return emptySeq()
		}
		return d.walkSlice(n, t, path)
	}
	if out, ok := d.walkScalar(n, t, path, line); ok {
		return out
	}
	// Types without a fixed shape (any) take the value as it is.
	return unaliased(n)
}

// walkSlice checks each item of a list against the element type.
func (d *docDecoder) walkSlice(n *yaml.Node, t reflect.Type, path string) *yaml.Node {
	out := emptySeq()
	for i, item := range n.Content {
		child := fmt.Sprintf("%s[%d]", path, i)
		d.lines[child] = item.Line
		c := d.walk(item, t.Elem(), child, item.Line)
		if c == nil {
			// Keep the indexes of the items after it.
			c = nullNode()
		}
		out.Content = append(out.Content, c)
	}
	return out
}

// walkScalar checks a scalar against a string, bool or number type and
// returns it re-tagged, or nil after recording the error; ok is false for
// a type without a fixed shape (any), which the caller takes as it is.
func (d *docDecoder) walkScalar(n *yaml.Node, t reflect.Type, path string, line int) (out *yaml.Node, ok bool) {
	switch t.Kind() {
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.typeError(n, "a string", path, line)
			return nil, true
		}
		// Any scalar is taken as written: "1.10" stays "1.10".
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: n.Value, Style: yaml.DoubleQuotedStyle}, true
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.typeError(n, "true or false", path, line)
			return nil, true
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}, true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return d.walkInt(n, t, path, line), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return d.walkUint(n, t, path, line), true
	case reflect.Float32, reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!float" && n.ShortTag() != "!!int") || n.Decode(&f) != nil {
			d.typeError(n, "a number", path, line)
			return nil, true
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(f, 'g', -1, 64)}, true
	}
	return nil, false
}

func (d *docDecoder) walkInt(n *yaml.Node, t reflect.Type, path string, line int) *yaml.Node {
	var i int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
		d.typeError(n, "an integer", path, line)
		return nil
	}
	if reflect.Zero(t).OverflowInt(i) {
		d.errorf(line, path, "%d is out of range", i)
		d.broken[path] = true
		return nil
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(i, 10)}
}

func (d *docDecoder) walkUint(n *yaml.Node, t reflect.Type, path string, line int) *yaml.Node {
	var u uint64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&u) != nil {
		d.typeError(n, "a non-negative integer", path, line)
		return nil
	}
	if reflect.Zero(t).OverflowUint(u) {
		d.errorf(line, path, "%d is out of range", u)
		d.broken[path] = true
		return nil
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatUint(u, 10)}
}

// unaliased copies a node tree with its aliases expanded, so that the copy
// needs no anchor from elsewhere.
func unaliased(n *yaml.Node) *yaml.Node {
	n = deref(n)
	c := *n
	c.Anchor = ""
	c.Content = nil
	for _, child := range n.Content {
		c.Content = append(c.Content, unaliased(child))
	}
	return &c
}

func (d *docDecoder) typeError(n *yaml.Node, want, path string, line int) {
	d.errorf(line, path, "must be %s, not %s", want, describe(n))
	d.broken[path] = true
}

// describe names what a node holds, for messages.
func describe(n *yaml.Node) string {
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	v := n.Value
	if isAgeSecretKey(v) {
		// Never repeat a secret in a message.
		return "an age secret key (AGE-SECRET-KEY-..., not shown)"
	}
	if r := []rune(v); len(r) > 80 {
		v = string(r[:77]) + "..."
	}
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!bool":
		return v
	case "!!int", "!!float":
		return "the number " + v
	case "!!str":
		return fmt.Sprintf("the string %q", v)
	}
	return fmt.Sprintf("%s %q", n.ShortTag(), v)
}

// pair is one key and value of a mapping; merged pairs come from a "<<" key.
type pair struct {
	key, value *yaml.Node
	merged     bool
}

// pairs lists the pairs of a mapping with "<<" merges expanded; explicit
// keys win over merged ones, as YAML says.
func (d *docDecoder) pairs(m *yaml.Node, path string) []pair {
	var explicit, merged []pair
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if dk := deref(k); dk.Kind == yaml.ScalarNode && dk.ShortTag() == "!!merge" {
			if v.Kind == yaml.AliasNode || v.Kind == yaml.SequenceNode {
				d.aliased = true
			}
			src := deref(v)
			var maps []*yaml.Node
			switch src.Kind {
			case yaml.MappingNode:
				maps = []*yaml.Node{src}
			case yaml.SequenceNode:
				maps = src.Content
			}
			for _, mm := range maps {
				if mm = deref(mm); mm.Kind != yaml.MappingNode {
					d.errorf(k.Line, path, "a merge (<<) must name a mapping or a list of mappings")
					continue
				}
				for _, p := range d.pairs(mm, path) {
					p.merged = true
					merged = append(merged, p)
				}
			}
			if src.Kind != yaml.MappingNode && src.Kind != yaml.SequenceNode {
				d.errorf(k.Line, path, "a merge (<<) must name a mapping or a list of mappings")
			}
			continue
		}
		explicit = append(explicit, pair{key: k, value: v})
	}
	if len(merged) == 0 {
		return explicit
	}
	have := map[string]bool{}
	for _, p := range explicit {
		have[deref(p.key).Value] = true
	}
	out := explicit
	for _, p := range merged {
		name := deref(p.key).Value
		if !have[name] {
			have[name] = true
			out = append(out, p)
		}
	}
	return out
}

// key checks a mapping key and returns its name.
func (d *docDecoder) key(k *yaml.Node, path string) (string, bool) {
	dk := deref(k)
	if dk.Kind != yaml.ScalarNode {
		d.errorf(k.Line, path, "a key must be a string, not %s", describe(dk))
		return "", false
	}
	return dk.Value, true
}

func (d *docDecoder) walkStruct(m *yaml.Node, t reflect.Type, path string) *yaml.Node {
	fields := jsonFields(t)
	out := emptyMap()
	seen := map[string]int{}
	for _, p := range d.pairs(m, path) {
		name, ok := d.key(p.key, path)
		if !ok {
			continue
		}
		child := joinPath(path, name)
		if first, dup := seen[name]; dup {
			if !p.merged {
				d.errorf(p.key.Line, child, "duplicate key (first at line %d)", first)
			}
			continue
		}
		seen[name] = p.key.Line
		ft, known := fields.types[name]
		if !known {
			d.errorf(p.key.Line, child, "unknown field%s", fields.suggest(name))
			continue
		}
		d.lines[child] = p.key.Line
		if v := d.walk(p.value, ft, child, p.key.Line); v != nil {
			out.Content = append(out.Content, quotedKey(name), v)
		}
	}
	return out
}

func (d *docDecoder) walkMap(m *yaml.Node, t reflect.Type, path string) *yaml.Node {
	out := emptyMap()
	seen := map[string]int{}
	for _, p := range d.pairs(m, path) {
		name, ok := d.key(p.key, path)
		if !ok {
			continue
		}
		child := path + "[" + name + "]"
		if first, dup := seen[name]; dup {
			if !p.merged {
				d.errorf(p.key.Line, child, "duplicate key (first at line %d)", first)
			}
			continue
		}
		seen[name] = p.key.Line
		d.lines[child] = p.key.Line
		if v := d.walk(p.value, t.Elem(), child, p.key.Line); v != nil {
			out.Content = append(out.Content, quotedKey(name), v)
		}
	}
	return out
}

func quotedKey(name string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name, Style: yaml.DoubleQuotedStyle}
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// fieldSet is the JSON view of a struct type: its field names, with the
// fields of embedded structs promoted as encoding/json does.
type fieldSet struct {
	types map[string]reflect.Type
	names []string // in declaration order
}

func jsonFields(t reflect.Type) fieldSet {
	fs := fieldSet{types: map[string]reflect.Type{}}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					add(ft)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, ok := fs.types[name]; !ok {
				fs.types[name] = f.Type
				fs.names = append(fs.names, name)
			}
		}
	}
	add(t)
	return fs
}

// suggest returns " (did you mean "x"?)" for a near miss, or the list of
// known fields.
func (fs fieldSet) suggest(name string) string {
	best, bestDist := "", 3
	for _, known := range fs.names {
		if strings.EqualFold(known, name) {
			return fmt.Sprintf(" (did you mean %q?)", known)
		}
		if dist := editDistance(strings.ToLower(known), strings.ToLower(name)); dist < bestDist {
			best, bestDist = known, dist
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	if len(fs.names) == 0 {
		return ""
	}
	return " (known fields: " + strings.Join(fs.names, ", ") + ")"
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

var (
	yamlErrLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	// parserErrors are the messages of yaml's parser, as opposed to its
	// scanner: for them yaml.v3 reports the 0-based line of the enclosing
	// block, far from the mistake in a long mapping, while yaml.v2 reports
	// the 0-based line where parsing stopped.
	parserErrors = []string{
		"did not find expected key",
		"did not find expected node content",
		"did not find expected '-' indicator",
		"did not find expected ',' or ']'",
		"did not find expected ',' or '}'",
		"did not find expected <document start>",
	}
)

// syntaxError turns a yaml.v3 syntax error into an error on the line of the
// mistake.
func syntaxError(file string, data []byte, err error) FieldError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlErrLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	switch {
	case isParserError(msg):
		if l := yamlv2ErrorLine(data, msg); l > 0 {
			line = l
		} else {
			line++
		}
	case strings.HasPrefix(msg, "unknown anchor "):
		// yaml.v3 gives no line for these: find the alias.
		if name, _, ok := strings.Cut(strings.TrimPrefix(msg, "unknown anchor '"), "'"); ok {
			line = aliasLine(data, name)
		}
	}
	if line == 0 {
		// Both marks were on the first line.
		line = 1
	}
	return FieldError{File: file, Line: line, Message: "yaml: " + msg}
}

func isParserError(msg string) bool {
	for _, p := range parserErrors {
		if msg == p {
			return true
		}
	}
	return false
}

// yamlv2ErrorLine returns the 1-based line where yaml.v2 stops with the same
// parser error, or 0.
func yamlv2ErrorLine(data []byte, msg string) int {
	dec := yamlv2.NewDecoder(bytes.NewReader(data))
	for {
		var v any
		err := dec.Decode(&v)
		if err == nil {
			continue
		}
		m := yamlErrLine.FindStringSubmatch(err.Error())
		if m == nil || m[2] != msg {
			return 0
		}
		l, _ := strconv.Atoi(m[1])
		return l + 1
	}
}

func aliasLine(data []byte, name string) int {
	re := regexp.MustCompile(`\*` + regexp.QuoteMeta(name) + `(?:[\s,\]}]|$)`)
	for i, l := range strings.Split(string(data), "\n") {
		if re.MatchString(l) {
			return i + 1
		}
	}
	return 0
}

// FieldError is one problem of a manifest, located by file, line and field
// path.
type FieldError struct {
	File string
	Line int
	// Kind and Name identify the object; either may be empty when the
	// document did not say.
	Kind, Name string
	// Field is the JSON path of the field, such as
	// "spec.sources[0].files.paths[1]"; empty for the whole document.
	Field   string
	Message string
}

// Error returns "FILE:LINE: Kind/name: field.path: message", leaving out
// the object when neither kind nor name is known ("?" stands for the one
// missing) and the field when empty.
func (e FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		if e.File != "" {
			b.WriteString(":")
		}
		b.WriteString(strconv.Itoa(e.Line))
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Kind != "" || e.Name != "" {
		b.WriteString(orUnknown(e.Kind))
		b.WriteString("/")
		b.WriteString(orUnknown(e.Name))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// ErrorList is a list of manifest problems, sorted by file and line.
type ErrorList []FieldError

// Error returns one line per problem.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// For returns the problems of the object of that kind and name.
func (l ErrorList) For(kind, name string) ErrorList {
	var out ErrorList
	for _, e := range l {
		if e.Kind == kind && e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

func (l ErrorList) sort() {
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].File != l[j].File {
			return l[i].File < l[j].File
		}
		return l[i].Line < l[j].Line
	})
}
