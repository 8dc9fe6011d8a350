#!/bin/sh
# install-deps.sh installs, where missing, the Debian packages vmd needs to run
# guests (QEMU) and to build the test image (kernel unpacking, SYSLINUX on FAT,
# busybox initramfs, dropbear and the libraries of qemu-ga (downloaded, not
# installed) whose binaries the tiny image carries, NoCloud seed ISOs, debootstrap and sfdisk for the Debian
# template), and the headless Chromium (with a
# font) that the browser tests in test/e2e drive, and websockify (numpy is its
# fast path) that bench/console.sh compares the console proxy with, and tmux
# that the TUI test in test/e2e runs vmctl tui in, and nginx that the deploy
# template is tested in (test/e2e/nginx_test.go), and bash-completion that
# the completion test loads vmctl's bash completion with, and
# qemu-guest-agent whose qemu-ga the pkg/vm/qga tests run on the host as
# their peer (the package's own service is bound to the virtio port
# /dev/virtio-ports/org.qemu.guest_agent.0, so on a host it stays off). With
# everything present it only runs
# dpkg-query, so `make deps` is cheap to repeat.
set -eu

PACKAGES="
qemu-system-x86
qemu-utils
syslinux
syslinux-common
mtools
dosfstools
cpio
gzip
busybox-static
dropbear-bin
openssh-client
libglib2.0-0
liburing2
libnuma1
libudev1
debootstrap
fdisk
e2fsprogs
xorriso
genisoimage
dpkg
apt
chromium
fonts-dejavu-core
websockify
python3-numpy
tmux
nginx
bash-completion
qemu-guest-agent
"

missing=""
for p in $PACKAGES; do
	# dpkg -s also lists removed-but-configured packages; check the status word.
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	if [ "$status" != "installed" ]; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "install-deps: all packages present"
	exit 0
fi

echo "install-deps: missing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "install-deps: need root (or sudo) to install:$missing" >&2
		exit 1
	fi
fi

# Another apt (an unattended upgrade, a provisioning script) may hold the
# dpkg lock; wait for it rather than fail half-way.
wait_lock() {
	# fuser (psmisc) is not on every minimal system; apt's own lock timeout
	# below still covers the install step then.
	command -v fuser >/dev/null 2>&1 || return 0
	i=0
	while fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock >/dev/null 2>&1; do
		if [ $i -eq 0 ]; then echo "install-deps: waiting for the dpkg lock"; fi
		i=$((i + 1))
		if [ $i -gt 600 ]; then
			echo "install-deps: dpkg lock still held after 10 minutes" >&2
			exit 1
		fi
		sleep 1
	done
}

export DEBIAN_FRONTEND=noninteractive
wait_lock
$SUDO apt-get update -q -o DPkg::Lock::Timeout=600
wait_lock
# -o DPkg::Lock::Timeout covers the race between wait_lock and apt itself.
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 $missing
