package files

import (
	"fmt"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// An excluder decides which entries the exclude patterns of a FilesSource
// leave out of the archive, by the rule given in the package documentation.
type excluder struct {
	patterns []excludePattern
}

type excludePattern struct {
	raw string
	// glob is matched against the absolute path when abs is set, else
	// against the path without its leading "/".
	glob string
	abs  bool
	// contentsOnly is set for patterns ending in "/**": a path that also
	// matches base is the directory itself, which is kept.
	contentsOnly bool
	base         string
	dirOnly      bool
}

func newExcluder(patterns []string) (*excluder, error) {
	x := &excluder{}
	for _, raw := range patterns {
		p := raw
		if strings.TrimSpace(p) == "" {
			return nil, fmt.Errorf("exclude pattern %q: empty", raw)
		}
		ep := excludePattern{raw: raw}
		if len(p) > 1 && strings.HasSuffix(p, "/") {
			ep.dirOnly = true
			p = strings.TrimRight(p, "/")
			if p == "" {
				p = "/"
			}
		}
		if strings.HasPrefix(p, "/") {
			ep.abs = true
		} else if p != "**" && !strings.HasPrefix(p, "**/") {
			p = "**/" + p
		}
		ep.glob = p
		if base, ok := strings.CutSuffix(p, "/**"); ok {
			ep.contentsOnly = true
			ep.base = base
		}
		if !doublestar.ValidatePattern(ep.glob) {
			return nil, fmt.Errorf("exclude pattern %q: invalid glob syntax", raw)
		}
		x.patterns = append(x.patterns, ep)
	}
	return x, nil
}

// match returns the pattern that excludes the entry at the absolute path
// abs, if any. isDir tells whether the entry is a directory.
func (x *excluder) match(abs string, isDir bool) (string, bool) {
	if x == nil || abs == "/" {
		return "", false
	}
	rel := abs[1:]
	for _, p := range x.patterns {
		if p.dirOnly && !isDir {
			continue
		}
		subject := rel
		if p.abs {
			subject = abs
		}
		// The patterns were validated, so Match cannot fail.
		if ok, _ := doublestar.Match(p.glob, subject); !ok {
			continue
		}
		if p.contentsOnly {
			if self, _ := doublestar.Match(p.base, subject); self {
				continue
			}
		}
		return p.raw, true
	}
	return "", false
}

// matchPath is match for a configured path: it is excluded when it, or any
// directory above it, is.
func (x *excluder) matchPath(abs string, isDir bool) (string, bool) {
	if pat, ok := x.match(abs, isDir); ok {
		return pat, true
	}
	for dir := parentDir(abs); dir != "/"; dir = parentDir(dir) {
		if pat, ok := x.match(dir, true); ok {
			return pat, true
		}
	}
	return "", false
}

// parentDir is path.Dir for a clean absolute path.
func parentDir(abs string) string {
	i := strings.LastIndexByte(abs, '/')
	if i <= 0 {
		return "/"
	}
	return abs[:i]
}
