#!/usr/bin/env bash
# ci-job.sh uses vmctl the way a CI job does: no terminal, stdin from
# /dev/null, the server and token from VMCTL_SERVER and VMCTL_TOKEN (no
# config file), every exit status checked. It prints PASS at the end.
set -euo pipefail

: "${VMCTL_SERVER:?}" "${VMCTL_TOKEN:?}"

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_exit WANT CMD... runs CMD and fails unless it exits WANT.
expect_exit() {
	local want=$1 got=0
	shift
	"$@" >/dev/null 2>&1 || got=$?
	[ "$got" -eq "$want" ] || fail "$* exited $got, want $want"
}

vmctl version | grep -q '^Server Version: ' || fail "vmctl version does not report the server's version"

name=$(vmctl create ci-vm --template tiny --memory 128 --wait --timeout 3m -o name)
[ "$name" = ci-vm ] || fail "create -o name printed '$name'"

vmctl wait ci-vm --for state=running --timeout 2m

url=$(vmctl console ci-vm --print-url)
case "$url" in
http://* | https://*) ;;
*) fail "console --print-url printed '$url'" ;;
esac

# Piped output: tab-separated, no colour, names for xargs.
table=$(vmctl list)
[[ "$table" != *$'\e'* ]] || fail "colour escape in piped output"
[ "$(vmctl list -o name | xargs echo)" = ci-vm ] || fail "list -o name"
vmctl get ci-vm -o json | grep -q '"state": "running"' || fail "get -o json is not running"

# Failures have stable exit codes.
expect_exit 3 vmctl get nothing
expect_exit 2 vmctl get ci-vm --no-such-flag
expect_exit 2 vmctl create
# Without a terminal nothing prompts: delete without --yes is a usage error.
expect_exit 2 vmctl delete ci-vm
expect_exit 4 env VMCTL_TOKEN=wrong vmctl list
expect_exit 6 vmctl wait ci-vm --for state=stopped --timeout 1s

# --quiet leaves stderr to errors only.
msgs=$(vmctl --quiet delete ci-vm --yes --wait --timeout 2m 2>&1 >/dev/null)
[ -z "$msgs" ] || fail "--quiet delete printed: $msgs"
expect_exit 3 vmctl get ci-vm
[ -z "$(vmctl list -o name)" ] || fail "ci-vm still listed"

echo PASS
