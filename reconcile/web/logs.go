package web

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"sort"
	"strings"

	"github.com/aegis-backup/aegis/reconcile/observe"
)

// maxLines bounds the lines the audit and log pages show.
const maxLines = 500

// logLine is one line of agent.log or audit.jsonl as shown.
type logLine struct {
	Time   string
	Level  string
	Action string
	Actor  string
	Object string
	Result string
	Text   string
}

// filter is what the audit and log pages filter on.
type filter struct {
	Q, Level, Action, Actor string
}

func filterOf(r *http.Request) filter {
	q := r.URL.Query()
	return filter{Q: q.Get("q"), Level: q.Get("level"), Action: q.Get("action"), Actor: q.Get("actor")}
}

// match reports whether a line passes the filter.
func (f filter) match(l logLine, raw string) bool {
	return (f.Q == "" || strings.Contains(strings.ToLower(raw), strings.ToLower(f.Q))) &&
		(f.Level == "" || strings.EqualFold(l.Level, f.Level)) &&
		(f.Action == "" || strings.HasPrefix(l.Action, f.Action)) &&
		(f.Actor == "" || l.Actor == f.Actor)
}

// readLines parses the end of a JSON-lines file, newest first, filtered.
func readLines(name string, f filter, parse func(map[string]any) logLine) ([]logLine, error) {
	body, err := readTail(name, 8<<20)
	if err != nil {
		return nil, err
	}
	var out []logLine
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		raw := redact(sc.Text())
		var m map[string]any
		if json.Unmarshal([]byte(raw), &m) != nil {
			continue
		}
		if l := parse(m); f.match(l, raw) {
			out = append(out, l)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if len(out) > maxLines {
		out = out[:maxLines]
	}
	return out, sc.Err()
}

func str(m map[string]any, k string) string {
	v, _ := m[k].(string)
	return v
}

func auditLine(m map[string]any) logLine {
	l := logLine{Time: str(m, "time"), Action: str(m, "action"), Actor: str(m, "actor"), Object: str(m, "object"), Result: str(m, "outcome")}
	var extra []string
	for _, k := range []string{"snapshot", "destination", "file", "keyId", "message"} {
		if v := str(m, k); v != "" {
			extra = append(extra, k+"="+v)
		}
	}
	l.Text = strings.Join(extra, " ")
	return l
}

func agentLine(m map[string]any) logLine {
	l := logLine{Time: str(m, "time"), Level: str(m, "level"), Text: str(m, "msg")}
	var extra []string
	for k, v := range m {
		if k == "time" || k == "level" || k == "msg" {
			continue
		}
		b, _ := json.Marshal(v)
		extra = append(extra, k+"="+string(b))
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		l.Text += "  " + strings.Join(extra, " ")
	}
	return l
}

// logsData is the audit or log page.
type logsData struct {
	Filter filter
	Lines  []logLine
	Error  string
}

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request) {
	f := filterOf(r)
	lines, err := readLines(filepath.Join(s.opts.LogDir, observe.AuditLogName), f, auditLine)
	s.render(w, r, http.StatusOK, "audit", page{Title: "Audit trail", Nav: "audit", Data: &logsData{Filter: f, Lines: lines, Error: redactErr(err)}})
}

func (s *Server) logPage(w http.ResponseWriter, r *http.Request) {
	f := filterOf(r)
	lines, err := readLines(filepath.Join(s.opts.LogDir, observe.AgentLogName), f, agentLine)
	s.render(w, r, http.StatusOK, "log", page{Title: "Agent log", Nav: "log", Data: &logsData{Filter: f, Lines: lines, Error: redactErr(err)}})
}
