// Package s3 keeps Cairn's backups in an S3 bucket (AWS or any
// S3-compatible store, path-style or virtual-host addressing) through
// aws-sdk-go-v2; it is the only package that imports the SDK.
//
// A backup is one object, PREFIX + NAME, written by a streaming multipart
// upload (feature/s3/manager) that holds about PartSize × (Concurrency + 3)
// bytes of a stream in memory, and nothing of a file, and its backup.Info
// rides along as object user metadata (x-amz-meta-cairn-*), so List reads
// no body. S3 makes an object visible only once its upload
// completes, and a failed upload is aborted, so a backup that did not
// complete is never listed.
//
// Errors name what an operator must fix: an unreachable endpoint, rejected
// credentials (naming the access key id, never the secret), a missing
// bucket; see ErrUnreachable, ErrCredentials, ErrAccessDenied and
// ErrNoBucket.
package s3
