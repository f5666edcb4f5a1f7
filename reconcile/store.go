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
	// LastValid is the object's last valid version, so that an object
	// whose manifest turned invalid stays listable and restorable.
	LastValid *LastValid `json:"lastValid,omitempty"`
}

// LastValid is the last valid version of an object.
type LastValid struct {
	File        string           `json:"file"`
	SpecHash    string           `json:"specHash"`
	Policy      *v1.BackupPolicy `json:"policy,omitempty"`
	Destination *v1.Destination  `json:"destination,omitempty"`
}

// object returns the version as an object of the config.
func (l *LastValid) object(kind, name string) *v1.Object {
	return &v1.Object{Kind: kind, Name: name, File: l.File, SpecHash: l.SpecHash, Policy: l.Policy, Destination: l.Destination}
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
// it was last seen, and keeps the last valid version of each object valid
// says is, in one transaction that writes only what changed (a pass over a
// thousand unchanged policies writes nothing).
func (s *Store) Observe(objs []*v1.Object, valid func(*v1.Object) bool) error {
	changed := true // until the records say otherwise (a new store has none)
	err := s.with(false, func(b *bolt.Bucket) error {
		changed = false
		for _, o := range objs {
			r, err := getRecord(b, o)
			if err != nil {
				return err
			}
			if foldSeen(&r, o, valid(o)) {
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
			r, err := getRecord(b, o)
			if err != nil {
				return err
			}
			if !foldSeen(&r, o, valid(o)) {
				continue
			}
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

func getRecord(b *bolt.Bucket, o *v1.Object) (ObjectRecord, error) {
	var r ObjectRecord
	if b == nil {
		return r, nil
	}
	if v := b.Get(recordKey(o.Kind, o.Name)); v != nil {
		if err := json.Unmarshal(v, &r); err != nil {
			return r, fmt.Errorf("record %s/%s: %w", o.Kind, o.Name, err)
		}
	}
	return r, nil
}

// foldSeen folds what was seen of o into r and reports whether r changed.
func foldSeen(r *ObjectRecord, o *v1.Object, valid bool) bool {
	changed := false
	if r.SpecHash != o.SpecHash {
		r.Generation++
		r.SpecHash = o.SpecHash
		changed = true
	}
	if valid && (r.LastValid == nil || r.LastValid.SpecHash != o.SpecHash || r.LastValid.File != o.File) {
		r.LastValid = &LastValid{File: o.File, SpecHash: o.SpecHash, Policy: withoutSecrets(o.Policy), Destination: o.Destination}
		changed = true
	}
	return changed
}

var errLocked = errors.New("locked")

// withoutSecrets returns a copy of p fit for the state store: what listing
// and restoring need (its sources, destinations, encryption), without what
// may carry a token (notification URLs, hook commands and environments).
func withoutSecrets(p *v1.BackupPolicy) *v1.BackupPolicy {
	if p == nil {
		return nil
	}
	c := *p
	c.Spec.Notify = nil
	c.Spec.Hooks = nil
	c.Spec.Sources = make([]v1.Source, len(p.Spec.Sources))
	for i, s := range p.Spec.Sources {
		s.Hooks = nil
		c.Spec.Sources[i] = s
	}
	return &c
}
