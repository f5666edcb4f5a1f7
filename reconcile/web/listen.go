package web

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// ErrInsecureAddr is returned by CheckAddr for an address off loopback
// without TLS or without authentication.
var ErrInsecureAddr = errors.New("refusing to serve the console off loopback without TLS and authentication")

// IsLoopback reports whether the host part of addr ("127.0.0.1:8080",
// "[::1]:0", "localhost:8080") only listens on loopback. An empty host
// (":8080") listens on every interface, so it is not loopback.
func IsLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("web address %q: %w", addr, err)
	}
	if host == "localhost" {
		return true, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false, nil // a host name: it may resolve to anything
	}
	return ip.IsLoopback(), nil
}

// CheckAddr applies the listener rules: loopback is always allowed;
// anything else needs both TLS and authentication.
func CheckAddr(addr string, tls, auth bool) error {
	lo, err := IsLoopback(addr)
	if err != nil {
		return err
	}
	if lo {
		return nil
	}
	var missing []string
	if !tls {
		missing = append(missing, "--web-tls-cert and --web-tls-key")
	}
	if !auth {
		missing = append(missing, "users (aegis-agent web user add) or trusted proxy authentication")
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("web address %s: %w: set %s", addr, ErrInsecureAddr, strings.Join(missing, " and "))
}
