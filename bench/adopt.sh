#!/bin/sh
# adopt.sh times vmd's recovery after a crash: 20 tiny guests run (TCG),
# vmd is killed with SIGKILL and started again, and the clock runs until
# the API lists all as running and until the last was adopted (3 rounds).
# Extra arguments go to adoptbench (-n N, -rounds N, -database-url URL).
# Uses bin/vmd (make build) or $VMD, and images/tiny.qcow2 (make image).
set -eu
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
vmd=${VMD:-bin/vmd}
if [ ! -x "$vmd" ]; then
	${GO:-go} build -o "$out/" ./cmd/vmd
	vmd=$out/vmd
fi
${GO:-go} build -o "$out/adoptbench" ./bench/adoptbench
"$out/adoptbench" -vmd "$vmd" -image images/tiny.qcow2 "$@"
