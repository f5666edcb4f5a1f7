package s3_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/drivertest/benchtest"
	"github.com/aegis-backup/aegis/test/testenv"
)

// BenchmarkPipelineS3 stores a 1 GiB backup on the local destination (the
// baseline) and on the S3 gateway on loopback: with the default part size
// and parallelism (s3-default), and with other part sizes (MiB) and parts
// in flight, to weigh speed against memory (docs/destinations.md).
func BenchmarkPipelineS3(b *testing.B) {
	env := testenv.Require(b, "S3 server", "AEGIS_TEST_S3_ENDPOINT", "AEGIS_TEST_S3_BUCKET", "AEGIS_TEST_S3_CREDENTIALS_FILE")
	src := benchtest.PipelineSource(b)
	b.Run("local", func(b *testing.B) {
		benchtest.BenchPipeline(b, src, &v1.Destination{Metadata: v1.ObjectMeta{Name: "disk"},
			Spec: v1.DestinationSpec{Local: &v1.LocalDestination{Path: b.TempDir()}}})
	})
	for _, c := range []struct{ partMiB, parallel int }{{0, 0}, {8, 1}, {8, 8}, {16, 4}} {
		name := "s3-default"
		if c.partMiB != 0 {
			name = fmt.Sprintf("s3-part-%d-parallel-%d", c.partMiB, c.parallel)
		}
		b.Run(name, func(b *testing.B) {
			prefix := "bench/" + strconv.Itoa(rand.IntN(1e9))
			dest := &v1.Destination{Metadata: v1.ObjectMeta{Name: "s3"}, Spec: v1.DestinationSpec{S3: &v1.S3Destination{
				Provider: "other", Endpoint: env["AEGIS_TEST_S3_ENDPOINT"], Bucket: env["AEGIS_TEST_S3_BUCKET"],
				CredentialsFile: env["AEGIS_TEST_S3_CREDENTIALS_FILE"], Prefix: prefix,
				PartSizeMiB: c.partMiB, ParallelUploads: c.parallel,
			}}}
			benchtest.BenchPipeline(b, src, dest)
			// The gateway keeps what it stores on this disk: clean up.
			if dir := os.Getenv("AEGIS_TEST_S3_DATA_DIR"); dir != "" {
				os.RemoveAll(filepath.Join(dir, env["AEGIS_TEST_S3_BUCKET"], prefix))
			}
		})
	}
}
