package reconcile

import (
	"sort"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// LastValidOnly returns, sorted by name, the objects of kind that are known
// only by their last valid version (LoadConfigWithState): their file no
// longer parses, so no manifest object names them today.
func (c *Config) LastValidOnly(kind string) []*v1.Object {
	var out []*v1.Object
	for _, o := range c.lastValid {
		if o.Kind != kind || c.hasObject(kind, o.Name) {
			continue
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (c *Config) hasObject(kind, name string) bool {
	for _, o := range c.Objects {
		if o.Kind == kind && o.Name == name {
			return true
		}
	}
	return false
}
