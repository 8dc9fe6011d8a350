#!/bin/bash
# debian.sh: create to ready (qemu-ga answers) and create to the first
# `vmctl ssh NAME -- true` that succeeds, on the debian-12 template under TCG,
# VMD_BENCH_N VMs one after the other (default 3), medians reported; vmd and
# the guests inside a network namespace the benchmark creates (needs root,
# iproute2, ssh; builds images/debian-12.qcow2 first: make image-debian).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
make -s image image-debian
echo "debian.sh: $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
exec "$GO" test -count=1 -timeout 90m -tags debianimage -run '^$' -bench BenchmarkDebianCreateToSSH -benchtime 1x ./test/e2e
