package web

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/aegis-backup/aegis/reconcile/atomicfile"
)

// Roles of the console's users.
const (
	// RoleViewer reads everything the console shows and changes nothing.
	RoleViewer = "viewer"
	// RoleOperator may also run, verify, prune and restore.
	RoleOperator = "operator"
)

// User is one line of the users file.
type User struct {
	Name string
	Role string
	hash []byte
}

// Users are the console's accounts, read from a file of lines
// "NAME ROLE BCRYPT-HASH" that only its owner may read (mode 0600).
type Users struct {
	byName map[string]User
}

var userNamePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,63}$`)

// minPassword is the shortest password AddUser accepts.
const minPassword = 8

// bcryptCost is the work factor of new hashes (tests lower it).
var bcryptCost = 12

// LoadUsers reads the users file. A missing file gives no users; a file
// readable by group or others is refused, as key files are.
func LoadUsers(path string) (*Users, error) {
	u := &Users{byName: map[string]User{}}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return u, nil
	}
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("users file %s has mode %04o: it must not be readable by group or others (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || !userNamePattern.MatchString(f[0]) || (f[1] != RoleViewer && f[1] != RoleOperator) {
			return nil, fmt.Errorf("users file %s:%d: want NAME viewer|operator HASH", path, n)
		}
		if _, err := bcrypt.Cost([]byte(f[2])); err != nil {
			return nil, fmt.Errorf("users file %s:%d: user %s: not a bcrypt hash", path, n, f[0])
		}
		u.byName[f[0]] = User{Name: f[0], Role: f[1], hash: []byte(f[2])}
	}
	return u, nil
}

// Len is the number of users.
func (u *Users) Len() int { return len(u.byName) }

// Lookup returns the user called name.
func (u *Users) Lookup(name string) (User, bool) {
	usr, ok := u.byName[name]
	return usr, ok
}

// dummyHash keeps a login with an unknown name as slow as one with a
// wrong password, so names cannot be probed by timing.
// It is made on first use: every aegis-agent command links this package.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("aegis-no-such-user"), bcryptCost)
	return h
})

// Authenticate checks name and password.
func (u *Users) Authenticate(name string, password []byte) (User, bool) {
	usr, ok := u.byName[name]
	if !ok {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), password)
		return User{}, false
	}
	if bcrypt.CompareHashAndPassword(usr.hash, password) != nil {
		return User{}, false
	}
	return usr, true
}

// AddUser adds or replaces a user in the users file, written atomically
// with mode 0600.
func AddUser(path, name, role string, password []byte) error {
	if !userNamePattern.MatchString(name) {
		return fmt.Errorf("user name %q: use letters, digits, '.', '_', '@' or '-' (at most 64)", name)
	}
	if role != RoleViewer && role != RoleOperator {
		return fmt.Errorf("role %q: want viewer or operator", role)
	}
	if len(password) < minPassword {
		return fmt.Errorf("password of user %s: at least %d characters", name, minPassword)
	}
	if len(password) > 72 {
		return fmt.Errorf("password of user %s: at most 72 bytes (bcrypt's limit)", name)
	}
	u, err := LoadUsers(path)
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword(password, bcryptCost)
	if err != nil {
		return fmt.Errorf("hash the password of user %s: %w", name, err)
	}
	u.byName[name] = User{Name: name, Role: role, hash: hash}
	names := make([]string, 0, len(u.byName))
	for n := range u.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("# aegis-agent web users: NAME ROLE BCRYPT-HASH (aegis-agent web user add)\n")
	for _, n := range names {
		fmt.Fprintf(&b, "%s %s %s\n", n, u.byName[n].Role, u.byName[n].hash)
	}
	if err := atomicfile.Write(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write users file %s: %w", path, err)
	}
	return nil
}
