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
// baseline) and on the S3 gateway on loopback with 1, 4 and 8 parts of
// 16 MiB in flight.
func BenchmarkPipelineS3(b *testing.B) {
	env := testenv.Require(b, "S3 server", "AEGIS_TEST_S3_ENDPOINT", "AEGIS_TEST_S3_BUCKET", "AEGIS_TEST_S3_CREDENTIALS_FILE")
	src := benchtest.PipelineSource(b)
	b.Run("local", func(b *testing.B) {
		benchtest.BenchPipeline(b, src, &v1.Destination{Metadata: v1.ObjectMeta{Name: "disk"},
			Spec: v1.DestinationSpec{Local: &v1.LocalDestination{Path: b.TempDir()}}})
	})
	for _, parts := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("s3-parts-%d", parts), func(b *testing.B) {
			prefix := "bench/" + strconv.Itoa(rand.IntN(1e9))
			dest := &v1.Destination{Metadata: v1.ObjectMeta{Name: "s3"}, Spec: v1.DestinationSpec{S3: &v1.S3Destination{
				Provider: "other", Endpoint: env["AEGIS_TEST_S3_ENDPOINT"], Bucket: env["AEGIS_TEST_S3_BUCKET"],
				CredentialsFile: env["AEGIS_TEST_S3_CREDENTIALS_FILE"], Prefix: prefix,
				PartSizeMiB: 16, ParallelUploads: parts,
			}}}
			benchtest.BenchPipeline(b, src, dest)
			// The gateway keeps what it stores on this disk: clean up.
			if dir := os.Getenv("AEGIS_TEST_S3_DATA_DIR"); dir != "" {
				os.RemoveAll(filepath.Join(dir, env["AEGIS_TEST_S3_BUCKET"], prefix))
			}
		})
	}
}
