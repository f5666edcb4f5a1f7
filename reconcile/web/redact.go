package web

import "regexp"

// secretPatterns match what looks like a credential in text the console
// shows: a URL's user information, secret-like query or key=value pairs,
// age secret keys and PEM private keys.
var secretPatterns = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]*@`), "${1}REDACTED@"},
	{regexp.MustCompile(`(?i)((?:password|passwd|pass|secret|token|key|apikey|api_key|access_key|secret_key|signature|sig|auth|credentials?)["']?\s*[=:]\s*["']?)[^\s"'&,;]+`), "${1}REDACTED"},
	{regexp.MustCompile(`AGE-SECRET-KEY-1[0-9A-Z]+`), "AGE-SECRET-KEY-REDACTED"},
	{regexp.MustCompile(`(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)`), "(private key redacted)"},
}

// redact replaces whatever looks like a secret in s.
func redact(s string) string {
	for _, p := range secretPatterns {
		s = p.re.ReplaceAllString(s, p.with)
	}
	return s
}
