package s3test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestBinary(t *testing.T) {
	t.Run("EnvNotExecutable", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "versitygw")
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv(EnvBinary, p)
		if _, err := Binary(); err == nil || !strings.Contains(err.Error(), "versitygw not found") {
			t.Fatalf("Binary: %v, want versitygw not found", err)
		}
	})
	t.Run("Found", func(t *testing.T) {
		p, err := Binary()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("versitygw: %s", p)
	})
}

func TestStart(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	other := s.NewBucket(t)
	out, err := s.Client().ListBuckets(ctx, &awss3.ListBucketsInput{})
	if err != nil {
		t.Fatalf("ListBuckets: %v", err)
	}
	var names []string
	for _, b := range out.Buckets {
		names = append(names, aws.ToString(b.Name))
	}
	if len(names) != 2 || !strings.Contains(strings.Join(names, " "), s.Bucket) || !strings.Contains(strings.Join(names, " "), other) {
		t.Fatalf("buckets %v, want %s and %s", names, s.Bucket, other)
	}
	s.Stop()
	s.Stop() // twice is fine
	if _, err := s.Client().ListBuckets(ctx, &awss3.ListBucketsInput{}, func(o *awss3.Options) { o.RetryMaxAttempts = 1 }); err == nil {
		t.Fatal("server still answers after Stop")
	}
}
