package s3

import (
	"strings"
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

func TestResolveEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec v1.S3Destination
		want Endpoint
		err  string
	}{
		{
			name: "aws default region",
			spec: v1.S3Destination{Provider: "aws", Bucket: "backups"},
			want: Endpoint{Host: "s3.us-east-1.amazonaws.com", Secure: true, Region: "us-east-1"},
		},
		{
			name: "aws region",
			spec: v1.S3Destination{Provider: "aws", Bucket: "backups", Region: "eu-central-1"},
			want: Endpoint{Host: "s3.eu-central-1.amazonaws.com", Secure: true, Region: "eu-central-1"},
		},
		{
			name: "aws china",
			spec: v1.S3Destination{Provider: "aws", Bucket: "backups", Region: "cn-north-1"},
			want: Endpoint{Host: "s3.cn-north-1.amazonaws.com.cn", Secure: true, Region: "cn-north-1"},
		},
		{
			name: "aws bucket with dots goes in the path",
			spec: v1.S3Destination{Provider: "aws", Bucket: "backups.example.com", Region: "us-west-2"},
			want: Endpoint{Host: "s3.us-west-2.amazonaws.com", Secure: true, Region: "us-west-2", PathStyle: true},
		},
		{
			name: "aws explicit endpoint keeps the addressing",
			spec: v1.S3Destination{Provider: "aws", Bucket: "backups", Region: "us-west-2", Endpoint: "https://bucket.vpce-123.s3.us-west-2.vpce.amazonaws.com"},
			want: Endpoint{Host: "bucket.vpce-123.s3.us-west-2.vpce.amazonaws.com", Secure: true, Region: "us-west-2"},
		},
		{
			name: "b2",
			spec: v1.S3Destination{Provider: "b2", Bucket: "backups", Region: "us-west-004"},
			want: Endpoint{Host: "s3.us-west-004.backblazeb2.com", Secure: true, Region: "us-west-004"},
		},
		{
			name: "b2 needs a region",
			spec: v1.S3Destination{Provider: "b2", Bucket: "backups"},
			err:  "provider b2 needs spec.s3.region",
		},
		{
			name: "gcs",
			spec: v1.S3Destination{Provider: "gcs", Bucket: "backups"},
			want: Endpoint{Host: "storage.googleapis.com", Secure: true, Region: "auto", PathStyle: true},
		},
		{
			name: "gcs with a location",
			spec: v1.S3Destination{Provider: "gcs", Bucket: "backups", Region: "europe-west1"},
			want: Endpoint{Host: "storage.googleapis.com", Secure: true, Region: "europe-west1", PathStyle: true},
		},
		{
			name: "wasabi default region",
			spec: v1.S3Destination{Provider: "wasabi", Bucket: "backups"},
			want: Endpoint{Host: "s3.us-east-1.wasabisys.com", Secure: true, Region: "us-east-1"},
		},
		{
			name: "wasabi region",
			spec: v1.S3Destination{Provider: "wasabi", Bucket: "backups", Region: "eu-central-2"},
			want: Endpoint{Host: "s3.eu-central-2.wasabisys.com", Secure: true, Region: "eu-central-2"},
		},
		{
			name: "digitalocean",
			spec: v1.S3Destination{Provider: "digitalocean", Bucket: "backups", Region: "fra1"},
			want: Endpoint{Host: "fra1.digitaloceanspaces.com", Secure: true, Region: "fra1"},
		},
		{
			name: "digitalocean needs a region",
			spec: v1.S3Destination{Provider: "digitalocean", Bucket: "backups"},
			err:  "provider digitalocean needs spec.s3.region",
		},
		{
			name: "minio over http on loopback",
			spec: v1.S3Destination{Provider: "minio", Bucket: "backups", Endpoint: "http://127.0.0.1:9000"},
			want: Endpoint{Host: "127.0.0.1:9000", Secure: false, Region: "us-east-1", PathStyle: true},
		},
		{
			name: "other with a bare host is https",
			spec: v1.S3Destination{Provider: "other", Bucket: "backups", Endpoint: "s3.example.net", Region: "garage"},
			want: Endpoint{Host: "s3.example.net", Secure: true, Region: "garage", PathStyle: true},
		},
		{
			name: "other needs an endpoint",
			spec: v1.S3Destination{Provider: "other", Bucket: "backups"},
			err:  "provider other needs spec.s3.endpoint",
		},
		{
			name: "endpoint with a path",
			spec: v1.S3Destination{Provider: "other", Bucket: "backups", Endpoint: "https://s3.example.net/bucket"},
			err:  "want scheme://host[:port] only",
		},
		{
			name: "endpoint with another scheme",
			spec: v1.S3Destination{Provider: "other", Bucket: "backups", Endpoint: "ftp://s3.example.net"},
			err:  "scheme must be http or https",
		},
		{
			name: "region that is not a host label",
			spec: v1.S3Destination{Provider: "aws", Bucket: "backups", Region: "evil.example.com/"},
			err:  "is not a region name",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveEndpoint(tc.spec)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ResolveEndpoint = %+v, %v; want error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolveEndpoint: %v", err)
			}
			if got != tc.want {
				t.Errorf("ResolveEndpoint = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseCredentials(t *testing.T) {
	const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	for _, tc := range []struct {
		name, file, profile string
		want                Credentials
		err                 string
	}{
		{
			name: "default profile",
			file: "[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = " + secret + "\n",
			want: Credentials{AccessKey: "AKIAEXAMPLE", SecretKey: secret},
		},
		{
			name: "no section, comments, session token",
			file: "# keys for aegis\naws_access_key_id=AKIAEXAMPLE\n; note\naws_secret_access_key=" + secret + "\naws_session_token = tok\n",
			want: Credentials{AccessKey: "AKIAEXAMPLE", SecretKey: secret, SessionToken: "tok"},
		},
		{
			name: "the only profile",
			file: "[backup]\naws_access_key_id = AKIAB\naws_secret_access_key = " + secret + "\n",
			want: Credentials{AccessKey: "AKIAB", SecretKey: secret},
		},
		{
			name:    "AWS_PROFILE picks one",
			file:    "[default]\naws_access_key_id = AKIAD\naws_secret_access_key = x\n[profile backup]\naws_access_key_id = AKIAB\naws_secret_access_key = " + secret + "\n",
			profile: "backup",
			want:    Credentials{AccessKey: "AKIAB", SecretKey: secret},
		},
		{
			name:    "missing profile",
			file:    "[a]\naws_access_key_id = A\naws_secret_access_key = x\n[b]\naws_access_key_id = B\naws_secret_access_key = y\n",
			profile: "c",
			err:     `no profile "c" (profiles: a, b)`,
		},
		{
			name: "no secret",
			file: "[default]\naws_access_key_id = AKIA\n",
			err:  "needs aws_access_key_id and aws_secret_access_key",
		},
		{
			name: "garbage line does not echo the file",
			file: "[default]\n" + secret + "\n",
			err:  "line 2: want key = value",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCredentials([]byte(tc.file), tc.profile)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseCredentials = %v, %v; want error containing %q", got, err, tc.err)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseCredentials: %v", err)
			}
			if got != tc.want {
				t.Errorf("parseCredentials = %+v, want %+v", got, tc.want)
			}
			if s := got.String(); strings.Contains(s, secret) {
				t.Errorf("String() shows the secret: %s", s)
			}
		})
	}
}

func TestPartSizes(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		n    int
		want int64
	}{
		{1, 8 * mib}, {2000, 8 * mib}, {2001, 16 * mib}, {5000, 16 * mib}, {5001, 32 * mib}, {6000, 32 * mib},
		{6001, 64 * mib}, {10000, 512 * mib},
	} {
		if got := partSizeFor(8*mib, tc.n); got != tc.want {
			t.Errorf("partSizeFor(8 MiB, %d) = %d MiB, want %d MiB", tc.n, got/mib, tc.want/mib)
		}
	}
	if got := partSizeFor(5<<30, 9000); got != maxPartSize {
		t.Errorf("part size above the 5 GiB limit: %d", got)
	}
	// 1 TiB fits at the default part size.
	if got := maxObjectSize(DefaultPartSize); got < 1<<40 {
		t.Errorf("maxObjectSize(%d MiB) = %d GiB, want at least 1 TiB", DefaultPartSize>>20, got>>30)
	}
}
