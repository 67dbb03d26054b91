#!/usr/bin/env bash
# A local S3 server for trying backups by hand: versitygw over a directory,
# in the foreground (Ctrl-C stops it), with one bucket made for you.
#   scripts/s3-test-server.sh            # http://127.0.0.1:7070, bucket "cairn", data in ./s3-data
#   S3_PORT=9000 S3_BUCKET=backups S3_DIR=/tmp/s3 scripts/s3-test-server.sh
# It prints the CAIRN_S3_* variables a node needs. The tests do not use
# this script: they start their own server (internal/s3test).
# Needs versitygw ($CAIRN_VERSITYGW, .cache/bin/versitygw or PATH: `make
# test-deps`) and curl >= 7.75 (for --aws-sigv4).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${S3_PORT:-7070}
BUCKET=${S3_BUCKET:-cairn}
DIR=${S3_DIR:-s3-data}
KEY=${S3_KEY:-cairnlocal}
SECRET=${S3_SECRET:-cairnlocal-secret-change-me}

BIN=${CAIRN_VERSITYGW:-}
if [ -z "$BIN" ]; then
	if [ -x .cache/bin/versitygw ]; then
		BIN=.cache/bin/versitygw
	else
		BIN=$(command -v versitygw || true)
	fi
fi
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
	echo "versitygw not found: run \`make test-deps\`" >&2
	exit 1
fi

mkdir -p "$DIR"
ROOT_ACCESS_KEY=$KEY ROOT_SECRET_KEY=$SECRET "$BIN" --port "127.0.0.1:$PORT" --quiet posix "$DIR" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT INT TERM

url=http://127.0.0.1:$PORT
for _ in $(seq 1 100); do
	if curl -s -o /dev/null "$url/"; then break; fi
	kill -0 $pid 2>/dev/null || { echo "versitygw exited" >&2; exit 1; }
	sleep 0.1
done
# SHA-256 of the empty body, which versitygw wants stated.
empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" \
	--user "$KEY:$SECRET" -H "x-amz-content-sha256: $empty" "$url/$BUCKET")
case $code in
200 | 409) ;; # made, or there already
*) echo "create bucket $BUCKET: HTTP $code" >&2; exit 1 ;;
esac

cat <<EOF
S3 server on $url, bucket "$BUCKET", data in $DIR (Ctrl-C stops it). For a node:
  export CAIRN_S3_URL=$url CAIRN_S3_BUCKET=$BUCKET CAIRN_S3_REGION=us-east-1 CAIRN_S3_PATH_STYLE=true
  export CAIRN_S3_KEY=$KEY CAIRN_S3_SECRET=$SECRET
EOF
wait $pid
