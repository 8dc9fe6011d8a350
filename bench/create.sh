#!/bin/sh
# create.sh times VM creation through a real vmd (TCG): from POST
# /api/v1/vms to state running, to the guest's first serial line and to
# its "booted" line, over 5 VMs created one after another. Extra arguments
# go to createbench (-n N, -database-url URL, -v). Uses bin/vmd (make
# build) or $VMD, and images/tiny.qcow2 (make image).
set -eu
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
vmd=${VMD:-bin/vmd}
if [ ! -x "$vmd" ]; then
	${GO:-go} build -o "$out/" ./cmd/vmd
	vmd=$out/vmd
fi
${GO:-go} build -o "$out/createbench" ./bench/createbench
"$out/createbench" -vmd "$vmd" -image images/tiny.qcow2 "$@"
