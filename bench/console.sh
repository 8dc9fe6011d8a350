#!/bin/sh
# console.sh compares vmd's console proxy with Debian's websockify on the
# same synthetic VNC-like server, each proxy in its own process: downstream
# throughput, CPU seconds per GB (from /proc, websockify's forked children
# included) and 16-byte echo round trips. Extra arguments go to
# consolebench (-size MiB, -runs N, -echoes N, -websockify PATH).
# Needs websockify with numpy (make deps installs both).
set -eu
cd "$(dirname "$0")/.."
if ! command -v websockify >/dev/null 2>&1; then
	echo "console.sh: websockify not found: run 'make deps' (apt packages websockify python3-numpy)" >&2
	exit 1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
${GO:-go} build -o "$out/consolebench" ./bench/consolebench
echo "# $(nproc) cores, $(uname -r), websockify $(dpkg-query -W -f='${Version}' websockify 2>/dev/null || echo '?'), $(${GO:-go} version | cut -d' ' -f3)"
"$out/consolebench" -size 1024 -runs 3 -echoes 5000 "$@"
