package sftp_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/drivertest/benchtest"
	"github.com/aegis-backup/aegis/test/testenv"
)

// BenchmarkPipelineSFTP stores a 1 GiB backup on the local destination
// (the baseline) and on the SSH server on loopback.
func BenchmarkPipelineSFTP(b *testing.B) {
	env := testenv.Require(b, "SFTP server", "AEGIS_TEST_SFTP_HOST", "AEGIS_TEST_SFTP_PORT", "AEGIS_TEST_SFTP_USER",
		"AEGIS_TEST_SFTP_KEY_FILE", "AEGIS_TEST_SFTP_KNOWN_HOSTS", "AEGIS_TEST_SFTP_PATH")
	src := benchtest.PipelineSource(b)
	b.Run("local", func(b *testing.B) {
		benchtest.BenchPipeline(b, src, &v1.Destination{Metadata: v1.ObjectMeta{Name: "disk"},
			Spec: v1.DestinationSpec{Local: &v1.LocalDestination{Path: b.TempDir()}}})
	})
	b.Run("sftp", func(b *testing.B) {
		port, _ := strconv.Atoi(env["AEGIS_TEST_SFTP_PORT"])
		root := filepath.Join(env["AEGIS_TEST_SFTP_PATH"], "bench-"+strconv.Itoa(rand.IntN(1e9)))
		defer os.RemoveAll(root) // the server's files are on this host
		benchtest.BenchPipeline(b, src, &v1.Destination{Metadata: v1.ObjectMeta{Name: "sftp"}, Spec: v1.DestinationSpec{SFTP: &v1.SFTPDestination{
			Host: env["AEGIS_TEST_SFTP_HOST"], Port: port, User: env["AEGIS_TEST_SFTP_USER"], Path: root,
			PrivateKeyFile: env["AEGIS_TEST_SFTP_KEY_FILE"], KnownHostsFile: env["AEGIS_TEST_SFTP_KNOWN_HOSTS"],
		}}})
	})
}
