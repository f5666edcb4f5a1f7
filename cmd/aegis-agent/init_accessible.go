package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/huh"
	"golang.org/x/term"
)

// lineReader is standard input for --accessible mode. It hands the
// prompts one line at a time (each prompt reads through a buffer of its
// own and drops what it read past its line, which would lose the next
// answers of piped input), and it gives up at once when ctx is done: the
// prompts would otherwise keep waiting for a line after Ctrl+C.
type lineReader struct {
	ctx     context.Context
	f       *os.File
	lines   chan lineRead
	reading bool   // a line is being read
	pending []byte // what the last Read could not hand over
	// ended is set when the input ended (Ctrl+D on a terminal),
	// interrupted when ctx was done.
	ended, interrupted bool
}

type lineRead struct {
	line []byte
	err  error
}

func newLineReader(ctx context.Context, f *os.File) *lineReader {
	return &lineReader{ctx: ctx, f: f, lines: make(chan lineRead, 1)}
}

// Read returns at most one line.
func (r *lineReader) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	if r.ended || r.interrupted {
		return 0, io.EOF
	}
	if !r.reading {
		r.reading = true
		go r.readLine()
	}
	select {
	case <-r.ctx.Done():
		r.interrupted = true
		return 0, io.EOF
	case l := <-r.lines:
		r.reading = false
		if l.err != nil {
			r.ended = true
		}
		n := copy(p, l.line)
		r.pending = l.line[n:]
		if n == 0 && l.err != nil {
			return 0, io.EOF
		}
		return n, nil
	}
}

// readLine reads up to and with the next newline, byte by byte so that
// nothing past it is taken from the terminal.
func (r *lineReader) readLine() {
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := r.f.Read(b)
		if n == 1 {
			line = append(line, b[0])
		}
		if err != nil {
			r.lines <- lineRead{line, err}
			return
		}
		if n == 1 && b[0] == '\n' {
			r.lines <- lineRead{line, nil}
			return
		}
	}
}

// Fd lets password prompts turn echo off.
func (r *lineReader) Fd() uintptr { return r.f.Fd() }

// stopped says why the prompts must stop, or nil.
func (r *lineReader) stopped() error {
	switch {
	case r.interrupted:
		return context.Canceled
	case r.ended:
		return errInputEnded
	}
	return nil
}

// accessibleField runs a field's line prompt with what huh leaves out:
// the default an empty answer keeps is shown, no prompt is asked once the
// input ended or the user interrupted, and huh's select field, which
// indexes its options with a bad number when the input ends after an
// invalid answer, cannot bring the program down.
type accessibleField struct {
	huh.Field
	in      *lineReader
	secrets map[*huh.Input]bool
}

// WithAccessible keeps the wrapper: huh runs what this returns.
func (f accessibleField) WithAccessible(bool) huh.Field { return f }

func (f accessibleField) RunAccessible(out io.Writer, in io.Reader) (err error) {
	if f.in.stopped() != nil {
		return f.in.stopped()
	}
	defer func() {
		if r := recover(); r != nil {
			if f.in.stopped() == nil {
				panic(r)
			}
			err = f.in.stopped()
		}
	}()
	if def := f.defaultText(); def != "" {
		out = &promptWriter{w: out, suffix: def}
	}
	err = f.Field.RunAccessible(out, in)
	if errors.Is(err, io.EOF) {
		// A password prompt reads the terminal itself.
		f.in.ended = true
	}
	if s := f.in.stopped(); s != nil {
		return s
	}
	return err
}

// defaultText is what an empty answer keeps, as the prompt shows it; ""
// when there is nothing to show (confirmations show theirs already).
func (f accessibleField) defaultText() string {
	switch fl := f.Field.(type) {
	case *huh.Input:
		if v, _ := fl.GetValue().(string); v != "" && !f.secrets[fl] {
			return v
		}
	case *huh.Select[string]:
		if n := selectedNumber(fl); n > 0 {
			return fmt.Sprint(n)
		}
	}
	return ""
}

// selectedNumber is the 1-based number of the option a select proposes,
// or 0. huh does not tell: go to the top of the list and walk down to
// the proposed value, which leaves the select where it was.
func selectedNumber(s *huh.Select[string]) int {
	want, _ := s.GetValue().(string)
	s.Update(tea.KeyMsg{Type: tea.KeyHome})
	for n := 1; n <= 1000; n++ {
		if v, ok := s.Hovered(); !ok || v == want {
			if ok {
				return n
			}
			return 0
		}
		s.Update(tea.KeyMsg{Type: tea.KeyDown})
	}
	return 0
}

// promptWriter adds suffix to the prompts, the writes that do not end a
// line.
type promptWriter struct {
	w      io.Writer
	suffix string
}

func (p *promptWriter) Write(b []byte) (int, error) {
	if len(b) == 0 || b[len(b)-1] == '\n' {
		return p.w.Write(b)
	}
	prompt := bytes.TrimRight(b, " ")
	colon := bytes.HasSuffix(prompt, []byte(":"))
	prompt = bytes.TrimSuffix(prompt, []byte(":"))
	if _, err := fmt.Fprintf(p.w, "%s [%s]%s ", prompt, p.suffix, map[bool]string{true: ":"}[colon]); err != nil {
		return 0, err
	}
	return len(b), nil
}

// watchInterrupt ends the program when Ctrl+C comes during a password
// prompt of --accessible mode: huh reads those from the terminal itself,
// a read nothing can cancel. The other prompts read through lineReader
// and return at once; one still waiting a second after Ctrl+C is a
// password prompt. The returned func stops the watch.
func watchInterrupt(ctx context.Context, out io.Writer) (stop func()) {
	fd := int(os.Stdin.Fd())
	state, stateErr := term.GetState(fd)
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		select {
		case <-done:
		case <-time.After(time.Second):
			if stateErr == nil {
				_ = term.Restore(fd, state) // echo back on
			}
			fmt.Fprintln(out, "\n"+errCancelled.Error()+".")
			os.Exit(exitFailed)
		}
	}()
	return func() { close(done) }
}
