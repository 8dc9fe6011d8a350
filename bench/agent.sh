#!/bin/bash
# agent.sh: on one tiny guest with a network, inside a network namespace the
# benchmark creates, the round trip of `vmctl exec NAME -- true` (guest
# agent) against `vmctl ssh NAME -- true` (the system ssh through vmd's
# port-forward), interleaved, p50 and p90, their ratio against the goal of
# <= 0.2x, and `vmctl cp` both ways in MB/s (checksummed); the load average
# is printed too. VMD_BENCH_N (30 round trips each) and VMD_BENCH_CP_MB (20)
# change the sizes. Needs root, iproute2, ssh and images/tiny.qcow2.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
exec "$GO" test -count=1 -run '^$' -bench BenchmarkExecVsSSH -benchtime 1x -timeout 40m ./test/e2e
