#!/usr/bin/env bash
# goreleaser-check.sh validates .goreleaser.yaml with `goreleaser check`,
# installing goreleaser into $(go env GOPATH)/bin first when it is missing.
# A cold install downloads ~1.9 GB of modules and takes 6 to 14 minutes on
# 2 cores (measured); later runs reuse the binary and take 0.1 s.
set -euo pipefail
cd "$(dirname "$0")/.."

# v2.15.1 is the newest that builds with our Go and whose modules the
# proxy serves (see the packages list of the environment).
GORELEASER_VERSION="${GORELEASER_VERSION:-v2.15.1}"
gobin="$(go env GOPATH)/bin"
goreleaser="$gobin/goreleaser"

have="$("$goreleaser" --version 2>/dev/null || true)"
if ! grep -Eq "GitVersion:[[:space:]]*v?${GORELEASER_VERSION#v}$" <<<"$have"; then
	echo "installing goreleaser $GORELEASER_VERSION into $gobin" >&2
	GOBIN="$gobin" go install "github.com/goreleaser/goreleaser/v2@${GORELEASER_VERSION}"
fi
"$goreleaser" check
