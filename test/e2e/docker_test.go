package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/test/testenv"
)

type dockerEngine struct {
	t     *testing.T
	image string
}

func requireDocker(t *testing.T) *dockerEngine {
	t.Helper()
	env := testenv.Require(t, "Docker engine", "AEGIS_TEST_DOCKER_HOST", "AEGIS_TEST_DOCKER_IMAGE")
	t.Setenv("DOCKER_HOST", env["AEGIS_TEST_DOCKER_HOST"])
	return &dockerEngine{t: t, image: env["AEGIS_TEST_DOCKER_IMAGE"]}
}

func (d *dockerEngine) run(args ...string) string {
	d.t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		d.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (d *dockerEngine) mountpoint(vol string) string {
	return d.run("volume", "inspect", "-f", "{{.Mountpoint}}", vol)
}

func TestDockerVolumeBackupAndRestore(t *testing.T) {
	d := requireDocker(t)
	e := newEnv(t)
	vol := fmt.Sprintf("aegis-e2e-%d", os.Getpid())
	ctr := vol + "-app"
	restored := vol + "-restored"
	t.Cleanup(func() {
		exec.Command("docker", "rm", "-f", ctr).Run()
		exec.Command("docker", "volume", "rm", "-f", vol, restored).Run()
	})
	d.run("volume", "create", "--label", "aegis.test/app="+vol, vol)
	// The application writes its data into the volume, then keeps running
	// (and stops at once on SIGTERM).
	script := `trap 'exit 0' TERM; if [ ! -e /data/.ready ]; then
mkdir -p /data/db/base /data/uploads/2026 /data/empty && chmod 0700 /data/db &&
seq 1 200000 > /data/db/base/table.dat && echo '{"v":1}' > /data/db/settings.json &&
dd if=/dev/urandom of=/data/uploads/2026/photo.bin bs=1024 count=512 2>/dev/null &&
ln -s ../db/settings.json /data/uploads/settings-link && ln /data/db/settings.json /data/db/settings-hard.json &&
chown -R 999:999 /data/db && chmod 0644 /data/uploads/2026/photo.bin && touch /data/.ready; fi
sleep 3600 & wait`
	d.run("run", "-d", "--name", ctr, "--network", "none", "-v", vol+":/data", d.image, "sh", "-c", script)
	waitFor(t, "the application to fill its volume", 30*time.Second, func() bool {
		return exec.Command("docker", "exec", ctr, "test", "-e", "/data/.ready").Run() == nil
	})
	started := d.run("inspect", "-f", "{{.State.StartedAt}}", ctr)

	e.write("app.yaml", destination("disk", "@ROOT@/backups")+`---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: app
spec:
  schedule: "@daily"
  sources:
    - name: live
      dockerVolume:
        name: `+vol+`
    - name: quiesced
      dockerVolume:
        selector: {aegis.test/app: `+vol+`}
        stopContainers: true
  destinations: [disk]
  encryption:
    age:
      recipients: ["@RECIPIENT@"]
`)
	r := e.run("run", "app")
	r.mustCode(t, 0)

	st := entry(t, e.status("app.yaml"), v1.KindBackupPolicy, "app")
	byName := map[string]v1.SourceResult{}
	for _, s := range st.LastRun.Sources {
		byName[s.Name] = s
	}
	if m := byName["live"].Meta; m["volumes"] != vol || m["stoppedContainers"] != "" || m["usedBy"] != ctr+" (running)" {
		t.Errorf("live source meta %v", m)
	}
	stopped := byName["quiesced"].Meta["stoppedContainers"]
	if !strings.HasPrefix(stopped, ctr+" (down ") {
		t.Errorf("the status does not say which container was stopped and for how long: %q", stopped)
	}
	// The container runs again, and was restarted for the copy.
	if got := d.run("inspect", "-f", "{{.State.Running}}", ctr); got != "true" {
		t.Errorf("the container is not running after the backup")
	}
	if d.run("inspect", "-f", "{{.State.StartedAt}}", ctr) == started {
		t.Errorf("the container was not stopped for the quiesced copy")
	}

	// Stop it, so the volume holds still for the comparison.
	d.run("stop", ctr)
	src := d.mountpoint(vol)

	// Into --target: TARGET/SOURCE/VOLUME/.
	target := filepath.Join(e.root, "restore")
	e.run("restore", "app", "--source", "quiesced", "--identity", e.identity, "--target", target).mustCode(t, 0)
	compareTrees(t, src, filepath.Join(target, "quiesced", vol))

	// Straight into a new volume.
	r = e.run("restore", "app", "--source", "quiesced", "--identity", e.identity, "--to-volume", restored)
	r.mustCode(t, 0)
	if !strings.Contains(r.stdout, "created Docker volume "+restored) {
		t.Errorf("restore output:\n%s", r.stdout)
	}
	compareTrees(t, src, d.mountpoint(restored))
	owner := d.run("run", "--rm", "--network", "none", "-v", restored+":/data", d.image, "stat", "-c", "%u:%g %a", "/data/db/base/table.dat", "/data/db")
	if owner != "999:999 644\n999:999 700" {
		t.Errorf("owners and modes inside the restored volume: %q", owner)
	}
	// A volume that is not empty is not overwritten, unless asked.
	r = e.run("restore", "app", "--source", "quiesced", "--identity", e.identity, "--to-volume", restored)
	r.mustCode(t, 1)
	if !strings.Contains(r.stderr, "volume "+restored+" is not empty") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	e.run("restore", "app", "--source", "quiesced", "--identity", e.identity, "--to-volume", restored, "--overwrite").mustCode(t, 0)
	if _, err := os.Stat(filepath.Join(d.mountpoint(restored), ".aegis-restore-incomplete")); err == nil {
		t.Error("a finished restore left its marker in the volume")
	}
}
