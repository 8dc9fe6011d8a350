#!/bin/sh
# agent.sh measures the guest agent through a real vmd (TCG) and vmctl:
# `vmctl exec NAME -- true` round trips (p50) and `vmctl cp` of 100 MiB in
# and out (MB/s). Extra arguments go to agentbench (-n N, -mb MB). Uses
# bin/vmd and bin/vmctl (make build) and images/tiny.qcow2 (make image).
set -eu
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
${GO:-go} build -o "$out/agentbench" ./bench/agentbench
"$out/agentbench" -vmd "${VMD:-bin/vmd}" -vmctl "${VMCTL:-bin/vmctl}" -image images/tiny.qcow2 "$@"
