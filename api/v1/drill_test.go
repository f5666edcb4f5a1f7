package v1

import (
	"io/fs"
	"strings"
	"testing"
	"time"
)

const drillPolicy = `apiVersion: aegis.io/v1
kind: Destination
metadata: {name: disk}
spec:
  local: {path: /var/backups/aegis}
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: shop}
spec:
  schedule: "@daily"
  sources:
    - name: site
      files: {paths: [/var/www]}
    - name: pg
      postgres: {host: localhost}
  destinations: [disk]
  encryption: {none: true}
`

func TestValidateDrills(t *testing.T) {
	dir := t.TempDir()
	files(t, dir, map[string]fs.FileMode{"ok": 0o600, "open": 0o644})
	for _, tc := range []struct {
		name, spec string
		want       []string
	}{
		{"good", `  drills:
    schedule: "@weekly"
    sample: 10%
    timeout: 2h
    sources: [site, pg]
    checks:
      - {sql: "select count(*) from orders", min: 1}
      - {source: pg, database: shop, sql: "select 1", min: 1, max: 1}
    drillTargets:
      - {source: pg, host: 10.0.0.9, port: 5432, user: drill, passwordFile: $DIR/ok}
  objectives: {rpo: 1h, rto: 30m}
`, nil},
		{"bad values", `  drills:
    schedule: "every tuesday"
    sample: 0%
    timeout: soon
    sources: [nope]
  objectives: {rpo: 1x, rto: "0s"}
`, []string{
			`m.yaml:20: BackupPolicy/shop: spec.drills.schedule: invalid schedule "every tuesday": expected exactly 5 fields, found 2: [every tuesday]`,
			`m.yaml:21: BackupPolicy/shop: spec.drills.sample: invalid sample "0%": use a percentage above 0 and at most 100, such as 10%`,
			`m.yaml:22: BackupPolicy/shop: spec.drills.timeout: invalid duration "soon": use a number and a unit, such as 36h, 7d or 1d12h`,
			`m.yaml:23: BackupPolicy/shop: spec.drills.sources[0]: names no source of this policy`,
			`m.yaml:24: BackupPolicy/shop: spec.objectives.rpo: invalid duration "1x": use a number and a unit, such as 36h, 7d or 1d12h`,
			`m.yaml:24: BackupPolicy/shop: spec.objectives.rto: must be above zero`,
		}},
		{"checks and targets", `  drills:
    schedule: "@weekly"
    checks:
      - {source: site, sql: "select 1"}
      - {source: pg, sql: "select 1", min: 5, max: 2}
      - {source: pg}
    drillTargets:
      - {source: pg, passwordFile: $DIR/open}
      - {source: pg}
      - {source: site}
`, []string{
			`m.yaml:22: BackupPolicy/shop: spec.drills.checks[0].source: source "site" is a files source: only postgres and mysql sources load into databases`,
			`m.yaml:23: BackupPolicy/shop: spec.drills.checks[1].max: must not be below min`,
			`m.yaml:24: BackupPolicy/shop: spec.drills.checks[2].sql: is required`,
			`m.yaml:26: BackupPolicy/shop: spec.drills.drillTargets[0].passwordFile: secret file $DIR/open is readable by group or others (mode 0644); chmod 600 it`,
			`m.yaml:27: BackupPolicy/shop: spec.drills.drillTargets[1].source: source "pg" has a drill target already`,
			`m.yaml:28: BackupPolicy/shop: spec.drills.drillTargets[2].source: source "site" is a files source: only postgres and mysql sources load into databases`,
		}},
		{"unknown field", `  drills: {schedule: "@weekly", samples: 5%}
`, []string{`m.yaml:19: BackupPolicy/shop: spec.drills.samples: unknown field (did you mean "sample"?)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := check(t, dir, drillPolicy+tc.spec)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestDrillDefaults(t *testing.T) {
	d := &Drills{}
	if d.SampleFraction() != 1 || d.DrillTimeout() != 2*time.Hour {
		t.Errorf("defaults: sample %v, timeout %v", d.SampleFraction(), d.DrillTimeout())
	}
	d = &Drills{Sample: "12.5%", Timeout: "1d"}
	if d.SampleFraction() != 0.125 || d.DrillTimeout() != 24*time.Hour {
		t.Errorf("sample %v, timeout %v", d.SampleFraction(), d.DrillTimeout())
	}
}
