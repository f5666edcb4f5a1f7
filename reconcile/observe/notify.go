package observe

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// Webhook events.
const (
	// EventFailure: a run failed (or partly failed) after a success, or as
	// the policy's first run.
	EventFailure = "failure"
	// EventReminder: the policy is still failing, ReminderEvery after the
	// last failure or reminder was sent.
	EventReminder = "reminder"
	// EventRecovery: the first success after failures.
	EventRecovery = "recovery"
	// EventSuccess: a success after a success, sent only with onSuccess.
	EventSuccess = "success"
)

// ReminderEvery is how often a policy that keeps failing is notified again:
// once when it starts failing, then at most once a day, however often the
// agent retries it.
const ReminderEvery = 24 * time.Hour

// Ping kinds, healthchecks.io style: URL/start, URL, URL/fail.
const (
	PingStart   = "start"
	PingSuccess = "success"
	PingFail    = "fail"
)

// SignatureHeader carries sha256=HEX, the HMAC-SHA256 of the request body
// keyed with the content of the webhook's secretFile (its trailing newline
// removed).
const SignatureHeader = "X-Aegis-Signature"

// Health is what the agent remembers of a policy's run of luck, kept
// in the state store so that it survives restarts and holds across the
// agent, --once and `run` alike.
type Health struct {
	ConsecutiveFailures int       `json:"consecutiveFailures"`
	Failing             bool      `json:"failing"`
	FailingSince        time.Time `json:"failingSince,omitzero"`
	// LastAlert is when the last failure or reminder webhook was sent.
	LastAlert     time.Time            `json:"lastAlert,omitzero"`
	SourceSuccess map[string]time.Time `json:"sourceSuccess,omitempty"`
	SourceAttempt map[string]time.Time `json:"sourceAttempt,omitempty"`
	// Notifications is the last delivery of each channel, by channel.
	Notifications map[string]v1.NotificationStatus `json:"notifications,omitempty"`
}

// NextHealth folds a finished run into the health of its policy and says
// which webhook event, if any, it calls for. It is pure: the storm control
// (one message when a policy starts failing, a reminder a day, one when it
// recovers) is decided here and table-tested.
func NextHealth(prev Health, res *v1.RunResult, now time.Time, onSuccess bool) (Health, string) {
	h := prev
	h.SourceSuccess = cloneTimes(prev.SourceSuccess)
	h.SourceAttempt = cloneTimes(prev.SourceAttempt)
	for _, s := range res.Sources {
		h.SourceAttempt[s.Name] = res.StartTime
		if s.Result == v1.ResultSucceeded {
			h.SourceSuccess[s.Name] = res.StartTime
		}
	}
	event := ""
	if res.Result == v1.ResultInterrupted {
		// A clean stop is not a failure, nor a success: the run is retried.
		return h, ""
	}
	if res.Result == v1.ResultSucceeded {
		switch {
		case prev.Failing:
			event = EventRecovery
		case onSuccess:
			event = EventSuccess
		}
		h.ConsecutiveFailures, h.Failing, h.FailingSince, h.LastAlert = 0, false, time.Time{}, time.Time{}
		return h, event
	}
	h.ConsecutiveFailures++
	switch {
	case !prev.Failing:
		event = EventFailure
		h.Failing, h.FailingSince = true, res.StartTime
	case now.Sub(prev.LastAlert) >= ReminderEvery:
		event = EventReminder
	}
	if event != "" {
		h.LastAlert = now
	}
	return h, event
}

func cloneTimes(m map[string]time.Time) map[string]time.Time {
	out := make(map[string]time.Time, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// WebhookBody is the JSON a webhook receives. Text is a one-line summary,
// so that chat services' incoming webhooks (Slack, Mattermost) show it as
// they are.
type WebhookBody struct {
	Text                string                 `json:"text"`
	Event               string                 `json:"event"`
	Time                time.Time              `json:"time"`
	Host                string                 `json:"host"`
	Policy              string                 `json:"policy"`
	Result              string                 `json:"result"`
	SnapshotID          string                 `json:"snapshotID,omitempty"`
	StartTime           time.Time              `json:"startTime"`
	Duration            string                 `json:"duration"`
	ConsecutiveFailures int                    `json:"consecutiveFailures"`
	FailingSince        *time.Time             `json:"failingSince,omitempty"`
	Reasons             []string               `json:"reasons,omitempty"`
	Message             string                 `json:"message,omitempty"`
	Sources             []v1.SourceResult      `json:"sources"`
	Destinations        []v1.DestinationResult `json:"destinations"`
	LogFile             string                 `json:"logFile,omitempty"`
	Agent               string                 `json:"agent"`
}

// NewWebhookBody describes a finished run for its webhooks.
func NewWebhookBody(event, host, policy string, res *v1.RunResult, h Health, now time.Time) WebhookBody {
	b := WebhookBody{
		Event: event, Time: now.UTC(), Host: host, Policy: policy,
		Result: res.Result, SnapshotID: res.SnapshotID, StartTime: res.StartTime.UTC(), Duration: res.Duration,
		ConsecutiveFailures: h.ConsecutiveFailures, Reasons: FailureReasons(res),
		Sources: res.Sources, Destinations: res.Destinations, LogFile: res.LogFile,
		Agent: "aegis-agent " + Version,
	}
	if b.Sources == nil {
		b.Sources = []v1.SourceResult{}
	}
	if b.Destinations == nil {
		b.Destinations = []v1.DestinationResult{}
	}
	if !h.FailingSince.IsZero() {
		t := h.FailingSince.UTC()
		b.FailingSince = &t
	}
	if res.Result != v1.ResultSucceeded {
		b.Message = RunErrors(res)
	}
	switch event {
	case EventFailure:
		b.Text = fmt.Sprintf("aegis: backup %s on %s %s: %s", policy, host, res.Result, b.Message)
	case EventReminder:
		b.Text = fmt.Sprintf("aegis: backup %s on %s still failing (%d failures in a row since %s): %s", policy, host, h.ConsecutiveFailures, h.FailingSince.UTC().Format(time.RFC3339), b.Message)
	case EventRecovery:
		b.Text = fmt.Sprintf("aegis: backup %s on %s recovered: snapshot %s", policy, host, res.SnapshotID)
	default:
		b.Text = fmt.Sprintf("aegis: backup %s on %s succeeded: snapshot %s", policy, host, res.SnapshotID)
	}
	return b
}

// Notifier delivers webhooks and pings. Deliveries of one policy go out in
// order, in the background (a slow receiver never holds up a backup), each
// retried with exponential backoff; a delivery that fails in the end is
// logged and counted, never returned: a notification never fails a backup.
type Notifier struct {
	Client *http.Client
	Log    *slog.Logger
	// Attempts per delivery (default 4), the first retry after Backoff
	// (default 1s), doubling.
	Attempts int
	Backoff  time.Duration
	// Sleep waits between attempts; tests replace it.
	Sleep   func(ctx context.Context, d time.Duration) error
	Metrics *Metrics
	// OnDelivery, when set, hears the end of every delivery (from the
	// delivery's goroutine): the agent records it for the status.
	OnDelivery func(policy string, d v1.NotificationStatus)
	// Now is the clock of the delivery times (nil: time.Now).
	Now func() time.Time

	mu    sync.Mutex
	tails map[string]chan struct{}
	wg    sync.WaitGroup
}

// NewNotifier returns a notifier with the defaults.
func NewNotifier(log *slog.Logger, m *Metrics) *Notifier {
	return &Notifier{Client: &http.Client{Timeout: 10 * time.Second}, Log: log, Metrics: m}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enqueue runs fn in the background after the earlier deliveries of the
// same policy.
func (n *Notifier) enqueue(policy string, fn func()) {
	n.mu.Lock()
	if n.tails == nil {
		n.tails = map[string]chan struct{}{}
	}
	prev := n.tails[policy]
	done := make(chan struct{})
	n.tails[policy] = done
	n.wg.Add(1)
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		defer close(done)
		if prev != nil {
			<-prev
		}
		fn()
	}()
}

// Wait blocks until every queued delivery is done.
func (n *Notifier) Wait() { n.wg.Wait() }

// WaitAtMost waits for the queued deliveries, but no longer than d: a
// command that is done must not hang on a receiver that does not answer.
// It reports whether every delivery finished.
func (n *Notifier) WaitAtMost(d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// Ping queues a healthchecks.io-style ping: base/start, base, or base/fail.
// body (the run's summary on success and failure) is sent as text.
func (n *Notifier) Ping(ctx context.Context, policy, base, kind, body string) {
	if base == "" {
		return
	}
	target, err := pingURL(base, kind)
	if err != nil {
		n.Log.Warn("notification not sent: bad ping URL", "policy", policy, "err", err)
		return
	}
	ctx = context.WithoutCancel(ctx)
	n.enqueue(policy, func() {
		err := n.deliver(ctx, target, "text/plain; charset=utf-8", []byte(body), nil)
		n.done(policy, "ping", "ping "+kind, base, err)
	})
}

// Webhook queues a webhook delivery of body, signed when w names a secret
// file. The secret is read when the delivery starts; a secret file that is
// missing or readable by others stops the delivery (an unsigned message
// would be refused by a receiver that checks, or trusted by one that does
// not).
func (n *Notifier) Webhook(ctx context.Context, policy string, index int, w v1.WebhookNotify, body WebhookBody) {
	payload, err := json.Marshal(body)
	if err != nil {
		n.Log.Error("notification not sent", "policy", policy, "err", err)
		return
	}
	ctx = context.WithoutCancel(ctx)
	what := fmt.Sprintf("webhook[%d] %s", index, body.Event)
	n.enqueue(policy, func() {
		headers := http.Header{}
		headers.Set("X-Aegis-Event", body.Event)
		headers.Set("X-Aegis-Delivery", randomHex(8))
		if w.SecretFile != "" {
			key, err := readWebhookSecret(w.SecretFile)
			if err != nil {
				n.done(policy, fmt.Sprintf("webhook[%d]", index), what, w.URL, err)
				return
			}
			headers.Set(SignatureHeader, Sign(key, payload))
		}
		err := n.deliver(ctx, w.URL, "application/json", payload, headers)
		n.done(policy, fmt.Sprintf("webhook[%d]", index), what, w.URL, err)
	})
}

func (n *Notifier) done(policy, channel, what, target string, err error) {
	kind := channel
	if strings.HasPrefix(channel, "webhook") {
		kind = "webhook"
	}
	if n.Metrics != nil {
		n.Metrics.Notification(policy, kind, err == nil)
	}
	now := time.Now
	if n.Now != nil {
		now = n.Now
	}
	d := v1.NotificationStatus{Channel: channel, Target: RedactURL(target), Time: now().UTC(), Result: v1.NotificationDelivered}
	if err != nil {
		d.Result, d.Error = v1.NotificationFailed, err.Error()
	}
	if n.Metrics != nil {
		n.Metrics.NotificationDelivered(policy, channel, err == nil, d.Time)
	}
	if n.OnDelivery != nil {
		n.OnDelivery(policy, d)
	}
	if err != nil {
		n.Log.Warn("notification failed (the backup is not affected)", "policy", policy, "notification", what, "to", RedactURL(target), "err", err)
		return
	}
	n.Log.Info("notification sent", "policy", policy, "notification", what, "to", RedactURL(target))
}

// Sign returns the value of SignatureHeader for body.
func Sign(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func readWebhookSecret(name string) ([]byte, error) {
	if err := v1.CheckSecretFile(name); err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	key := bytes.TrimRight(b, "\r\n")
	if len(key) == 0 {
		return nil, fmt.Errorf("webhook secret: %s is empty", name)
	}
	return key, nil
}

// errPermanent marks an answer that a retry will not change.
var errPermanent = errors.New("not retried")

// deliver POSTs body to target, retrying transport errors, 429 and 5xx.
// Its errors never contain the URL, which may carry a token.
func (n *Notifier) deliver(ctx context.Context, target, contentType string, body []byte, headers http.Header) error {
	attempts := n.Attempts
	if attempts <= 0 {
		attempts = 4
	}
	backoff := n.Backoff
	if backoff <= 0 {
		backoff = time.Second
	}
	sleep := n.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	client := n.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	var last error
	for i := range attempts {
		if i > 0 {
			if err := sleep(ctx, backoff<<(i-1)); err != nil {
				return err
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return errors.New("invalid URL")
		}
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("User-Agent", UserAgent())
		for k, v := range headers {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // drop the URL
			}
			last = fmt.Errorf("attempt %d of %d: %w", i+1, attempts, err)
			if unreachable(err) {
				// Nothing listens there, or the name does not resolve:
				// retrying in a few seconds will not change that.
				return fmt.Errorf("%w: %w", last, errPermanent)
			}
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		switch {
		case resp.StatusCode < 300:
			return nil
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			last = fmt.Errorf("attempt %d of %d: HTTP %s", i+1, attempts, resp.Status)
		default:
			return fmt.Errorf("HTTP %s: %w", resp.Status, errPermanent)
		}
	}
	return last
}

// unreachable reports a connection refused or a name that does not
// resolve: answers a retry within seconds will not change.
func unreachable(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// pingURL appends /start or /fail to a ping URL (nothing for success).
func pingURL(base, kind string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", errors.New("not an http(s) URL")
	}
	switch kind {
	case PingStart, PingFail:
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + kind
		u.RawPath = ""
	}
	return u.String(), nil
}

// RedactURL keeps the scheme and host of a URL: the path and query of a
// webhook or ping URL are often its credential (a Slack webhook, a
// healthchecks.io UUID).
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	out := u.Scheme + "://" + u.Host
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		out += "/…"
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// PingBody is the text a ping carries: healthchecks.io shows it with the
// ping, which tells the person paged what broke.
func PingBody(host, policy string, res *v1.RunResult) string {
	s := fmt.Sprintf("aegis-agent %s: policy %s on %s: %s in %s, snapshot %s\n", Version, policy, host, res.Result, res.Duration, res.SnapshotID)
	if res.Result != v1.ResultSucceeded {
		s += RunErrors(res) + "\n"
	}
	if res.LogFile != "" {
		s += "log: " + res.LogFile + "\n"
	}
	return s
}

// RunErrors says what failed in a run, one clause per failed source or
// destination, or the run's result when nothing did.
func RunErrors(r *v1.RunResult) string {
	var msgs []string
	for _, s := range r.Sources {
		if s.Error != "" {
			msgs = append(msgs, fmt.Sprintf("source %s: %s", s.Name, s.Error))
		}
	}
	for _, d := range r.Destinations {
		if d.Error != "" {
			msgs = append(msgs, fmt.Sprintf("destination %s: %s", d.Name, d.Error))
		}
	}
	if len(msgs) == 0 {
		return r.Result
	}
	return strings.Join(msgs, "; ")
}
