package dedup

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// recoveryRecipe is the stock-tool recovery of docs/dedup.md: it rebuilds
// object $2 of manifest $1 from the repository $3 with identity $4.
const recoveryRecipe = `
set -eu
manifest=$1 object=$2 repo=$3 key=$4
jq -r '.packs[] | .id as $p | .chunks[] | "\(.id) \($p) \(.offset) \(.length)"' "$repo"/index/*.json | sort -u -k1,1 > locations
jq -r --arg o "$object" '.objects[] | select(.name == $o) | .chunks[].id' "$manifest" |
while read -r id; do
  set -- $(grep -m1 "^$id " locations)
  dd if="$repo/packs/$(printf %.2s "$2")/$2.tar" iflag=skip_bytes,count_bytes skip="$3" count="$4" status=none |
    age -d -i "$key" | zstd -d -q
done
`

func TestRecoveryRecipe(t *testing.T) {
	for _, tool := range []string{"sh", "jq", "dd", "age", "zstd", "sort", "grep"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: %v", tool, err)
		}
	}
	e := newEnv(t)
	data := append(randomBytes(15, 5<<20), []byte("tail")...)
	objs, _ := e.backup(map[string][]byte{"files.tar": data, "other": []byte("x")}, 2<<20)
	// The shape the snapshot manifest gives its objects.
	type object struct {
		Name   string     `json:"name"`
		Chunks []ChunkRef `json:"chunks"`
	}
	m, _ := json.Marshal(map[string]any{"objects": []object{{"other", objs["other"]}, {"files.tar", objs["files.tar"]}}})
	dir := t.TempDir()
	manifest := filepath.Join(dir, "manifest.json")
	identity := filepath.Join(dir, "identity")
	os.WriteFile(manifest, m, 0o600)
	os.WriteFile(identity, []byte(e.codec.identity.String()+"\n"), 0o600)
	cmd := exec.Command("sh", "-c", recoveryRecipe, "sh", manifest, "files.tar", filepath.Join(e.root, filepath.FromSlash(testRepo)), identity)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("recipe: %v: %s", err, stderr.String())
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("recipe rebuilt %d bytes that differ from the %d written", len(out), len(data))
	}
}
