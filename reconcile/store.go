package reconcile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// ObjectRecord is what the agent remembers of one object between runs.
// Losing it loses no backup: snapshots are re-read from the destinations.
type ObjectRecord struct {
	Generation int64         `json:"generation"`
	SpecHash   string        `json:"specHash"`
	Policy     PolicyRecord  `json:"policy"`
	LastRun    *v1.RunResult `json:"lastRun,omitempty"`
	// LastRetention is the policy's last retention pass.
	LastRetention *v1.RetentionResult `json:"lastRetention,omitempty"`
	// Destinations only: the last reachability check.
	LastCheckTime time.Time `json:"lastCheckTime"`
	CheckError    string    `json:"checkError,omitempty"`
	Checked       bool      `json:"checked"`
	// Seeded is set once the times of a policy never seen before were
	// looked up on its destinations (state lost, or a new host).
	Seeded bool `json:"seeded,omitempty"`
}

// Store is the agent's recorded state: a bbolt database under the state
// directory. The database is opened per operation, so an `aegis-agent run`
// started by hand can use it while the agent runs.
type Store struct {
	path string
}

var bucketObjects = []byte("objects")

// OpenStore returns the store under dir, creating dir if needed.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return &Store{path: filepath.Join(dir, "state.db")}, nil
}

func (s *Store) with(write bool, fn func(b *bolt.Bucket) error) error {
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: 30 * time.Second, ReadOnly: false})
	if err != nil {
		return fmt.Errorf("open state %s: %w", s.path, err)
	}
	defer db.Close()
	if !write {
		return db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketObjects)
			if b == nil {
				return nil
			}
			return fn(b)
		})
	}
	return db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketObjects)
		if err != nil {
			return err
		}
		return fn(b)
	})
}

func recordKey(kind, name string) []byte { return []byte(kind + "/" + name) }

// Records returns every record, by "Kind/name".
func (s *Store) Records() (map[string]ObjectRecord, error) {
	out := map[string]ObjectRecord{}
	err := s.with(false, func(b *bolt.Bucket) error {
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var r ObjectRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %s: %w", k, err)
			}
			out[string(k)] = r
			return nil
		})
	})
	return out, err
}

// Update applies fn to the record of an object and saves it.
func (s *Store) Update(kind, name string, fn func(*ObjectRecord)) error {
	return s.with(true, func(b *bolt.Bucket) error {
		var r ObjectRecord
		if v := b.Get(recordKey(kind, name)); v != nil {
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
		}
		fn(&r)
		v, err := json.Marshal(&r)
		if err != nil {
			return err
		}
		return b.Put(recordKey(kind, name), v)
	})
}

// UpdateAll applies fn to the records of several objects of one kind in
// one transaction.
func (s *Store) UpdateAll(kind string, names []string, fn func(name string, r *ObjectRecord)) error {
	return s.with(true, func(b *bolt.Bucket) error {
		for _, name := range names {
			var r ObjectRecord
			if v := b.Get(recordKey(kind, name)); v != nil {
				if err := json.Unmarshal(v, &r); err != nil {
					return err
				}
			}
			fn(name, &r)
			v, err := json.Marshal(&r)
			if err != nil {
				return err
			}
			if err := b.Put(recordKey(kind, name), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Observe bumps the generation of every object whose spec changed since
// it was last seen, in one transaction that writes only what changed (a
// pass over a thousand unchanged policies writes nothing).
func (s *Store) Observe(objs []*v1.Object) error {
	changed := true // until the records say otherwise (a new store has none)
	err := s.with(false, func(b *bolt.Bucket) error {
		changed = false
		for _, o := range objs {
			var r ObjectRecord
			if v := b.Get(recordKey(o.Kind, o.Name)); v != nil {
				if err := json.Unmarshal(v, &r); err != nil {
					return err
				}
			}
			if r.SpecHash != o.SpecHash {
				changed = true
				return nil
			}
		}
		return nil
	})
	if err != nil || !changed {
		return err
	}
	return s.with(true, func(b *bolt.Bucket) error {
		for _, o := range objs {
			var r ObjectRecord
			if v := b.Get(recordKey(o.Kind, o.Name)); v != nil {
				if err := json.Unmarshal(v, &r); err != nil {
					return err
				}
			}
			if r.SpecHash == o.SpecHash {
				continue
			}
			r.Generation++
			r.SpecHash = o.SpecHash
			v, err := json.Marshal(&r)
			if err != nil {
				return err
			}
			if err := b.Put(recordKey(o.Kind, o.Name), v); err != nil {
				return err
			}
		}
		return nil
	})
}

var errLocked = errors.New("locked")
