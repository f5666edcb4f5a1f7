package s3

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Credentials are an S3 key pair. Its String never shows the secret.
type Credentials struct {
	AccessKey    string
	SecretKey    string
	SessionToken string
}

func (c Credentials) String() string {
	return fmt.Sprintf("access key %s", c.AccessKey)
}

// loadCredentials reads the key pair from file, an AWS shared credentials
// file, or, when file is empty, from AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN. The profile is AWS_PROFILE,
// else "default", else the file's only one.
func loadCredentials(file string, getenv func(string) string) (Credentials, error) {
	if file == "" {
		c := Credentials{
			AccessKey:    getenv("AWS_ACCESS_KEY_ID"),
			SecretKey:    getenv("AWS_SECRET_ACCESS_KEY"),
			SessionToken: getenv("AWS_SESSION_TOKEN"),
		}
		if c.AccessKey == "" || c.SecretKey == "" {
			return Credentials{}, errors.New("no credentials: set spec.s3.credentialsFile, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the agent's environment")
		}
		return c, nil
	}
	fi, err := os.Stat(file)
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return Credentials{}, fmt.Errorf("credentials file %s is accessible by group or others (mode %04o); chmod 600 it", file, perm)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials file: %w", err)
	}
	c, err := parseCredentials(data, getenv("AWS_PROFILE"))
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials file %s: %w", file, err)
	}
	return c, nil
}

// parseCredentials reads the AWS shared credentials format:
//
//	[default]
//	aws_access_key_id = AKIA...
//	aws_secret_access_key = ...
//	aws_session_token = ...   (optional)
//
// Lines before any [section] belong to "default". Errors never quote the
// file's values.
func parseCredentials(data []byte, profile string) (Credentials, error) {
	sections := map[string]map[string]string{}
	section := "default"
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
			continue
		case l[0] == '[':
			if !strings.HasSuffix(l, "]") {
				return Credentials{}, fmt.Errorf("line %d: a section header must end with ]", line)
			}
			section = strings.TrimSpace(strings.TrimPrefix(strings.TrimSuffix(l[1:], "]"), "profile "))
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return Credentials{}, fmt.Errorf("line %d: want key = value", line)
		}
		if sections[section] == nil {
			sections[section] = map[string]string{}
		}
		sections[section][strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return Credentials{}, err
	}
	if profile == "" {
		profile = "default"
		if _, ok := sections[profile]; !ok && len(sections) == 1 {
			for name := range sections {
				profile = name
			}
		}
	}
	s, ok := sections[profile]
	if !ok {
		var names []string
		for name := range sections {
			names = append(names, name)
		}
		sort.Strings(names)
		return Credentials{}, fmt.Errorf("no profile %q (profiles: %s)", profile, strings.Join(names, ", "))
	}
	c := Credentials{
		AccessKey:    s["aws_access_key_id"],
		SecretKey:    s["aws_secret_access_key"],
		SessionToken: s["aws_session_token"],
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return Credentials{}, fmt.Errorf("profile %q needs aws_access_key_id and aws_secret_access_key", profile)
	}
	return c, nil
}
