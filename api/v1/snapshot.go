package v1

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"
)

// SnapshotFormatVersion is the newest version of the snapshot manifest this
// build reads and writes: 2 for a deduplicated snapshot (objects list their
// chunks), ArchiveFormatVersion for an archive one, so that older agents
// still read archives. Readers refuse a newer version.
const SnapshotFormatVersion = 2

// ArchiveFormatVersion is the format version of an archive snapshot.
const ArchiveFormatVersion = 1

// ManifestName is the file name of a snapshot's manifest. Its presence is
// the commit: a snapshot directory without it is an unfinished upload.
const ManifestName = "manifest.json"

// SnapshotManifest describes one snapshot of one source, as stored on a
// destination under Host/Policy/Source/ID/manifest.json. docs/format.md
// documents every field.
type SnapshotManifest struct {
	FormatVersion int       `json:"formatVersion"`
	ID            string    `json:"id"`
	Time          time.Time `json:"time"`
	Host          string    `json:"host"`
	Policy        string    `json:"policy"`
	Source        string    `json:"source"`
	SourceKind    string    `json:"sourceKind"`
	// Parent is the ID of the snapshot this one builds on; empty for a full
	// snapshot (every snapshot so far).
	Parent      string            `json:"parent,omitempty"`
	Compression SnapshotCodec     `json:"compression"`
	Encryption  SnapshotCodec     `json:"encryption"`
	Objects     []SnapshotObject  `json:"objects"`
	Files       int64             `json:"files"`
	BytesRead   int64             `json:"bytesRead"`
	Duration    string            `json:"duration"`
	Warnings    []string          `json:"warnings,omitempty"`
	Meta        map[string]string `json:"meta,omitempty"`
	Agent       string            `json:"agent"`
	// Storage is StorageDeduplicated for a snapshot whose objects are
	// lists of chunks in the policy's repository; empty for an archive.
	Storage string `json:"storage,omitempty"`
	// DedupKeyID names the dedup key the chunk IDs are keyed with.
	DedupKeyID string `json:"dedupKeyId,omitempty"`
	// NewBytes, in a deduplicated snapshot, is how many bytes of the raw
	// streams were in chunks stored anew by this snapshot.
	NewBytes int64 `json:"newBytes,omitempty"`
	// HMAC authenticates the manifest in openssl mode (see docs/format.md).
	HMAC *SnapshotHMAC `json:"hmac,omitempty"`
}

// SnapshotHMAC is an HMAC-SHA256 over the manifest with this field left
// out, keyed from the openssl passphrase through PBKDF2 with Salt.
type SnapshotHMAC struct {
	Algorithm string `json:"algorithm"`
	Salt      string `json:"salt"`
	Value     string `json:"value"`
}

// SealedManifestName is, in age mode, the manifest encrypted to the same
// recipients as the data: verify and restore, which hold the identity,
// compare it with the plain manifest to detect an edited one.
const SealedManifestName = "manifest.json.age"

// SnapshotCodec names a compression or encryption step.
type SnapshotCodec struct {
	Algorithm string `json:"algorithm"`
	Level     int    `json:"level,omitempty"`
	// KeyID names the key the data was encrypted with (for age, the first
	// recipient); KeyIDs lists every age recipient's ID.
	KeyID      string   `json:"keyId,omitempty"`
	KeyIDs     []string `json:"keyIds,omitempty"`
	Iterations int      `json:"iterations,omitempty"`
}

// SnapshotObject is one data object of a snapshot.
type SnapshotObject struct {
	// Name is the object's logical name ("files.tar", "app.pgdump").
	Name string `json:"name"`
	// Key is the stored file name, relative to the snapshot directory
	// ("files.tar.zst.age").
	Key    string `json:"key"`
	Format string `json:"format"`
	// Size and SHA256 are of the stored bytes.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// RawSize is the size before compression and encryption.
	RawSize int64 `json:"rawSize"`
	// Chunks, in a deduplicated snapshot, are the object's chunks in order:
	// their plaintexts concatenated are the raw stream. Key is then empty,
	// and Size and SHA256 are those of the raw stream.
	Chunks []SnapshotChunk `json:"chunks,omitempty"`
	// Parent, for a later incremental format, names the snapshot holding
	// this object when it is unchanged since then; empty means it is here.
	Parent string `json:"parent,omitempty"`
}

// SnapshotChunk is one chunk of a deduplicated object: its ID (64 hex
// digits, keyed BLAKE3 of the plaintext) and its plaintext size.
type SnapshotChunk struct {
	ID   string `json:"id"`
	Size int64  `json:"size"`
}

// Deduplicated reports whether the snapshot's objects are chunk lists.
func (m *SnapshotManifest) Deduplicated() bool { return m.Storage == StorageDeduplicated }

// SnapshotDir returns the directory key of a snapshot on a destination.
func SnapshotDir(host, policy, source, id string) string {
	return path.Join(host, policy, source, id)
}

// ManifestKey returns the key of a snapshot's manifest.
func (m *SnapshotManifest) ManifestKey() string {
	return path.Join(SnapshotDir(m.Host, m.Policy, m.Source, m.ID), ManifestName)
}

// ObjectKey returns the full key of one of the snapshot's data objects.
func (m *SnapshotManifest) ObjectKey(o SnapshotObject) string {
	return path.Join(SnapshotDir(m.Host, m.Policy, m.Source, m.ID), o.Key)
}

var snapshotIDPattern = regexp.MustCompile(`^\d{8}T\d{6}Z-[0-9a-f]{6}$`)

// NewSnapshotID returns an ID that sorts by time: 20261125T174500Z-a1b2c3.
// All sources of one run share it.
func NewSnapshotID(t time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// ValidSnapshotID reports whether id has the form NewSnapshotID makes.
func ValidSnapshotID(id string) bool { return snapshotIDPattern.MatchString(id) }

// ParseManifestKey splits a key HOST/POLICY/SOURCE/ID/manifest.json.
func ParseManifestKey(key string) (host, policy, source, id string, err error) {
	parts := strings.Split(key, "/")
	if len(parts) < 5 || parts[len(parts)-1] != ManifestName {
		return "", "", "", "", fmt.Errorf("not a snapshot manifest key: %q", key)
	}
	n := len(parts)
	host, policy, source, id = parts[n-5], parts[n-4], parts[n-3], parts[n-2]
	if !ValidSnapshotID(id) {
		return "", "", "", "", fmt.Errorf("not a snapshot ID: %q", id)
	}
	return host, policy, source, id, nil
}
