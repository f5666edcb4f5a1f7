package setup

import (
	"context"
	"net"
	"strconv"
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// closedPort is a port of 127.0.0.1 where nothing listens.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// TestLiveChecksRefused: a refused connection is reported at once with
// what to look at, for every kind the live checks connect to.
func TestLiveChecksRefused(t *testing.T) {
	port := closedPort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	want := "connect to " + addr + ": connection refused: is the server running, and is the port right?"
	secret := TypedSecret("x")
	for name, d := range map[string]DestinationAnswer{
		"s3":   {Name: "b", DestinationSpec: v1.DestinationSpec{S3: &v1.S3Destination{Provider: "minio", Endpoint: "http://" + addr, Bucket: "b", Region: "us-east-1"}}, AccessKeyID: secret, SecretAccessKey: secret},
		"sftp": {Name: "s", DestinationSpec: v1.DestinationSpec{SFTP: &v1.SFTPDestination{Host: "127.0.0.1", Port: port, User: "u", Path: "/b"}}, Password: secret},
		"ftp":  {Name: "f", DestinationSpec: v1.DestinationSpec{FTP: &v1.FTPDestination{Host: "127.0.0.1", Port: port, User: "u", Path: "/b"}}, Password: secret},
	} {
		res := CheckDestinationLive(context.Background(), d)
		if !res.Checked || res.Err == nil || res.Err.Error() != want {
			t.Errorf("%s: checked %v, error %v, want %q", name, res.Checked, res.Err, want)
		}
	}
	for name, s := range map[string]v1.Source{
		"postgres": {Name: "pg", Postgres: &v1.PostgresSource{Host: "127.0.0.1", Port: port, User: "u"}},
		"mysql":    {Name: "my", MySQL: &v1.MySQLSource{Host: "127.0.0.1", Port: port, User: "u"}},
	} {
		res := CheckSourceLive(context.Background(), SourceAnswer{Source: s})
		if !res.Checked || res.Err == nil || res.Err.Error() != want {
			t.Errorf("%s: checked %v, error %v, want %q", name, res.Checked, res.Err, want)
		}
	}
}
