package main

import (
	"fmt"
	"io"
	"sort"

	"github.com/aegis-backup/aegis/reconcile"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// printIdentities says, for each policy encrypted with age, whether this
// host holds its identity in the keys directory or not (init can remove
// it), in which case restore and verify need --identity.
func printIdentities(w io.Writer, cfg *reconcile.Config, keysDir string) {
	var lines []string
	for _, o := range cfg.Objects {
		if o.Policy == nil || o.Policy.Spec.Encryption == nil || o.Policy.Spec.Encryption.Age == nil {
			continue
		}
		where := "not on this host: restore and verify need --identity FILE"
		if f := snapshot.AgeIdentityInDir(keysDir, o.Policy.Spec.Encryption); f != "" {
			where = "on this host, " + f
		}
		lines = append(lines, fmt.Sprintf("identity of %s: %s", o.Name, where))
	}
	if len(lines) == 0 {
		return
	}
	sort.Strings(lines)
	fmt.Fprintln(w)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}
