#!/bin/bash
# portforward.sh: throughput (50 MB into the guest) and 1-byte round trip
# through vmctl port-forward and vmd, against QEMU's own hostfwd
# (-netdev user,restrict=on) to the same guest's ports, in one run, inside a
# network namespace the benchmark creates (needs root, iproute2, ssh).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
exec "$GO" test -count=1 -run '^$' -bench BenchmarkPortForwardVsHostfwd -benchtime 1x ./test/e2e
