package v1

import (
	"fmt"
	"os"
)

// CheckSecretFile refuses a key or secret file that group or others can
// read: the rule every reader of a secret applies at run time, as
// validation does before.
func CheckSecretFile(name string) error {
	fi, err := os.Stat(name)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("secret file %s is readable by group or others (mode %04o); chmod 600 it", name, fi.Mode().Perm())
	}
	return nil
}
