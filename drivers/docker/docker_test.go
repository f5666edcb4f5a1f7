package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/test/testenv"
)

func TestRebase(t *testing.T) {
	root := "var/lib/docker/volumes/v/_data"
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"var/", "", false},
		{"var/lib/docker/volumes/v/", "", false},
		{root + "/", "v/", true},
		{root + "/a/", "v/a/", true},
		{root + "/a/b.txt", "v/a/b.txt", true},
		{root + "x/a", "", false},
	} {
		got, ok := rebase(tc.in, root, "v")
		if got != tc.want || ok != tc.ok {
			t.Errorf("rebase(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

type memWriter struct {
	mu      sync.Mutex
	objects map[string][]byte
	order   []string
}

type memObject struct {
	w    *memWriter
	name string
	buf  bytes.Buffer
}

func (o *memObject) Write(p []byte) (int, error) { return o.buf.Write(p) }
func (o *memObject) Close() error {
	o.w.mu.Lock()
	defer o.w.mu.Unlock()
	o.w.objects[o.name] = o.buf.Bytes()
	return nil
}

func (m *memWriter) Create(_ context.Context, name, format string) (io.WriteCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.order = append(m.order, name)
	return &memObject{w: m, name: name}, nil
}

type engine struct {
	t     *testing.T
	image string
}

func requireEngine(t *testing.T) *engine {
	t.Helper()
	env := testenv.Require(t, "Docker engine", "AEGIS_TEST_DOCKER_HOST", "AEGIS_TEST_DOCKER_IMAGE")
	t.Setenv("DOCKER_HOST", env["AEGIS_TEST_DOCKER_HOST"])
	return &engine{t: t, image: env["AEGIS_TEST_DOCKER_IMAGE"]}
}

func (e *engine) docker(args ...string) string {
	e.t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// volumeWithWriter makes a volume labelled app=NAME and a running
// container that filled it.
func (e *engine) volumeWithWriter(name string) (container string) {
	e.t.Helper()
	e.docker("volume", "create", "--label", "app="+name, name)
	container = name + "-writer"
	e.t.Cleanup(func() {
		exec.Command("docker", "rm", "-f", container).Run()
		exec.Command("docker", "volume", "rm", "-f", name).Run()
	})
	// Fill the volume once; stop at once on SIGTERM, so that stopping
	// and starting it again is quick.
	script := `trap 'exit 0' TERM; if [ ! -e /data/ready ]; then
mkdir -p /data/sub/deep && echo hello > /data/hello.txt && seq 1 20000 > /data/sub/numbers.txt &&
ln -s hello.txt /data/link && ln /data/hello.txt /data/hard.txt && chown -R 1000:1001 /data/sub && chmod 0750 /data &&
touch /data/ready; fi; sleep 3600 & wait`
	e.docker("run", "-d", "--name", container, "--network", "none", "-v", name+":/data", e.image, "sh", "-c", script)
	for i := 0; ; i++ {
		if exec.Command("docker", "exec", container, "test", "-e", "/data/ready").Run() == nil {
			break
		}
		if i > 100 {
			e.t.Fatal("the writer container did not fill the volume")
		}
		exec.Command("sleep", "0.1").Run()
	}
	return container
}

func tarEntries(t *testing.T, b []byte) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = h
	}
}

func TestBackupAndRestoreVolume(t *testing.T) {
	e := requireEngine(t)
	vol := fmt.Sprintf("aegis-drv-%d", os.Getpid())
	ctr := e.volumeWithWriter(vol)
	startedBefore := e.docker("inspect", "-f", "{{.State.StartedAt}}", ctr)

	w := &memWriter{objects: map[string][]byte{}}
	stats, err := New(v1.DockerVolumeSource{Selector: map[string]string{"app": vol}, StopContainers: true}, Options{}).Backup(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(w.order, " "); got != vol+".tar" {
		t.Fatalf("objects %q", got)
	}
	ents := tarEntries(t, w.objects[vol+".tar"])
	for _, name := range []string{vol + "/", vol + "/hello.txt", vol + "/sub/", vol + "/sub/numbers.txt", vol + "/link", vol + "/hard.txt"} {
		if ents[name] == nil {
			t.Errorf("archive lacks %s; it has %v", name, keys(ents))
		}
	}
	if h := ents[vol+"/sub/numbers.txt"]; h != nil && (h.Uid != 1000 || h.Gid != 1001 || h.Uname != "" || h.Gname != "") {
		t.Errorf("owner of numbers.txt: %d:%d %q:%q", h.Uid, h.Gid, h.Uname, h.Gname)
	}
	if stats.Meta[MetaVolumes] != vol || !strings.HasPrefix(stats.Meta[MetaStoppedContainers], ctr+" (down ") || stats.Meta[MetaUsedBy] != ctr+" (running)" {
		t.Errorf("meta %v", stats.Meta)
	}
	// The container runs again, restarted.
	if got := e.docker("inspect", "-f", "{{.State.Running}}", ctr); got != "true" {
		t.Errorf("container running: %s", got)
	}
	if got := e.docker("inspect", "-f", "{{.State.StartedAt}}", ctr); got == startedBefore {
		t.Error("the container was not stopped for the copy")
	}

	// Restore into a new volume.
	to := vol + "-restored"
	t.Cleanup(func() { exec.Command("docker", "volume", "rm", "-f", to).Run() })
	mp, created, err := PrepareVolume(context.Background(), to, "test", false)
	if err != nil || !created {
		t.Fatalf("prepare: %v %v", created, err)
	}
	if _, err := ExtractVolume(context.Background(), bytes.NewReader(w.objects[vol+".tar"]), vol, mp, nil); err != nil {
		t.Fatal(err)
	}
	src := e.docker("volume", "inspect", "-f", "{{.Mountpoint}}", vol)
	for _, rel := range []string{"hello.txt", "sub/numbers.txt", "hard.txt"} {
		a, _ := os.ReadFile(filepath.Join(src, rel))
		b, err := os.ReadFile(filepath.Join(mp, rel))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs: %v", rel, err)
		}
	}
	if fi, err := os.Stat(mp); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("volume root mode: %v %v", fi.Mode(), err)
	}
	if l, _ := os.Readlink(filepath.Join(mp, "link")); l != "hello.txt" {
		t.Errorf("symlink: %q", l)
	}

	// Not into a volume with content, nor one in use.
	if _, _, err := PrepareVolume(context.Background(), to, "test", false); err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Errorf("non-empty volume: %v", err)
	}
	if _, _, err := PrepareVolume(context.Background(), vol, "test", true); err == nil || !strings.Contains(err.Error(), "in use by running container(s) "+ctr) {
		t.Errorf("volume in use: %v", err)
	}
}

func TestBackupFailures(t *testing.T) {
	e := requireEngine(t)
	_ = e
	for _, tc := range []struct {
		name string
		spec v1.DockerVolumeSource
		want string
	}{
		{"missing volume", v1.DockerVolumeSource{Name: "aegis-no-such-volume"}, "volume aegis-no-such-volume: Error response from daemon: get aegis-no-such-volume: no such volume"},
		{"nothing matches", v1.DockerVolumeSource{Selector: map[string]string{"aegis-test": "none"}}, "no volume matches the selector aegis-test=none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.spec, Options{}).Backup(context.Background(), &memWriter{objects: map[string][]byte{}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	t.Run("engine down", func(t *testing.T) {
		t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "nothing.sock"))
		_, err := New(v1.DockerVolumeSource{Name: "x"}, Options{}).Backup(context.Background(), &memWriter{objects: map[string][]byte{}})
		if err == nil || !strings.Contains(err.Error(), "Cannot connect to the Docker daemon") {
			t.Fatalf("error %v", err)
		}
	})
}

func keys(m map[string]*tar.Header) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
