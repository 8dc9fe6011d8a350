#!/bin/bash
# all.sh is `make bench`: the Go micro benchmarks, the console proxy
# against websockify, VM creation through vmd, adoption of 20 guests after
# kill -9 of vmd, the read API on both stores and the guest agent
# (exec round trip against ssh on the same guest, cp both ways) and
# port-forward against QEMU's hostfwd, in that order, then a summary of the figures. A failing part is
# reported and the others still run; the exit status is non-zero if any
# failed. Needs bin/vmd (make build), images/tiny.qcow2 (make image), the
# local PostgreSQL and websockify (make deps). About 5 minutes on 2 cores.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
export GO
if [ ! -e images/tiny.qcow2 ]; then
	echo "all.sh: images/tiny.qcow2 missing: run 'make image'" >&2
	exit 1
fi
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=()
times=()

# step NAME CMD... runs CMD with its output shown and kept for the summary.
step() {
	local name=$1 start rc
	shift
	echo "=== $name: $*"
	start=$(date +%s)
	"$@" 2>&1 | tee "$logs/$name"
	rc=${PIPESTATUS[0]}
	times+=("$name $(($(date +%s) - start))s")
	if [ "$rc" -ne 0 ]; then
		failed+=("$name")
		echo "=== $name FAILED (exit $rc)"
	fi
}

# test/e2e's benchmark boots guests: it runs once, as its own step.
step go-bench "$GO" test -run '^$' -bench . -benchtime 3x $("$GO" list ./... | grep -v /test/e2e$)
step console ./bench/console.sh
step create ./bench/create.sh
step adopt ./bench/adopt.sh
step api ./bench/api.sh
step agent ./bench/agent.sh
step portforward ./bench/portforward.sh

echo
echo "=== summary ($(nproc) cores, $(uname -r), $($GO version | cut -d' ' -f3), $(date -u +%F))"
echo "-- Go micro benchmarks (3 iterations each)"
grep -E '^(Benchmark|ok|FAIL|---)' "$logs/go-bench" | grep -v '^ok .*\[no test files\]' | grep -E '^Benchmark|^FAIL|^---' || true
echo "-- console proxy (vmd vs websockify)"
grep -E '^(proxy|vmd|websockify) ' "$logs/console" || tail -n 5 "$logs/console"
echo "-- VM creation (TCG)"
grep -E '^create->' "$logs/create" || true
echo "-- adoption of 20 guests after kill -9 of vmd (TCG)"
grep -E '^adopt->' "$logs/adopt" || true
echo "-- read API"
grep -E '^(sqlite|postgres) ' "$logs/api" || true
echo "-- guest agent (TCG)"
grep -E '^ +agent_bench_test.go:[0-9]+: (exec-true|api-exec|ssh-true|exec/ssh|cp-in|cp-out|load) ' "$logs/agent" | sed -E 's/^ +agent_bench_test.go:[0-9]+: //' || true
echo "-- port-forward against hostfwd (TCG)"
grep -E 'port-forward 50 MB' "$logs/portforward" | sed -E 's/^ +[a-z_]+\.go:[0-9]+: //' || true
echo "-- time: ${times[*]}"
if [ ${#failed[@]} -gt 0 ]; then
	echo "=== FAILED: ${failed[*]}"
	exit 1
fi
echo "=== all benchmarks ran"
