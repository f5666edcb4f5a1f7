package main

import (
	"bytes"
	"testing"

	"github.com/charmbracelet/huh"
)

// TestAccessibleDefaults: the prompts of --accessible mode show what an
// empty answer keeps.
func TestAccessibleDefaults(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  int
		after string // huh takes the first option for a value it lacks
	}{{"a", 1, "a"}, {"c", 3, "c"}, {"x", 1, "a"}} {
		v := tc.value
		sel := huh.NewSelect[string]().Value(&v).Options(huh.NewOption("A", "a"), huh.NewOption("B", "b"), huh.NewOption("C", "c"))
		huh.NewForm(huh.NewGroup(sel))
		sel.Focus()
		if got := selectedNumber(sel); got != tc.want {
			t.Errorf("value %q: number %d, want %d", tc.value, got, tc.want)
		}
		if v != tc.after {
			t.Errorf("value %q became %q, want %q", tc.value, v, tc.after)
		}
	}
	var b bytes.Buffer
	p := &promptWriter{w: &b, suffix: "3"}
	p.Write([]byte("1. A\n"))
	p.Write([]byte("Enter a number between 1 and 3: "))
	if got, want := b.String(), "1. A\nEnter a number between 1 and 3 [3]: "; got != want {
		t.Errorf("prompt %q, want %q", got, want)
	}
}
