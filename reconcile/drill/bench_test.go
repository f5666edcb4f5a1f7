package drill

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// runBench drills e's policy b.N times and reports the measured RTO and
// the time of the restore proper (the last drill's).
func runBench(b *testing.B, e *env, bytes int64) {
	b.SetBytes(bytes)
	b.ResetTimer()
	var res *v1.DrillResult
	for range b.N {
		var err error
		if res, err = Run(context.Background(), e.policy, e.options()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	rto, _ := time.ParseDuration(res.MeasuredRTO)
	b.ReportMetric(rto.Seconds(), "rto-s")
	b.Logf("drill %s, measured RTO %s, sources %+v", res.Duration, res.MeasuredRTO, res.Sources)
}

// BenchmarkFilesDrill drills a snapshot of AEGIS_BENCH_DRILL_MIB MiB
// (default 64) of incompressible files, 16 MiB each, zstd-compressed on a
// local destination, every file restored and compared with the live one:
//
//	AEGIS_BENCH_DRILL_MIB=1024 go test -run - -bench FilesDrill -benchtime 3x ./reconcile/drill/
func BenchmarkFilesDrill(b *testing.B) {
	mib, _ := strconv.Atoi(os.Getenv("AEGIS_BENCH_DRILL_MIB"))
	if mib <= 0 {
		mib = 64
	}
	dir := b.TempDir()
	rng := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, 16<<20)
	n := (mib + 15) / 16
	old := time.Now().Add(-time.Hour)
	for i := range n {
		_, _ = rng.Read(buf)
		p := filepath.Join(dir, fmt.Sprintf("f%03d", i))
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			b.Fatal(err)
		}
	}
	e := newEnv(b, v1.Source{Name: "files", Files: &v1.FilesSource{Paths: []string{dir}}})
	e.backup(time.Now())
	runBench(b, e, int64(n)*16<<20)
}

// BenchmarkPostgresDrillPgbench drills a pgbench database of scale
// AEGIS_BENCH_PGBENCH_SCALE (skipped when unset; 50 for the figure in
// docs/performance.md) on the test server:
//
//	./hack/test-env.sh env AEGIS_BENCH_PGBENCH_SCALE=50 go test -run - -bench PostgresDrill -benchtime 1x ./reconcile/drill/
func BenchmarkPostgresDrillPgbench(b *testing.B) {
	scale := os.Getenv("AEGIS_BENCH_PGBENCH_SCALE")
	if scale == "" {
		b.Skip("set AEGIS_BENCH_PGBENCH_SCALE (e.g. 50) to measure")
	}
	s := requirePostgres(b)
	db := fmt.Sprintf("drillbench_%d", os.Getpid())
	s.psql("postgres", "DROP DATABASE IF EXISTS "+db+"; CREATE DATABASE "+db)
	b.Cleanup(func() { s.psql("postgres", "DROP DATABASE IF EXISTS "+db) })
	pw, err := os.ReadFile(s.pwd)
	if err != nil {
		b.Fatal(err)
	}
	pgbench := exec.Command("pgbench", "-q", "-i", "-s", scale, "-h", s.host, "-p", strconv.Itoa(s.port), "-U", s.user, db)
	pgbench.Env = append(os.Environ(), "PGPASSWORD="+strings.TrimSpace(string(pw)))
	if out, err := pgbench.CombinedOutput(); err != nil {
		b.Fatalf("pgbench: %v\n%s", err, out)
	}
	b.Logf("database %s: %s", db, s.psql("postgres", "SELECT pg_size_pretty(pg_database_size('"+db+"'))"))
	e := newEnv(b, s.source(db))
	e.policy.Spec.Drills.Checks = []v1.DrillCheck{{SQL: "select count(*) from pgbench_accounts", Min: new(int64(1))}}
	e.backup(time.Now())
	var raw int64
	runBench(b, e, raw)
}
