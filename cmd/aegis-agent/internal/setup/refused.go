package setup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/s3"
)

// probeTimeout bounds the connection attempt made before a live check.
// Only a refused connection counts: anything else (a name that does not
// resolve yet, a firewall that drops packets) is left to the check
// itself, which says more.
const probeTimeout = 3 * time.Second

// refused connects once to network/address and returns an error only when
// the connection was refused: nothing listens there, and the driver's
// retries would only make the user wait.
func refused(ctx context.Context, network, address string) error {
	if address == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, network, address)
	if err == nil {
		c.Close()
		return nil
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("connect to %s: connection refused: is the server running, and is the port right?", address)
	}
	return nil
}

// destinationAddress is where a remote destination's driver connects.
func destinationAddress(d DestinationAnswer) (network, address string) {
	switch {
	case d.S3 != nil:
		e, err := s3.ResolveEndpoint(*d.S3)
		if err != nil {
			return "", ""
		}
		port := "443"
		if !e.Secure {
			port = "80"
		}
		return "tcp", withPort(e.Host, port)
	case d.SFTP != nil:
		return "tcp", net.JoinHostPort(d.SFTP.Host, strconv.Itoa(orPort(d.SFTP.Port, 22)))
	case d.FTP != nil:
		def := 21
		if d.FTP.TLS == "implicit" {
			def = 990
		}
		return "tcp", net.JoinHostPort(d.FTP.Host, strconv.Itoa(orPort(d.FTP.Port, def)))
	}
	return "", ""
}

// sourceAddress is where a database source's driver connects.
func sourceAddress(s v1.Source) (network, address string) {
	switch {
	case s.Postgres != nil:
		if strings.HasPrefix(s.Postgres.Host, "/") {
			return "unix", fmt.Sprintf("%s/.s.PGSQL.%d", s.Postgres.Host, orPort(s.Postgres.Port, 5432))
		}
		return "tcp", net.JoinHostPort(s.Postgres.Host, strconv.Itoa(orPort(s.Postgres.Port, 5432)))
	case s.MySQL != nil:
		if s.MySQL.Socket != "" {
			return "unix", s.MySQL.Socket
		}
		return "tcp", net.JoinHostPort(s.MySQL.Host, strconv.Itoa(orPort(s.MySQL.Port, 3306)))
	}
	return "", ""
}

// withPort adds port to host unless it has one.
func withPort(host, port string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	return net.JoinHostPort(host, port)
}

func orPort(p, def int) int {
	if p == 0 {
		return def
	}
	return p
}
