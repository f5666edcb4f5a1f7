package s3

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// Endpoint is where a destination's requests go, and how they are signed
// and addressed.
type Endpoint struct {
	// Host is host or host:port.
	Host string
	// Secure is true for HTTPS.
	Secure bool
	// Region is the SigV4 signing region.
	Region string
	// PathStyle puts the bucket in the path (https://host/bucket/key)
	// rather than in the host name (https://bucket.host/key).
	PathStyle bool
}

// URL is the endpoint as a URL, for messages.
func (e Endpoint) URL() string {
	scheme := "https"
	if !e.Secure {
		scheme = "http"
	}
	return scheme + "://" + e.Host
}

// preset is what a provider fills in from the region.
type preset struct {
	// host builds the endpoint's host from the region; nil means the
	// provider has no standard endpoint and spec.s3.endpoint is required.
	host          func(region string) string
	defaultRegion string
	// virtualHosted: the provider serves buckets as host names; a bucket
	// whose name cannot be a TLS host name still goes in the path.
	virtualHosted bool
}

var presets = map[string]preset{
	// Amazon S3: s3.REGION.amazonaws.com (.com.cn in China), buckets as
	// host names.
	"aws": {
		host: func(r string) string {
			if strings.HasPrefix(r, "cn-") {
				return "s3." + r + ".amazonaws.com.cn"
			}
			return "s3." + r + ".amazonaws.com"
		},
		defaultRegion: "us-east-1",
		virtualHosted: true,
	},
	// Backblaze B2's S3-compatible API: s3.REGION.backblazeb2.com; the
	// region (such as us-west-004) is part of the bucket's endpoint shown
	// in the B2 console, and required.
	"b2": {
		host:          func(r string) string { return "s3." + r + ".backblazeb2.com" },
		virtualHosted: true,
	},
	// Google Cloud Storage through its S3-interoperable XML API, with HMAC
	// keys: one global endpoint; "auto" is the signing region it expects.
	"gcs": {
		host:          func(string) string { return "storage.googleapis.com" },
		defaultRegion: "auto",
	},
	// Wasabi: s3.REGION.wasabisys.com.
	"wasabi": {
		host:          func(r string) string { return "s3." + r + ".wasabisys.com" },
		defaultRegion: "us-east-1",
		virtualHosted: true,
	},
	// DigitalOcean Spaces: REGION.digitaloceanspaces.com (nyc3, fra1,
	// ...); required, since a Space lives in one region.
	"digitalocean": {
		host:          func(r string) string { return r + ".digitaloceanspaces.com" },
		virtualHosted: true,
	},
	// A MinIO server, or any other S3-compatible service: the endpoint is
	// required and buckets go in the path, which every server supports.
	"minio": {defaultRegion: "us-east-1"},
	"other": {defaultRegion: "us-east-1"},
}

// regionPattern is what a region may look like; it becomes part of a host
// name.
var regionPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// dnsBucket matches bucket names that can be a label of a TLS host name:
// lower case, no dots (a dot would break the certificate's wildcard), no
// underscores.
var dnsBucket = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{1,61}[a-z0-9])$`)

// ResolveEndpoint works out where the requests of spec go: the provider's
// preset fills the endpoint and addressing style from the region, and an
// explicit spec.endpoint (scheme http:// or https://, or a bare host, which
// means https) replaces the preset's host.
func ResolveEndpoint(spec v1.S3Destination) (Endpoint, error) {
	p, ok := presets[spec.Provider]
	if !ok {
		return Endpoint{}, fmt.Errorf("unknown provider %q (want aws, b2, gcs, wasabi, digitalocean, minio or other)", spec.Provider)
	}
	e := Endpoint{Region: spec.Region, Secure: true}
	if e.Region == "" {
		e.Region = p.defaultRegion
	}
	if spec.Endpoint != "" {
		host, secure, err := parseEndpoint(spec.Endpoint)
		if err != nil {
			return Endpoint{}, err
		}
		e.Host, e.Secure = host, secure
	} else {
		if p.host == nil {
			return Endpoint{}, fmt.Errorf("provider %s needs spec.s3.endpoint", spec.Provider)
		}
		if e.Region == "" {
			return Endpoint{}, fmt.Errorf("provider %s needs spec.s3.region (the region in the bucket's endpoint)", spec.Provider)
		}
		if !regionPattern.MatchString(e.Region) {
			return Endpoint{}, fmt.Errorf("region %q is not a region name", e.Region)
		}
		e.Host = p.host(e.Region)
	}
	if e.Region == "" {
		e.Region = "us-east-1"
	}
	e.PathStyle = !p.virtualHosted || !dnsBucket.MatchString(spec.Bucket)
	return e, nil
}

// parseEndpoint accepts http://host[:port], https://host[:port] or a bare
// host[:port], without a path.
func parseEndpoint(s string) (host string, secure bool, err error) {
	raw := s
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", false, fmt.Errorf("endpoint %q: %w", raw, err)
	}
	switch u.Scheme {
	case "https":
		secure = true
	case "http":
	default:
		return "", false, fmt.Errorf("endpoint %q: scheme must be http or https", raw)
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false, fmt.Errorf("endpoint %q: want scheme://host[:port] only", raw)
	}
	return u.Host, secure, nil
}
