package files

import (
	"archive/tar"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os/user"

	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Extended attributes travel as PAX records, the way GNU tar writes them
// with --xattrs --acls, so that `tar --xattrs --xattrs-include='*' --acls
// -xpf` restores them without Aegis: each attribute as SCHILY.xattr.NAME
// with its raw value (POSIX ACLs are the system.posix_acl_access and
// system.posix_acl_default attributes, file capabilities
// security.capability), and each ACL also as text in SCHILY.acl.access or
// SCHILY.acl.default, which is what GNU tar's --acls reads.
const (
	paxXattr        = "SCHILY.xattr."
	paxACLAccess    = "SCHILY.acl.access"
	paxACLDefault   = "SCHILY.acl.default"
	xattrACLAccess  = "system.posix_acl_access"
	xattrACLDefault = "system.posix_acl_default"
)

// readXattrs returns the extended attributes of the file open as fd, or of
// path (not following a symlink) when fd is negative. A file system
// without extended attributes gives none.
func readXattrs(fd int, path string) (map[string][]byte, error) {
	list, err := growRead(func(buf []byte) (int, error) {
		if fd >= 0 {
			return unix.Flistxattr(fd, buf)
		}
		return unix.Llistxattr(path, buf)
	})
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil || len(list) == 0 {
		return nil, err
	}
	attrs := map[string][]byte{}
	for name := range strings.SplitSeq(strings.TrimSuffix(string(list), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		v, err := growRead(func(buf []byte) (int, error) {
			if fd >= 0 {
				return unix.Fgetxattr(fd, name, buf)
			}
			return unix.Lgetxattr(path, name, buf)
		})
		if errors.Is(err, unix.ENODATA) {
			continue // removed since it was listed
		}
		if err != nil {
			return nil, fmt.Errorf("extended attribute %s: %w", name, err)
		}
		attrs[name] = v
	}
	return attrs, nil
}

// growRead calls read with a buffer large enough for what it returns.
func growRead(read func([]byte) (int, error)) ([]byte, error) {
	for range 8 {
		size, err := read(nil)
		if err != nil {
			return nil, err
		}
		if size == 0 {
			return nil, nil
		}
		buf := make([]byte, size)
		n, err := read(buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew between the two calls
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	return nil, unix.ERANGE
}

// addXattrs records attrs in h as PAX records. Names that a PAX record
// cannot carry ("=" in them) are returned, not recorded.
func addXattrs(h *tar.Header, attrs map[string][]byte, names *idNames) (dropped []string) {
	if len(attrs) == 0 {
		return nil
	}
	if h.PAXRecords == nil {
		h.PAXRecords = map[string]string{}
	}
	for name, v := range attrs {
		if strings.Contains(name, "=") {
			dropped = append(dropped, name)
			continue
		}
		h.PAXRecords[paxXattr+name] = string(v)
		switch name {
		case xattrACLAccess:
			if text, ok := aclText(v, names); ok {
				h.PAXRecords[paxACLAccess] = text
			}
		case xattrACLDefault:
			if text, ok := aclText(v, names); ok {
				h.PAXRecords[paxACLDefault] = text
			}
		}
	}
	slices.Sort(dropped)
	return dropped
}

// POSIX ACL entry tags of the kernel's xattr form.
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

// aclText converts an ACL in the kernel's xattr form (version 2, then
// entries of tag, permissions and id, little-endian) to the text GNU tar
// writes: one "tag:qualifier:rwx" line per entry, user and group names
// where they exist on this host, else their ids.
func aclText(v []byte, names *idNames) (string, bool) {
	if len(v) < 4 || binary.LittleEndian.Uint32(v) != 2 || (len(v)-4)%8 != 0 {
		return "", false
	}
	var b strings.Builder
	for e := v[4:]; len(e) > 0; e = e[8:] {
		tag := binary.LittleEndian.Uint16(e)
		perm := binary.LittleEndian.Uint16(e[2:])
		id := binary.LittleEndian.Uint32(e[4:])
		switch tag {
		case aclUserObj:
			b.WriteString("user::")
		case aclUser:
			b.WriteString("user:" + orID(names.user(id), id) + ":")
		case aclGroupObj:
			b.WriteString("group::")
		case aclGroup:
			b.WriteString("group:" + orID(names.group(id), id) + ":")
		case aclMask:
			b.WriteString("mask::")
		case aclOther:
			b.WriteString("other::")
		default:
			return "", false
		}
		for i, c := range "rwx" {
			if perm&(4>>i) != 0 {
				b.WriteRune(c)
			} else {
				b.WriteByte('-')
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), true
}

func orID(name string, id uint32) string {
	if name == "" {
		return strconv.FormatUint(uint64(id), 10)
	}
	return name
}

// hasXattrs reports whether hdr records extended attributes or ACLs.
func hasXattrs(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattr) || k == paxACLAccess || k == paxACLDefault {
			return true
		}
	}
	return false
}

// xattrsOf returns the extended attributes hdr records, by name: its
// SCHILY.xattr.* records, and the ACLs of SCHILY.acl.* text records that
// have no SCHILY.xattr.system.posix_acl_* twin (an archive of GNU tar's
// --acls without --xattrs).
func xattrsOf(hdr *tar.Header) map[string]string {
	attrs := map[string]string{}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, paxXattr); ok {
			attrs[name] = v
		}
	}
	for rec, name := range map[string]string{paxACLAccess: xattrACLAccess, paxACLDefault: xattrACLDefault} {
		text, ok := hdr.PAXRecords[rec]
		if _, have := attrs[name]; !ok || have {
			continue
		}
		if v, ok := aclFromText(text); ok {
			attrs[name] = string(v)
		}
	}
	return attrs
}

// aclFromText converts an ACL in the text form GNU tar writes back to the
// kernel's xattr form, entries sorted as the kernel wants them. A minimal
// ACL (owner, group, other only) gives nothing: the mode holds it.
func aclFromText(text string) ([]byte, bool) {
	type ent struct {
		tag  uint16
		perm uint16
		id   uint32
	}
	var ents []ent
	for line := range strings.SplitSeq(strings.TrimSpace(text), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 || len(f[2]) != 3 {
			return nil, false
		}
		e := ent{id: 0xffffffff}
		for i, c := range "rwx" {
			switch f[2][i] {
			case byte(c):
				e.perm |= 4 >> i
			case '-':
			default:
				return nil, false
			}
		}
		switch {
		case f[0] == "user" && f[1] == "":
			e.tag = aclUserObj
		case f[0] == "user":
			e.tag = aclUser
		case f[0] == "group" && f[1] == "":
			e.tag = aclGroupObj
		case f[0] == "group":
			e.tag = aclGroup
		case f[0] == "mask":
			e.tag = aclMask
		case f[0] == "other":
			e.tag = aclOther
		default:
			return nil, false
		}
		if e.tag == aclUser || e.tag == aclGroup {
			id, ok := lookupID(f[1], e.tag == aclUser)
			if !ok {
				return nil, false
			}
			e.id = id
		}
		ents = append(ents, e)
	}
	if len(ents) <= 3 {
		return nil, false
	}
	slices.SortFunc(ents, func(a, b ent) int {
		if a.tag != b.tag {
			return int(a.tag) - int(b.tag)
		}
		return cmp.Compare(a.id, b.id)
	})
	v := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range ents {
		v = binary.LittleEndian.AppendUint16(v, e.tag)
		v = binary.LittleEndian.AppendUint16(v, e.perm)
		v = binary.LittleEndian.AppendUint32(v, e.id)
	}
	return v, true
}

// lookupID returns the id of a user or group name, or of a number.
func lookupID(name string, isUser bool) (uint32, bool) {
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		return uint32(n), true
	}
	var id string
	if isUser {
		u, err := user.Lookup(name)
		if err != nil {
			return 0, false
		}
		id = u.Uid
	} else {
		g, err := user.LookupGroup(name)
		if err != nil {
			return 0, false
		}
		id = g.Gid
	}
	n, err := strconv.ParseUint(id, 10, 32)
	return uint32(n), err == nil
}

// xattrSetter is what Extract sets extended attributes with; tests replace
// it to play a file system without them.
var xattrSetter = setxattr

// setxattr sets one extended attribute on the file open as fd, or on path
// (not following a symlink) when fd is negative.
func setxattr(path string, fd int, name string, value []byte) error {
	if fd >= 0 {
		return unix.Fsetxattr(fd, name, value, 0)
	}
	return unix.Lsetxattr(path, name, value, 0)
}

// setXattrs sets the extended attributes recorded in hdr on the entry
// name, open as fd, or reached as path when fd is negative. Failures are
// warnings.
func (x *extractor) setXattrs(name string, hdr *tar.Header, path string, fd int) {
	attrs := xattrsOf(hdr)
	keys := slices.Sorted(maps.Keys(attrs))
	for _, attr := range keys {
		err := x.setxattr(path, fd, attr, []byte(attrs[attr]))
		if err != nil {
			x.xattrFailed(name, attr, path, fd, err)
			if errors.Is(err, unix.ENOTSUP) {
				return // none of the others fits either
			}
		}
	}
}

// setXattrsAt sets the extended attributes recorded in hdr on the entry
// name, a directory, symlink or special file, without following it: through
// its parent directory, opened below the root and known not to be a
// symlink.
func (x *extractor) setXattrsAt(name string, hdr *tar.Header) {
	if hdr == nil || !hasXattrs(hdr) {
		return
	}
	parent, err := x.root.Open(path.Dir(name))
	if err != nil {
		x.xattrFailed(name, "", "", -1, err)
		return
	}
	defer parent.Close()
	x.setXattrs(name, hdr, fmt.Sprintf("/proc/self/fd/%d/%s", parent.Fd(), path.Base(name)), -1)
}

// An xattrWarning gathers the failures of one kind.
type xattrWarning struct {
	first   string // entry name
	attr    string
	err     error
	where   string // the directory, for a file system without support
	entries int
	last    string
}

// xattrFailed records a failure to set an extended attribute: one warning
// per file system that does not support them, or per attribute namespace
// and error, with the number of entries concerned.
func (x *extractor) xattrFailed(name, attr, p string, fd int, err error) {
	err = errnoOf(err)
	var key, where string
	if errors.Is(err, unix.ENOTSUP) {
		var st unix.Stat_t
		if fd >= 0 {
			_ = unix.Fstat(fd, &st)
		} else {
			_ = unix.Lstat(p, &st)
		}
		key = "enotsup:" + strconv.FormatUint(st.Dev, 10)
		where = filepath.Join(x.target, filepath.FromSlash(path.Dir(name)))
	} else {
		ns, _, _ := strings.Cut(attr, ".")
		key = ns + ":" + err.Error()
	}
	w, ok := x.xattrWarn[key]
	if !ok {
		w = &xattrWarning{first: name, attr: attr, err: err, where: where}
		x.xattrWarn[key] = w
		x.xattrKeys = append(x.xattrKeys, key)
	}
	if w.last != name || w.entries == 0 {
		w.entries++
		w.last = name
	}
	x.log.Debug("files: extended attribute not restored", "entry", name, "attribute", attr, "error", err)
}

// finishXattrWarnings turns the failures gathered into warnings.
func (x *extractor) finishXattrWarnings() {
	for _, key := range x.xattrKeys {
		w := x.xattrWarn[key]
		n := fmt.Sprintf("%d %s", w.entries, plural(w.entries, "entry", "entries"))
		var msg string
		if w.where != "" {
			msg = fmt.Sprintf("the file system of %s does not support extended attributes: the extended attributes, ACLs and capabilities of %s were not restored (first: %q)", w.where, n, w.first)
		} else {
			msg = fmt.Sprintf("extended attribute %s not restored: %v: %s (first: %q)", w.attr, w.err, n, w.first)
		}
		x.log.Warn("files: " + msg)
		x.stats.Warnings = append(x.stats.Warnings, msg)
	}
}

// xattrs adds the extended attributes of the entry abs, open as fd (or not
// open: -1), to h. What cannot be read or recorded is a warning.
func (w *walker) xattrs(h *tar.Header, fd int, abs string) []string {
	attrs, err := readXattrs(fd, abs)
	if err != nil {
		return []string{fmt.Sprintf("%s: extended attributes not stored: %v", abs, errnoOf(err))}
	}
	var warns []string
	for _, name := range addXattrs(h, attrs, w.names) {
		warns = append(warns, fmt.Sprintf("%s: extended attribute %q not stored: a PAX record cannot carry a name with \"=\"", abs, name))
	}
	return warns
}
