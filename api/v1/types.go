// Package v1 holds the aegis.io/v1 manifest types (BackupPolicy and
// Destination), their defaults and their validation. Nothing here does I/O
// except through the small interfaces the callers pass in.
package v1

import "time"

// APIVersion is the only apiVersion this package accepts.
const APIVersion = "aegis.io/v1"

// Kinds of object.
const (
	KindBackupPolicy = "BackupPolicy"
	KindDestination  = "Destination"
)

// TypeMeta names the schema of an object.
type TypeMeta struct {
	APIVersion string `json:"apiVersion" validate:"required,eq=aegis.io/v1"`
	Kind       string `json:"kind" validate:"required,oneof=BackupPolicy Destination"`
}

// ObjectMeta identifies an object among those of its kind.
type ObjectMeta struct {
	Name   string            `json:"name" validate:"required,dns1123"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Destination is where snapshots are stored.
type Destination struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta      `json:"metadata"`
	Spec     DestinationSpec `json:"spec"`
}

// DestinationSpec holds exactly one of its driver blocks.
type DestinationSpec struct {
	Local *LocalDestination `json:"local,omitempty"`
	S3    *S3Destination    `json:"s3,omitempty"`
	SFTP  *SFTPDestination  `json:"sftp,omitempty"`
	FTP   *FTPDestination   `json:"ftp,omitempty"`
	// Bandwidth caps the rate of uploads to, and downloads from, this
	// destination; nil means no limit.
	Bandwidth *Bandwidth `json:"bandwidth,omitempty"`
}

// Driver returns the name of the block that is set, or "" if none is.
func (s DestinationSpec) Driver() string {
	switch {
	case s.Local != nil:
		return "local"
	case s.S3 != nil:
		return "s3"
	case s.SFTP != nil:
		return "sftp"
	case s.FTP != nil:
		return "ftp"
	}
	return ""
}

// LocalDestination stores snapshots in a directory of this host.
type LocalDestination struct {
	Path string `json:"path" validate:"required,abspath"`
}

// S3Destination stores snapshots in an S3 bucket or an S3-compatible service.
type S3Destination struct {
	Provider        string `json:"provider" validate:"required,oneof=aws b2 gcs wasabi digitalocean minio other"`
	Endpoint        string `json:"endpoint,omitempty" validate:"omitempty,url"`
	Bucket          string `json:"bucket" validate:"required"`
	Prefix          string `json:"prefix,omitempty"`
	Region          string `json:"region,omitempty"`
	StorageClass    string `json:"storageClass,omitempty"`
	CredentialsFile string `json:"credentialsFile,omitempty" validate:"omitempty,abspath"`
	// InsecureSkipVerify turns TLS certificate checks off for this endpoint.
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
	PartSizeMiB        int  `json:"partSizeMiB,omitempty" validate:"omitempty,min=5,max=5120"`
	ParallelUploads    int  `json:"parallelUploads,omitempty" validate:"omitempty,min=1,max=64"`
	// ObjectLock, when set, locks every object Aegis writes for Days days
	// (S3 Object Lock); the bucket must have Object Lock enabled.
	ObjectLock *S3ObjectLock `json:"objectLock,omitempty"`
}

// S3ObjectLock is the retention Aegis sets on every object it writes to
// an S3 bucket: no one may delete or overwrite the object before it ends.
type S3ObjectLock struct {
	// Mode is governance (users with s3:BypassGovernanceRetention may
	// still delete) or compliance (no one may, not even the root account).
	Mode string `json:"mode" validate:"required,oneof=governance compliance"`
	// Days is how long each object stays locked after it is written.
	Days int `json:"days" validate:"required,min=1,max=36500"`
}

// SFTPDestination stores snapshots on an SSH server.
type SFTPDestination struct {
	Host           string `json:"host" validate:"required,hostname_rfc1123|ip"`
	Port           int    `json:"port,omitempty" validate:"omitempty,min=1,max=65535"`
	User           string `json:"user" validate:"required"`
	Path           string `json:"path" validate:"required"`
	PrivateKeyFile string `json:"privateKeyFile,omitempty" validate:"omitempty,abspath"`
	PasswordFile   string `json:"passwordFile,omitempty" validate:"omitempty,abspath"`
	KnownHostsFile string `json:"knownHostsFile" validate:"required,abspath"`
}

// FTPDestination stores snapshots on an FTP or FTPS server.
type FTPDestination struct {
	Host         string `json:"host" validate:"required,hostname_rfc1123|ip"`
	Port         int    `json:"port,omitempty" validate:"omitempty,min=1,max=65535"`
	User         string `json:"user" validate:"required"`
	PasswordFile string `json:"passwordFile" validate:"required,abspath"`
	Path         string `json:"path" validate:"required"`
	TLS          string `json:"tls,omitempty" validate:"omitempty,oneof=none explicit implicit"`
	CAFile       string `json:"caFile,omitempty" validate:"omitempty,abspath"`
}

// BackupPolicy says what to back up, when, where to, and how long to keep it.
type BackupPolicy struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta       `json:"metadata"`
	Spec     BackupPolicySpec `json:"spec"`
}

// BackupPolicySpec is the desired behaviour of a BackupPolicy.
type BackupPolicySpec struct {
	// Schedule is a 5-field cron expression or one of @hourly, @daily,
	// @weekly, @monthly, @yearly, @every <duration>.
	Schedule string `json:"schedule" validate:"required"`
	// TimeZone is an IANA zone name; the schedule and retention buckets use it.
	TimeZone     string       `json:"timeZone,omitempty"`
	Suspend      bool         `json:"suspend,omitempty"`
	Sources      []Source     `json:"sources" validate:"required,min=1,dive"`
	Destinations []string     `json:"destinations" validate:"required,min=1,dive,required"`
	Compression  *Compression `json:"compression,omitempty"`
	Encryption   *Encryption  `json:"encryption,omitempty"`
	Retention    *Retention   `json:"retention,omitempty"`
	Hooks        *Hooks       `json:"hooks,omitempty"`
	Notify       *Notify      `json:"notify,omitempty"`
	Drills       *Drills      `json:"drills,omitempty"`
	Objectives   *Objectives  `json:"objectives,omitempty"`
	// Storage is how snapshots are stored: StorageDeduplicated (chunks in
	// packs shared by every snapshot of the policy) or StorageArchive (one
	// compressed, encrypted object per source and run). Empty means
	// DefaultStorage. A policy may switch: snapshots of both kinds stay
	// readable and retention applies across them.
	Storage string `json:"storage,omitempty" validate:"omitempty,oneof=deduplicated archive"`
}

// Storage kinds (BackupPolicySpec.Storage, SnapshotManifest.Storage).
const (
	StorageDeduplicated = "deduplicated"
	StorageArchive      = "archive"
)

// DefaultStorage is the storage of a policy that names none.
const DefaultStorage = StorageArchive

// StorageKind returns the policy's storage, DefaultStorage when unset.
func (s *BackupPolicySpec) StorageKind() string {
	if s.Storage == "" {
		return DefaultStorage
	}
	return s.Storage
}

// Notify says who hears about the policy's runs: by default on a failure
// and on the first success after failures (a recovery).
type Notify struct {
	Webhooks []WebhookNotify `json:"webhooks,omitempty" validate:"omitempty,dive"`
	// Ping is a healthchecks.io-style URL: URL/start when a run starts, URL
	// after a success, URL/fail after a failure. Pings go out on every run.
	Ping string `json:"ping,omitempty" validate:"omitempty,url"`
	// OnSuccess also sends the webhooks after every successful run.
	OnSuccess bool `json:"onSuccess,omitempty"`
}

// WebhookNotify is a URL that receives a JSON body with the run's result.
type WebhookNotify struct {
	URL string `json:"url" validate:"required,url"`
	// SecretFile holds the key of an HMAC-SHA256 signature of the body,
	// sent in the X-Aegis-Signature header as sha256=HEX.
	SecretFile string `json:"secretFile,omitempty" validate:"omitempty,abspath"`
}

// Source is one thing a policy backs up: exactly one of its blocks is set.
type Source struct {
	Name         string              `json:"name" validate:"required,dns1123"`
	Files        *FilesSource        `json:"files,omitempty"`
	Postgres     *PostgresSource     `json:"postgres,omitempty"`
	MySQL        *MySQLSource        `json:"mysql,omitempty"`
	DockerVolume *DockerVolumeSource `json:"dockerVolume,omitempty"`
	System       *SystemSource       `json:"system,omitempty"`
	Hooks        *Hooks              `json:"hooks,omitempty"`
}

// Driver returns the name of the block that is set, or "" if none is.
func (s Source) Driver() string {
	switch {
	case s.Files != nil:
		return "files"
	case s.Postgres != nil:
		return "postgres"
	case s.MySQL != nil:
		return "mysql"
	case s.DockerVolume != nil:
		return "dockerVolume"
	case s.System != nil:
		return "system"
	}
	return ""
}

// FilesSource archives files and directories.
type FilesSource struct {
	Paths []string `json:"paths" validate:"required,min=1,dive,abspath"`
	// Exclude holds glob patterns; ** matches any number of directories.
	Exclude       []string `json:"exclude,omitempty"`
	OneFileSystem bool     `json:"oneFileSystem,omitempty"`
}

// PostgresSource dumps PostgreSQL databases.
type PostgresSource struct {
	Host         string   `json:"host,omitempty"`
	Port         int      `json:"port,omitempty" validate:"omitempty,min=1,max=65535"`
	User         string   `json:"user,omitempty"`
	PasswordFile string   `json:"passwordFile,omitempty" validate:"omitempty,abspath"`
	Databases    []string `json:"databases,omitempty"`
	// Globals includes roles and tablespaces; nil means true.
	Globals *bool `json:"globals,omitempty"`
}

// MySQLSource dumps MySQL or MariaDB databases.
type MySQLSource struct {
	Host         string   `json:"host,omitempty"`
	Port         int      `json:"port,omitempty" validate:"omitempty,min=1,max=65535"`
	Socket       string   `json:"socket,omitempty" validate:"omitempty,abspath"`
	User         string   `json:"user,omitempty"`
	PasswordFile string   `json:"passwordFile,omitempty" validate:"omitempty,abspath"`
	Databases    []string `json:"databases,omitempty"`
}

// DockerVolumeSource archives Docker volumes.
type DockerVolumeSource struct {
	Name           string            `json:"name,omitempty"`
	Selector       map[string]string `json:"selector,omitempty"`
	StopContainers bool              `json:"stopContainers,omitempty"`
}

// SystemSource archives the host's configuration.
type SystemSource struct {
	ExtraPaths []string `json:"extraPaths,omitempty" validate:"omitempty,dive,abspath"`
}

// Compression algorithms.
const (
	CompressionZstd = "zstd"
	CompressionGzip = "gzip"
	CompressionNone = "none"
)

// Compression selects how data objects are compressed.
type Compression struct {
	Algorithm string `json:"algorithm,omitempty" validate:"omitempty,oneof=zstd gzip none"`
	// Level is the algorithm's own level: zstd 1-22 (mapped to the encoder's
	// speed presets), gzip 1-9. Zero means the algorithm's default.
	Level int `json:"level,omitempty" validate:"min=0,max=22"`
}

// Encryption holds exactly one of its modes.
type Encryption struct {
	Age     *AgeEncryption     `json:"age,omitempty"`
	OpenSSL *OpenSSLEncryption `json:"openssl,omitempty"`
	None    bool               `json:"none,omitempty"`
}

// Mode returns "age", "openssl", "none" or "" when nothing is set.
func (e Encryption) Mode() string {
	switch {
	case e.Age != nil:
		return "age"
	case e.OpenSSL != nil:
		return "openssl"
	case e.None:
		return "none"
	}
	return ""
}

// AgeEncryption encrypts to age recipients.
type AgeEncryption struct {
	Recipients     []string `json:"recipients,omitempty"`
	RecipientsFile string   `json:"recipientsFile,omitempty" validate:"omitempty,abspath"`
}

// OpenSSLEncryption writes the stream of `openssl enc -aes-256-cbc -pbkdf2`.
type OpenSSLEncryption struct {
	KeyFile    string `json:"keyFile" validate:"required,abspath"`
	Iterations int    `json:"iterations,omitempty" validate:"omitempty,min=10000"`
}

// Retention says which snapshots to keep; a snapshot kept by any rule is kept.
type Retention struct {
	KeepLast int `json:"keepLast,omitempty" validate:"min=0"`
	Hourly   int `json:"hourly,omitempty" validate:"min=0"`
	Daily    int `json:"daily,omitempty" validate:"min=0"`
	Weekly   int `json:"weekly,omitempty" validate:"min=0"`
	Monthly  int `json:"monthly,omitempty" validate:"min=0"`
	Yearly   int `json:"yearly,omitempty" validate:"min=0"`
	// Within keeps every snapshot younger than this span of the newest one,
	// such as "36h" or "7d".
	Within string `json:"within,omitempty"`
	// Schedule is when retention runs besides after each backup (cron).
	Schedule string `json:"schedule,omitempty"`
}

// Hooks are commands run around a backup.
type Hooks struct {
	Before    []Hook `json:"before,omitempty" validate:"omitempty,dive"`
	After     []Hook `json:"after,omitempty" validate:"omitempty,dive"`
	OnFailure []Hook `json:"onFailure,omitempty" validate:"omitempty,dive"`
}

// Hook is one command. It runs without a shell unless Shell is true.
type Hook struct {
	Command []string `json:"command" validate:"required,min=1"`
	Shell   bool     `json:"shell,omitempty"`
	// Timeout such as "30s"; default 5m.
	Timeout string `json:"timeout,omitempty"`
}

// DefaultHookTimeout bounds a hook that names no timeout.
const DefaultHookTimeout = 5 * time.Minute
