package mysql

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/aegis-backup/aegis/drivers/internal/dumptool"
)

// Server reads and drops databases, for the checks of restore drills.
type Server struct {
	c      *conn
	client string
}

// Connect reaches the server (as a MySQLSource names it); Close releases
// what it holds.
func Connect(ctx context.Context, host string, port int, socket, user, passwordFile string) (*Server, error) {
	client, err := dumptool.Find("mariadb", "mysql")
	if err != nil {
		return nil, err
	}
	c, err := newConn(host, port, socket, user, passwordFile)
	if err != nil {
		return nil, err
	}
	if _, err := c.query(ctx, client, "SELECT 1"); err != nil {
		c.close()
		return nil, err
	}
	return &Server{c: c, client: client}, nil
}

// Close removes the client's option file.
func (s *Server) Close() { s.c.close() }

// Databases lists every database of the server.
func (s *Server) Databases(ctx context.Context) ([]string, error) {
	rows, err := s.c.query(ctx, s.client, "SELECT HEX(SCHEMA_NAME) FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rows {
		name, err := unhex(r[0])
		if err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, nil
}

// Tables counts the rows of every base table of db exactly, keyed by
// table name.
func (s *Server) Tables(ctx context.Context, db string) (map[string]int64, error) {
	rows, err := s.c.query(ctx, s.client, "SELECT HEX(TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "+
		hexLiteral(db)+" AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME")
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", db, err)
	}
	counts := make(map[string]int64, len(rows))
	for start := 0; start < len(rows); start += 200 {
		var q []string
		for _, r := range rows[start:min(start+200, len(rows))] {
			name, err := unhex(r[0])
			if err != nil {
				return nil, err
			}
			q = append(q, "SELECT HEX("+hexLiteral(name)+"), COUNT(*) FROM "+quoteIdent(db)+"."+quoteIdent(name))
		}
		res, err := s.c.query(ctx, s.client, strings.Join(q, " UNION ALL "))
		if err != nil {
			return nil, fmt.Errorf("count rows in %s: %w", db, err)
		}
		for _, r := range res {
			name, err := unhex(r[0])
			if err != nil {
				return nil, err
			}
			if counts[name], err = strconv.ParseInt(r[1], 10, 64); err != nil {
				return nil, fmt.Errorf("count rows of %s in %s: %q", name, db, r[1])
			}
		}
	}
	return counts, nil
}

// QueryInt runs sql in db; its answer must be a single integer.
func (s *Server) QueryInt(ctx context.Context, db, sql string) (int64, error) {
	out, _, err := dumptool.Output(ctx, s.c.cmd(s.client, "--batch", "--skip-column-names", "--database="+db, "--execute="+sql), 1<<20)
	if err != nil {
		return 0, err
	}
	val := strings.TrimSpace(string(out))
	if strings.ContainsAny(val, "\t\n") {
		return 0, fmt.Errorf("the query returned several values, want a single number")
	}
	n, err := strconv.ParseInt(val, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("the query returned %q, want a number", val)
	}
	return n, nil
}

// DropDatabase drops db if it exists.
func (s *Server) DropDatabase(ctx context.Context, db string) error {
	if _, err := s.c.query(ctx, s.client, "DROP DATABASE IF EXISTS "+quoteIdent(db)); err != nil {
		return fmt.Errorf("drop database %s: %w", db, err)
	}
	return nil
}

// DumpTables reads a dump of one database (the SQL of mysqldump or
// mariadb-dump) and returns the rows it inserts per table, keyed by table
// name. Every CREATE TABLE is listed, also with no rows.
func DumpTables(ctx context.Context, file string) (map[string]int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	counts, err := countInsertRows(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("read dump %s: %w", file, err)
	}
	return counts, nil
}

// countInsertRows counts the value tuples of each INSERT INTO `t` VALUES
// statement, which the dump tools write on one line (mysqldump) or one
// tuple a line (mariadb-dump); line breaks inside strings are escaped.
func countInsertRows(ctx context.Context, r io.Reader) (map[string]int64, error) {
	counts := map[string]int64{}
	br := bufio.NewReaderSize(r, 64<<10)
	var tc tupleCounter
	table, first := "", true
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		line, isPrefix, err := br.ReadLine()
		if errors.Is(err, io.EOF) {
			return counts, nil
		}
		if err != nil {
			return nil, err
		}
		if first && table == "" {
			if name, rest, ok := cutTable(line, "INSERT INTO `"); ok {
				if values, ok := bytes.CutPrefix(bytes.TrimLeft(rest, " "), []byte("VALUES")); ok {
					table, tc = name, tupleCounter{}
					line = values
				}
			} else if name, _, ok := cutTable(line, "CREATE TABLE `"); ok {
				counts[name] += 0
			}
		}
		if table != "" {
			n, done := tc.feed(line)
			counts[table] += n
			if done {
				table = ""
			}
		}
		first = !isPrefix
	}
}

// cutTable reads a back-quoted name after prefix.
func cutTable(line []byte, prefix string) (string, []byte, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(prefix))
	if !ok {
		return "", nil, false
	}
	var name []byte
	for i := 0; i < len(rest); i++ {
		if rest[i] != '`' {
			name = append(name, rest[i])
			continue
		}
		if i+1 < len(rest) && rest[i+1] == '`' {
			name = append(name, '`')
			i++
			continue
		}
		return string(name), rest[i+1:], true
	}
	return "", nil, false
}

// tupleCounter counts the top-level parenthesised tuples of a VALUES list,
// skipping what is inside quoted strings.
type tupleCounter struct {
	depth      int
	quote, esc bool
	quoteByte  byte
}

// feed reads more of the statement and returns the tuples begun in it,
// and whether the statement ended (a ";" outside strings and tuples).
func (t *tupleCounter) feed(b []byte) (n int64, done bool) {
	for _, c := range b {
		switch {
		case t.esc:
			t.esc = false
		case t.quote && c == '\\':
			t.esc = true
		case t.quote && c == t.quoteByte:
			t.quote = false
		case t.quote:
		case c == '\'' || c == '"':
			t.quote, t.quoteByte = true, c
		case c == '(':
			if t.depth == 0 {
				n++
			}
			t.depth++
		case c == ')':
			t.depth--
		case c == ';' && t.depth == 0:
			return n, true
		}
	}
	return n, false
}

// DatabaseOf returns the database whose dump the data object name holds,
// or false when it holds none (the users).
func DatabaseOf(name string) (string, bool) { return dumptool.DatabaseName(name, DumpExt) }
