package setup

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestPingLive(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+r.URL.Path+" "+string(body))
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	closed := "http://127.0.0.1:" + strconv.Itoa(closedPort(t))
	for _, tc := range []struct{ url, what, err string }{
		{srv.URL + "/uuid", "test ping to " + srv.URL + "/…", ""},
		{srv.URL + "/missing", "test ping to " + srv.URL + "/…", "the monitor answered 404 Not Found: is the URL right?"},
		{closed + "/uuid", "test ping to " + closed + "/…", "no answer from " + closed + "/…: dial tcp"},
	} {
		res := PingLive(context.Background(), srv.Client(), tc.url, "web")
		if res.What != tc.what {
			t.Errorf("%s: what %q, want %q", tc.url, res.What, tc.what)
		}
		switch {
		case tc.err == "" && res.Err != nil:
			t.Errorf("%s: %v", tc.url, res.Err)
		case tc.err != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one with %q", tc.url, res.Err, tc.err)
		}
	}
	if len(got) != 2 || got[0] != "POST /uuid aegis-agent init: test ping for policy web\n" {
		t.Errorf("the monitor got %q", got)
	}
}
