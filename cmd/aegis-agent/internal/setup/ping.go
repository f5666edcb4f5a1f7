package setup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aegis-backup/aegis/reconcile/observe"
)

// pingTimeout bounds the test ping.
const pingTimeout = 10 * time.Second

// PingLive sends one test ping to a healthchecks.io-style URL as the
// agent does after a successful run (a POST of a line of text), so the
// user sees at once whether the monitor hears this host. A refused
// connection fails at once: there is no retry. What names the URL
// without its path, which is often its credential.
func PingLive(ctx context.Context, client *http.Client, url, policy string) LiveResult {
	res := LiveResult{Checked: true, What: "test ping to " + observe.RedactURL(url)}
	if client == nil {
		client = &http.Client{Timeout: pingTimeout}
	}
	body := fmt.Sprintf("aegis-agent init: test ping for policy %s\n", policy)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		res.Err = fmt.Errorf("not a URL to ping: %w", err)
		return res
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	req.Header.Set("User-Agent", observe.UserAgent())
	resp, err := client.Do(req)
	if err != nil {
		// The URL's path may be a credential: say only where.
		res.Err = fmt.Errorf("no answer from %s: %w", observe.RedactURL(url), unwrapURLError(err))
		return res
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		res.Err = fmt.Errorf("the monitor answered %s: is the URL right?", resp.Status)
	}
	return res
}

// unwrapURLError drops the *url.Error wrapper, which repeats the URL.
func unwrapURLError(err error) error {
	if u, ok := err.(interface{ Unwrap() error }); ok && u.Unwrap() != nil {
		return u.Unwrap()
	}
	return err
}
