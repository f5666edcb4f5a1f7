package v1

import (
	"strings"
	"testing"
)

func TestValidateObjectLock(t *testing.T) {
	tests := []struct {
		name, lock string
		want       []string
	}{
		{name: "governance", lock: "{mode: governance, days: 30}"},
		{name: "compliance", lock: "{mode: compliance, days: 1}"},
		{name: "bad mode and days", lock: "{mode: legal, days: 0}", want: []string{
			`m.yaml:5: Destination/disk: spec.s3.objectLock.mode: must be one of: governance compliance`,
			`m.yaml:5: Destination/disk: spec.s3.objectLock.days: is required`,
		}},
		{name: "too long", lock: "{mode: compliance, days: 36501}", want: []string{
			`m.yaml:5: Destination/disk: spec.s3.objectLock.days: must be at most 36500`,
		}},
		{name: "unknown field", lock: "{mode: compliance, days: 7, years: 1}", want: []string{
			`m.yaml:5: Destination/disk: spec.s3.objectLock.years: unknown field (known fields: mode, days)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := check(t, t.TempDir(), destination("  s3: {provider: aws, bucket: backups, objectLock: "+tt.lock+"}\n"))
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n got:\n  %s\n want:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}
