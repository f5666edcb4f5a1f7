package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

func runWith(result string, start time.Time) *v1.RunResult {
	res := &v1.RunResult{SnapshotID: "20260101T000000Z-abcdef", StartTime: start, Duration: "1s", Result: result,
		Sources: []v1.SourceResult{{Name: "site", Result: result}}, Destinations: []v1.DestinationResult{{Name: "disk", Result: result}}}
	if result != v1.ResultSucceeded {
		res.Destinations[0].Error = "destination disk is not usable: disk full"
	}
	return res
}

func TestNextHealthSendsNoStorm(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	S, F, P := v1.ResultSucceeded, v1.ResultFailed, v1.ResultPartiallyFailed
	for _, c := range []struct {
		name      string
		onSuccess bool
		runs      []string
		every     time.Duration
		want      []string
	}{
		{"first run fails, then keeps failing every 5m", false, []string{F, F, F, F}, 5 * time.Minute, []string{EventFailure, "", "", ""}},
		{"a partial failure counts as one", false, []string{S, P, F, S}, time.Hour, []string{"", EventFailure, "", EventRecovery}},
		{"successes are quiet by default", false, []string{S, S, S}, time.Hour, []string{"", "", ""}},
		{"onSuccess sends every success", true, []string{S, S, F, S, S}, time.Hour, []string{EventSuccess, EventSuccess, EventFailure, EventRecovery, EventSuccess}},
		{"a day of failures every 5 minutes: one message and one reminder", false, append([]string{S}, repeat(F, 24*12+1)...), 5 * time.Minute,
			append(append([]string{"", EventFailure}, repeat("", 24*12-1)...), EventReminder)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var h Health
			var got []string
			for i, r := range c.runs {
				now := t0.Add(time.Duration(i) * c.every)
				var ev string
				h, ev = NextHealth(h, runWith(r, now), now, c.onSuccess)
				got = append(got, ev)
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("events\n got %q\nwant %q", got, c.want)
			}
		})
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestNextHealthCountsAndRemembersSources(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h, _ := NextHealth(Health{}, runWith(v1.ResultSucceeded, t0), t0, false)
	h, _ = NextHealth(h, runWith(v1.ResultFailed, t0.Add(time.Hour)), t0.Add(time.Hour), false)
	h, _ = NextHealth(h, runWith(v1.ResultFailed, t0.Add(2*time.Hour)), t0.Add(2*time.Hour), false)
	if h.ConsecutiveFailures != 2 || !h.Failing || !h.FailingSince.Equal(t0.Add(time.Hour)) {
		t.Errorf("health %+v", h)
	}
	if !h.SourceSuccess["site"].Equal(t0) || !h.SourceAttempt["site"].Equal(t0.Add(2*time.Hour)) {
		t.Errorf("source times %+v %+v", h.SourceSuccess, h.SourceAttempt)
	}
	h, _ = NextHealth(h, runWith(v1.ResultSucceeded, t0.Add(3*time.Hour)), t0.Add(3*time.Hour), false)
	if h.ConsecutiveFailures != 0 || h.Failing || !h.FailingSince.IsZero() {
		t.Errorf("after recovery: %+v", h)
	}
}

// recorder is a webhook receiver that answers with the given statuses in
// turn (200 once they run out) and keeps what it got.
type recorder struct {
	mu       sync.Mutex
	statuses []int
	reqs     []recorded
}

type recorded struct {
	path    string
	body    []byte
	headers http.Header
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, recorded{path: req.URL.Path, body: body, headers: req.Header.Clone()})
	status := http.StatusOK
	if len(r.statuses) > 0 {
		status, r.statuses = r.statuses[0], r.statuses[1:]
	}
	w.WriteHeader(status)
}

func (r *recorder) got() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func testNotifier(t *testing.T) (*Notifier, *[]time.Duration, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	var sleeps []time.Duration
	var mu sync.Mutex
	n := NewNotifier(slog.New(slog.NewTextHandler(&logs, nil)), NewMetrics("h", "test", nil))
	n.Sleep = func(_ context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		sleeps = append(sleeps, d)
		return nil
	}
	return n, &sleeps, &logs
}

func secretFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook.secret")
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWebhookIsSignedAndRetried(t *testing.T) {
	rec := &recorder{statuses: []int{503, 429}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	n, sleeps, _ := testNotifier(t)
	key := secretFile(t, "s3cret-hmac-key\n", 0o600)
	body := NewWebhookBody(EventFailure, "h", "web", runWith(v1.ResultFailed, time.Now()), Health{ConsecutiveFailures: 1}, time.Now())
	n.Webhook(context.Background(), "web", 0, v1.WebhookNotify{URL: srv.URL + "/hook", SecretFile: key}, body)
	n.Wait()
	reqs := rec.got()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3 (two retries)", len(reqs))
	}
	if got := *sleeps; len(got) != 2 || got[0] != time.Second || got[1] != 2*time.Second {
		t.Errorf("backoff %v, want [1s 2s]", got)
	}
	for _, r := range reqs {
		if got, want := r.headers.Get(SignatureHeader), Sign([]byte("s3cret-hmac-key"), r.body); got != want {
			t.Errorf("signature %q, want %q", got, want)
		}
		if r.headers.Get("X-Aegis-Delivery") != reqs[0].headers.Get("X-Aegis-Delivery") || r.headers.Get("X-Aegis-Event") != EventFailure {
			t.Errorf("headers %v", r.headers)
		}
	}
	var got WebhookBody
	if err := json.Unmarshal(reqs[2].body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Event != EventFailure || got.Policy != "web" || got.Result != v1.ResultFailed || got.ConsecutiveFailures != 1 ||
		len(got.Reasons) != 1 || got.Reasons[0] != FailureDestinationUnreachable || !strings.Contains(got.Text, "disk full") {
		t.Errorf("body %+v", got)
	}
	if v := metricValue(t, n.Metrics.notifications.WithLabelValues("web", "webhook", "sent")); v != 1 {
		t.Errorf("sent notifications counted %v", v)
	}
}

func TestWebhookRefusedIsNotRetried(t *testing.T) {
	rec := &recorder{statuses: []int{400}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	n, _, logs := testNotifier(t)
	n.Webhook(context.Background(), "web", 0, v1.WebhookNotify{URL: srv.URL}, WebhookBody{Event: EventFailure})
	n.Wait()
	if len(rec.got()) != 1 {
		t.Errorf("%d requests for a 400", len(rec.got()))
	}
	if !strings.Contains(logs.String(), "400 Bad Request") {
		t.Errorf("log: %s", logs)
	}
}

func TestNotificationErrorsNeverShowTheURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // connection refused from now on
	n, sleeps, logs := testNotifier(t)
	var mu sync.Mutex
	got := map[string]v1.NotificationStatus{}
	n.OnDelivery = func(policy string, d v1.NotificationStatus) {
		mu.Lock()
		defer mu.Unlock()
		got[d.Channel] = d
	}
	const token = "T0KEN-in-the-path"
	n.Webhook(context.Background(), "web", 0, v1.WebhookNotify{URL: url + "/services/" + token}, WebhookBody{Event: EventFailure})
	n.Ping(context.Background(), "web", url+"/ping/"+token+"?k="+token, PingFail, "")
	n.Wait()
	if strings.Contains(logs.String(), token) {
		t.Errorf("the log shows the URL's token:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "connection refused") || !strings.Contains(logs.String(), "attempt 1 of 4") {
		t.Errorf("the log does not say what failed:\n%s", logs)
	}
	// Nothing listens there: a retry in seconds would not change that.
	if len(*sleeps) != 0 {
		t.Errorf("%d waits for a refused connection, want none", len(*sleeps))
	}
	for _, ch := range []string{"ping", "webhook[0]"} {
		d := got[ch]
		if d.Result != v1.NotificationFailed || !strings.Contains(d.Error, "connection refused") || strings.Contains(d.Target+d.Error, token) {
			t.Errorf("delivery of %s recorded as %+v, want Failed, connection refused, no token", ch, d)
		}
	}
	if v := metricValue(t, n.Metrics.notifications.WithLabelValues("web", "ping", "failed")); v != 1 {
		t.Errorf("failed pings counted %v", v)
	}
}

func TestWebhookWithAnUnsafeSecretIsNotSent(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	n, _, logs := testNotifier(t)
	key := secretFile(t, "k", 0o644)
	n.Webhook(context.Background(), "web", 0, v1.WebhookNotify{URL: srv.URL, SecretFile: key}, WebhookBody{Event: EventFailure})
	n.Wait()
	if len(rec.got()) != 0 {
		t.Error("sent with a secret readable by others")
	}
	if !strings.Contains(logs.String(), "readable by group or others") {
		t.Errorf("log: %s", logs)
	}
}

func TestDeliveriesOfAPolicyGoInOrder(t *testing.T) {
	rec := &recorder{statuses: []int{500}} // the start ping is retried once
	srv := httptest.NewServer(rec)
	defer srv.Close()
	n, _, _ := testNotifier(t)
	ctx := context.Background()
	n.Ping(ctx, "web", srv.URL+"/ping/abc", PingStart, "")
	n.Ping(ctx, "web", srv.URL+"/ping/abc", PingFail, "summary")
	n.Webhook(ctx, "web", 0, v1.WebhookNotify{URL: srv.URL + "/hook"}, WebhookBody{Event: EventFailure})
	n.Wait()
	var paths []string
	for _, r := range rec.got() {
		paths = append(paths, r.path)
	}
	if got, want := strings.Join(paths, " "), "/ping/abc/start /ping/abc/start /ping/abc/fail /hook"; got != want {
		t.Errorf("order %q, want %q", got, want)
	}
}

func TestPingURL(t *testing.T) {
	for _, c := range []struct{ base, kind, want string }{
		{"https://hc-ping.com/uuid", PingStart, "https://hc-ping.com/uuid/start"},
		{"https://hc-ping.com/uuid/", PingFail, "https://hc-ping.com/uuid/fail"},
		{"https://hc-ping.com/uuid", PingSuccess, "https://hc-ping.com/uuid"},
		{"http://127.0.0.1:8000/ping/x?create=1", PingStart, "http://127.0.0.1:8000/ping/x/start?create=1"},
	} {
		if got, err := pingURL(c.base, c.kind); err != nil || got != c.want {
			t.Errorf("pingURL(%q, %s) = %q, %v; want %q", c.base, c.kind, got, err, c.want)
		}
	}
	if _, err := pingURL("ftp://x/y", PingStart); err == nil {
		t.Error("ftp URL accepted")
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.slack.com/services/T0/B0/secret": "https://hooks.slack.com/…",
		"https://hc-ping.com/":                          "https://hc-ping.com",
		"http://u:p@example.com:8080/x?token=1":         "http://example.com:8080/…",
		"::bad":                                         "(invalid URL)",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// metricValue reads a counter or gauge.
func metricValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}
