package postgres

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/aegis-backup/aegis/drivers/internal/dumptool"
)

// Server reads and drops databases, for the checks of restore drills.
type Server struct {
	c          *conn
	psql       string
	versionNum int
}

// Connect reaches the server (as a PostgresSource names it) and reads its
// version.
func Connect(ctx context.Context, host string, port int, user, passwordFile string) (*Server, error) {
	c, err := newConn(host, port, user, passwordFile)
	if err != nil {
		return nil, err
	}
	psql, err := dumptool.Find("psql")
	if err != nil {
		return nil, err
	}
	srv, err := c.inspect(ctx, psql, []string{"postgres", "template1"})
	if err != nil {
		return nil, err
	}
	return &Server{c: c, psql: psql, versionNum: srv.versionNum}, nil
}

// Databases lists every database of the server, templates included.
func (s *Server) Databases(ctx context.Context) ([]string, error) {
	rows, err := s.c.query(ctx, s.psql, s.c.db, `SELECT datname FROM pg_database ORDER BY datname`, 1)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, r[0])
	}
	return out, nil
}

// Tables counts the rows of every ordinary table of db exactly (no
// planner estimates), keyed by the schema-qualified name as pg_dump
// writes it (quote_ident(schema).quote_ident(table)).
func (s *Server) Tables(ctx context.Context, db string) (map[string]int64, error) {
	rows, err := s.c.query(ctx, s.psql, db, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) `+
		`FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace `+
		`WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%' ORDER BY 1`, 1)
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", db, err)
	}
	counts := make(map[string]int64, len(rows))
	for start := 0; start < len(rows); start += 200 {
		var q []string
		for _, r := range rows[start:min(start+200, len(rows))] {
			q = append(q, "SELECT "+quoteLiteral(r[0])+", count(*) FROM "+r[0])
		}
		res, err := s.c.query(ctx, s.psql, db, strings.Join(q, " UNION ALL "), 2)
		if err != nil {
			return nil, fmt.Errorf("count rows in %s: %w", db, err)
		}
		for _, r := range res {
			n, err := strconv.ParseInt(r[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("count rows of %s in %s: %q", r[0], db, r[1])
			}
			counts[r[0]] = n
		}
	}
	return counts, nil
}

// QueryInt runs sql in db; its answer must be a single integer.
func (s *Server) QueryInt(ctx context.Context, db, sql string) (int64, error) {
	rows, err := s.c.query(ctx, s.psql, db, sql, 1)
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 {
		return 0, fmt.Errorf("the query returned %d values, want a single number", len(rows))
	}
	n, err := strconv.ParseInt(strings.TrimSpace(rows[0][0]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("the query returned %q, want a number", rows[0][0])
	}
	return n, nil
}

// DropDatabase drops db if it exists, ending its sessions.
func (s *Server) DropDatabase(ctx context.Context, db string) error {
	stmt := "DROP DATABASE IF EXISTS :\"db\";\n"
	if s.versionNum >= 130000 {
		stmt = "DROP DATABASE IF EXISTS :\"db\" WITH (FORCE);\n"
	}
	cmd := s.c.cmd(s.psql, s.c.db, "-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", "-v", "db="+db)
	cmd.Stdin = strings.NewReader(stmt)
	if _, err := dumptool.Run(ctx, cmd); err != nil {
		return fmt.Errorf("drop database %s: %w", db, err)
	}
	return nil
}

// quoteLiteral writes s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// DumpTables reads a custom-format dump (pg_restore --data-only, no server
// needed) and returns the rows it holds per table, keyed by the
// schema-qualified name of its COPY statements.
func DumpTables(ctx context.Context, file string) (map[string]int64, error) {
	pgRestore, err := dumptool.Find("pg_restore")
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	type result struct {
		counts map[string]int64
		err    error
	}
	done := make(chan result, 1)
	go func() {
		counts, err := countCopyRows(pr)
		pr.CloseWithError(err)
		done <- result{counts, err}
	}()
	_, _, err = dumptool.Stream(ctx, dumptool.Cmd{Path: pgRestore, Args: []string{"--data-only", "--file=-", file}}, pw)
	pw.CloseWithError(err)
	res := <-done
	if err != nil {
		return nil, fmt.Errorf("read dump %s: %w", file, err)
	}
	if res.err != nil {
		return nil, fmt.Errorf("read dump %s: %w", file, res.err)
	}
	return res.counts, nil
}

// countCopyRows counts the data lines of each COPY ... FROM stdin block of
// a SQL script. COPY's text format escapes line breaks in values, so a
// line is a row.
func countCopyRows(r io.Reader) (map[string]int64, error) {
	counts := map[string]int64{}
	br := bufio.NewReaderSize(r, 64<<10)
	table, first := "", true
	for {
		line, isPrefix, err := br.ReadLine()
		if errors.Is(err, io.EOF) {
			if table != "" {
				return nil, fmt.Errorf("the data of %s ends early", table)
			}
			return counts, nil
		}
		if err != nil {
			return nil, err
		}
		if first {
			switch {
			case table != "" && bytes.Equal(line, []byte(`\.`)):
				table = ""
			case table != "":
				counts[table]++
			case bytes.HasPrefix(line, []byte("COPY ")) && bytes.HasSuffix(line, []byte(" FROM stdin;")):
				head := strings.TrimSuffix(strings.TrimPrefix(string(line), "COPY "), " FROM stdin;")
				if i := strings.Index(head, " ("); i >= 0 {
					head = head[:i]
				}
				table = head
				counts[table] += 0
			}
		}
		first = !isPrefix
	}
}

// DatabaseOf returns the database whose dump the data object name holds,
// or false when it holds none (the globals).
func DatabaseOf(name string) (string, bool) { return dumptool.DatabaseName(name, DumpExt) }
