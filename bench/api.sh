#!/bin/sh
# api.sh measures vmd's read API (GET /api/v1/vms and /api/v1/vms/{name})
# on SQLite and on PostgreSQL in one run: 16 workers for 10 s an endpoint,
# loopback, requests a second and p50/p99. The PostgreSQL database is a
# fresh one on $VMD_TEST_POSTGRES_URL's server (the local one by default),
# dropped after. Extra arguments go to apibench (-c N, -d 10s, -vms N,
# -stores sqlite,postgres).
set -eu
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
vmd=${VMD:-bin/vmd}
if [ ! -x "$vmd" ]; then
	${GO:-go} build -o "$out/" ./cmd/vmd
	vmd=$out/vmd
fi
${GO:-go} build -o "$out/apibench" ./bench/apibench
"$out/apibench" -vmd "$vmd" -image images/tiny.qcow2 \
	-postgres "${VMD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}" "$@"
