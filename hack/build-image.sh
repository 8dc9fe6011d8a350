#!/bin/bash
# build-image.sh OUT builds the tiny test template (a BIOS-bootable qcow2) from
# Debian packages only: the Debian cloud kernel (fetched with apt-get download,
# unpacked with dpkg -x), busybox-static and SYSLINUX on a FAT file system made
# in a plain file, so no root, mount or loop device is needed. Debian's
# dropbear (installed) and qemu-ga (downloaded) binaries are copied in with
# the libraries ldd names. After `vmd-tiny: booted` the guest brings up, in background:
# DHCP on eth0 ("vmd-tiny: ip ADDR"), qemu-ga on org.qemu.guest_agent.0, and
# dropbear with root's keys from the NoCloud seed (one "vmd-tiny: hostkey TYPE
# B64" line per host key once it listens). docs/IMAGES.md describes both templates.
#
# Disk layout (no partition table: SeaBIOS boots the FAT boot sector that
# `syslinux --install` writes):
#   [0, 32 MiB)           FAT16 "VMDTINY": ldlinux.sys/.c32, syslinux.cfg, vmlinuz, initrd.gz
#   sector 65536 (32 MiB) boot counter, one sector "vmd-tiny-boot N\n" NUL-padded
#   sectors 65544, 65545  SSH host keys, one sector each:
#                         "vmd-tiny-hostkey ed25519|ecdsa BASE64\n" (dropbear's
#                         key files, made at first boot)
#   up to 33 MiB          zero
# The counter lives outside the file system so the guest updates it with one
# sector write and never mounts anything read-write: a hard kill of QEMU can
# not leave a half-written FAT behind.
#
# Caches: downloaded .debs stay in ${XDG_CACHE_HOME:-~/.cache}/vmd-image.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 OUT.qcow2" >&2
	exit 2
fi
OUT=$1

FAT_MIB=32
DISK_MIB=33
COUNTER_SECTOR=$((FAT_MIB * 2048))
HOSTKEY_SECTOR=$((COUNTER_SECTOR + 8))
CACHE=${VMD_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmd-image}
BUSYBOX=${BUSYBOX:-/bin/busybox}

need() {
	for c in "$@"; do
		if ! command -v "$c" >/dev/null 2>&1; then
			echo "build-image: $c not found; run make deps" >&2
			exit 1
		fi
	done
}
need apt-get apt-cache dpkg cpio gzip perl mkfs.vfat syslinux mcopy qemu-img ldd
# Not "--list | grep -q": under pipefail, grep quitting early can fail the pipe.
if ! "$BUSYBOX" --list 2>/dev/null | grep -x cttyhack >/dev/null; then
	echo "build-image: $BUSYBOX is not a static busybox with cttyhack; run make deps" >&2
	exit 1
fi

START=$(date +%s.%N)
mkdir -p "$CACHE"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmd-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# --- kernel -----------------------------------------------------------------
# The meta package names the current ABI; when apt is unreachable, fall back
# to the newest kernel already in the cache.
KPKG=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
	sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -1 || true)
DEB=""
if [ -n "$KPKG" ]; then
	DEB=$(ls -1 "$CACHE"/"${KPKG}"_*_amd64.deb 2>/dev/null | sort -V | tail -1 || true)
	if [ -z "$DEB" ]; then
		echo "build-image: downloading $KPKG"
		# apt drops privileges to _apt when it can; a private, world-writable
		# download dir avoids its "unsandboxed" warning under root.
		DL="$WORK/dl"
		mkdir -p "$DL"
		chmod 0777 "$DL"
		(cd "$DL" && apt-get download -q "$KPKG" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
		f=$(ls -1 "$DL"/"${KPKG}"_*_amd64.deb 2>/dev/null | head -1 || true)
		if [ -z "$f" ]; then
			echo "build-image: apt-get download $KPKG failed" >&2
			exit 1
		fi
		mv "$f" "$CACHE/"
		DEB="$CACHE/$(basename "$f")"
	fi
else
	DEB=$(ls -1 "$CACHE"/linux-image-*-cloud-amd64_*_amd64.deb 2>/dev/null | sort -V | tail -1 || true)
	if [ -z "$DEB" ]; then
		echo "build-image: apt-cache does not know linux-image-cloud-amd64 and the cache $CACHE is empty" >&2
		exit 1
	fi
	echo "build-image: apt-cache failed; using cached $(basename "$DEB")"
fi
echo "build-image: kernel from $(basename "$DEB")"

# fetch_deb PKG prints the cached .deb of PKG, downloading it on first use.
# (qemu-guest-agent is fetched, not installed on the build host: installing
# it there would try to start a host agent.)
fetch_deb() {
	local f
	f=$(ls -1 "$CACHE"/"$1"_*_amd64.deb 2>/dev/null | sort -V | tail -1 || true)
	if [ -z "$f" ]; then
		echo "build-image: downloading $1" >&2
		mkdir -p "$WORK/dl"
		chmod 0777 "$WORK/dl"
		(cd "$WORK/dl" && apt-get download -q "$1" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
		f=$(ls -1 "$WORK/dl"/"$1"_*_amd64.deb 2>/dev/null | head -1 || true)
		[ -n "$f" ] || { echo "build-image: apt-get download $1 failed" >&2; exit 1; }
		mv "$f" "$CACHE/"
		f="$CACHE/$(basename "$f")"
	fi
	echo "$f"
}
QGA_DEB=$(fetch_deb qemu-guest-agent)
dpkg -x "$QGA_DEB" "$WORK/qga"
dpkg -x "$DEB" "$WORK/k"
KVER=$(ls -1 "$WORK/k/lib/modules" | head -1)
VMLINUZ="$WORK/k/boot/vmlinuz-$KVER"
MODDIR="$WORK/k/lib/modules/$KVER/kernel"
[ -f "$VMLINUZ" ] || { echo "build-image: no vmlinuz in $DEB" >&2; exit 1; }

# --- modules ------------------------------------------------------------------
# The package carries no modules.dep (depmod runs at install time), so read
# each module's "depends=" from its .modinfo section and emit the closure in
# load order, dependencies first.
declare -A MODPATH=()
while IFS= read -r p; do
	n=${p##*/}
	n=${n%.ko}
	MODPATH[${n//-/_}]=$p
done < <(find "$MODDIR" -name '*.ko')

declare -A SEEN=()
ORDER=()
add_module() {
	local m=${1//-/_} d deps
	[ -n "${SEEN[$m]:-}" ] && return 0
	SEEN[$m]=1
	if [ -z "${MODPATH[$m]:-}" ]; then
		# Built into this kernel: nothing to load.
		grep -q "/${1}.ko\$\|/${m}.ko\$" "$WORK/k/lib/modules/$KVER/modules.builtin" 2>/dev/null && return 0
		echo "build-image: module $m not found in $KVER" >&2
		exit 1
	fi
	deps=$(tr '\0' '\n' <"${MODPATH[$m]}" | sed -n 's/^depends=//p' | head -1)
	for d in ${deps//,/ }; do
		add_module "$d"
	done
	ORDER+=("$m")
}

ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,sbin,etc,proc,sys,dev,tmp,root,mnt/seed,lib/modules,etc/acpi/PWRF,var/log,var/run}

# Boot-critical modules, loaded before the counter; the rest after `booted`.
# The cloud kernel has no AHCI driver: a seed CD works on the pc machine
# (ata_piix), on q35 the seed has to be a virtio disk.
ORDER=()
for m in virtio_pci virtio_blk; do add_module "$m"; done
EARLY=("${ORDER[@]}")
ORDER=()
for m in button evdev; do add_module "$m"; done
ACPI=("${ORDER[@]}")
# ata_piix waits for its port probe inside insmod, so the CD modules load
# last, and only when the seed is not a virtio disk (it is on q35).
ORDER=()
for m in isofs; do add_module "$m"; done
SEEDFS=("${ORDER[@]}")
ORDER=()
for m in ata_piix sr_mod; do add_module "$m"; done
SEED=("${ORDER[@]}")
# The NIC (virtio_net needs net_failover, which needs failover) and the
# virtio-serial port of the guest agent, loaded after `booted` too.
ORDER=()
for m in virtio_net; do add_module "$m"; done
NET=("${ORDER[@]}")
ORDER=()
for m in virtio_console; do add_module "$m"; done
SERIAL=("${ORDER[@]}")
for m in "${EARLY[@]}" "${ACPI[@]}" "${SEEDFS[@]}" "${SEED[@]}" "${NET[@]}" "${SERIAL[@]}"; do
	cp "${MODPATH[$m]}" "$ROOT/lib/modules/$m.ko"
done
printf '%s\n' "${EARLY[@]}" >"$ROOT/etc/modules.early"
printf '%s\n' "${ACPI[@]}" >"$ROOT/etc/modules.acpi"
printf '%s\n' "${SEEDFS[@]}" >"$ROOT/etc/modules.seedfs"
printf '%s\n' "${SEED[@]}" >"$ROOT/etc/modules.seed"
printf '%s\n' "${NET[@]}" >"$ROOT/etc/modules.net"
printf '%s\n' "${SERIAL[@]}" >"$ROOT/etc/modules.serial"

# --- initramfs ----------------------------------------------------------------
cp "$BUSYBOX" "$ROOT/bin/busybox"
# One perl (Essential in Debian) instead of ~400 ln processes.
"$BUSYBOX" --list | grep -vx busybox |
	(cd "$ROOT/bin" && perl -ne 'chomp; symlink("busybox", $_) or die "symlink $_: $!\n"')
for a in init poweroff reboot halt; do ln -sf ../bin/busybox "$ROOT/sbin/$a"; done

# copy_elf SRC DEST copies a dynamic binary to DEST in the initramfs with
# every library ldd names (and the loader); the build host is the same
# Debian release, so these are Debian's own builds.
copy_elf() {
	local l
	[ -x "$1" ] || { echo "build-image: $1 missing; run make deps" >&2; exit 1; }
	mkdir -p "$ROOT$(dirname "$2")"
	cp "$1" "$ROOT$2"
	if ldd "$1" | grep -q 'not found'; then
		echo "build-image: $1: $(ldd "$1" | grep 'not found' | tr -s '\t\n' '  '); run make deps" >&2
		exit 1
	fi
	for l in $(ldd "$1" | sed -n -e 's/.*=> \(\/[^ ]*\) .*/\1/p' -e 's/^[[:space:]]*\(\/[^ ]*\) .*/\1/p'); do
		mkdir -p "$ROOT$(dirname "$l")"
		[ -e "$ROOT$l" ] || cp -L "$l" "$ROOT$l"
	done
}
copy_elf /usr/sbin/dropbear /usr/sbin/dropbear
copy_elf /usr/bin/dropbearkey /usr/bin/dropbearkey
copy_elf "$WORK/qga/usr/sbin/qemu-ga" /usr/sbin/qemu-ga

cat >"$ROOT/init" <<EOF
#!/bin/sh
# Stage one: mount the API file systems, load the disk drivers, bump the boot
# counter on /dev/vda, announce the boot, then hand PID 1 to busybox init.
export PATH=/bin:/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
exec </dev/console >/dev/console 2>&1

# say prints a line on the serial port and on the VGA console alike; the
# kernel's /dev/console is only the last console= (ttyS0).
say() {
	echo "\$*" >/dev/ttyS0 2>/dev/null
	echo "\$*" >/dev/tty0 2>/dev/null
}

while read -r m; do
	insmod /lib/modules/\$m.ko || say "vmd-tiny: insmod \$m failed"
done </etc/modules.early

i=0
while [ ! -b /dev/vda ] && [ \$i -lt 200 ]; do
	usleep 50000
	i=\$((i + 1))
done

n="?"
if [ -b /dev/vda ]; then
	old=\$(dd if=/dev/vda bs=512 skip=$COUNTER_SECTOR count=1 2>/dev/null | tr -d '\0' | head -n 1)
	case \$old in
	"vmd-tiny-boot "*) n=\${old#vmd-tiny-boot } ;;
	*) n=0 ;;
	esac
	case \$n in ''|*[!0-9]*) n=0 ;; esac
	n=\$((n + 1))
	# conv=sync pads the short read to a full sector; fsync flushes it
	# through virtio-blk to the host before the line below is printed.
	if ! printf 'vmd-tiny-boot %d\n' "\$n" |
		dd of=/dev/vda bs=512 seek=$COUNTER_SECTOR count=1 conv=sync,fsync 2>/dev/null; then
		say "vmd-tiny: cannot write the boot counter"
	fi
	sync
else
	say "vmd-tiny: no /dev/vda"
fi

say "vmd-tiny: boot \$n"
say "vmd-tiny: booted"
exec /sbin/init
EOF
chmod 0755 "$ROOT/init"

cat >"$ROOT/etc/inittab" <<'EOF'
::sysinit:/etc/rc.late
ttyS0::respawn:-/bin/sh
tty1::respawn:-/bin/sh
::ctrlaltdel:/sbin/poweroff
::shutdown:/bin/sync
EOF

printf 'HOSTKEY_SECTOR=%d\n' "$HOSTKEY_SECTOR" >"$ROOT/etc/vmd-tiny.conf"

cat >"$ROOT/etc/rc.late" <<'EOF'
#!/bin/sh
# Extras that must not delay the boot line, each in its own background job:
# the ACPI power button (so QMP system_powerdown shuts the guest down), the
# NIC with DHCP, the guest agent, and the NoCloud seed with the SSH server.
. /etc/vmd-tiny.conf
# say prints one line (one write) on the serial port and the VGA console; the
# shells' prompts are already up, so it starts on a fresh line.
say() {
	printf '\n%s\n' "$*" >/dev/ttyS0 2>/dev/null
	printf '\n%s\n' "$*" >/dev/tty0 2>/dev/null
}
load() { while read -r m; do insmod "/lib/modules/$m.ko" 2>/dev/null; done <"/etc/modules.$1"; }

(
	load acpi
	acpid
) </dev/null >/dev/null 2>&1 &

# Network: DHCP on eth0 when the VM has a NIC; /etc/udhcpc.script configures
# it and prints "vmd-tiny: ip ADDR".
(
	load net
	ip link set lo up
	i=0
	while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 20 ]; do
		usleep 50000
		i=$((i + 1))
	done
	if [ -e /sys/class/net/eth0 ]; then
		udhcpc -i eth0 -s /etc/udhcpc.script -b -t 30 -T 1 -A 3 -p /var/run/udhcpc.eth0.pid
	fi
) </dev/null >/dev/null 2>&1 &

# Guest agent on the virtio-serial port org.qemu.guest_agent.0, when the VM
# has one. No udev here: make the /dev/virtio-ports link udev would make.
(
	load serial
	port=""
	i=0
	while [ -z "$port" ] && [ $i -lt 40 ]; do
		for n in /sys/class/virtio-ports/*/name; do
			[ "$(cat "$n" 2>/dev/null)" = org.qemu.guest_agent.0 ] || continue
			port=${n%/name}
			port=${port##*/}
		done
		[ -n "$port" ] || usleep 50000
		i=$((i + 1))
	done
	if [ -n "$port" ]; then
		i=0
		while [ ! -c "/dev/$port" ] && [ $i -lt 40 ]; do
			usleep 50000
			i=$((i + 1))
		done
		mkdir -p /dev/virtio-ports
		ln -sf "../$port" /dev/virtio-ports/org.qemu.guest_agent.0
		qemu-ga -d -m virtio-serial -p /dev/virtio-ports/org.qemu.guest_agent.0 \
			-f /var/run/qemu-ga.pid -l /var/log/qemu-ga.log
	fi
) </dev/null >/dev/null 2>&1 &

# SSH: host keys kept on the disk (so they survive reboots and stay in the
# user's known_hosts), the seed's keys for root, then dropbear; the hostkey
# lines come last, when dropbear listens. Two key types: dropbear 2022.83
# with only an ed25519 key still offers rsa-sha2-256 and aborts when a client
# (Go's x/crypto/ssh) prefers it; with an ECDSA key too such clients pick
# ECDSA. (An RSA key would take ~4 s to make under TCG.)
(
	mkdir -p /etc/dropbear /root/.ssh
	chmod 0700 /root /root/.ssh
	keys="/etc/dropbear/dropbear_ed25519_host_key /etc/dropbear/dropbear_ecdsa_host_key"
	# The keys (read back, or made) while the seed is looked for.
	(
		sector=$HOSTKEY_SECTOR
		for key in $keys; do
			type=${key#/etc/dropbear/dropbear_}
			type=${type%_host_key}
			if [ -b /dev/vda ]; then
				blob=$(dd if=/dev/vda bs=512 skip="$sector" count=1 2>/dev/null | tr -d '\0' | head -n 1)
				case $blob in
				"vmd-tiny-hostkey $type "*) echo "${blob#vmd-tiny-hostkey $type }" | base64 -d >"$key" 2>/dev/null ;;
				esac
			fi
			if ! dropbearkey -y -f "$key" >/dev/null 2>&1; then
				rm -f "$key"
				dropbearkey -t "$type" -f "$key" >/dev/null 2>&1
				if [ -b /dev/vda ]; then
					printf 'vmd-tiny-hostkey %s %s\n' "$type" "$(base64 -w 0 "$key")" |
						dd of=/dev/vda bs=512 seek="$sector" count=1 conv=sync,fsync 2>/dev/null
				fi
			fi
			sector=$((sector + 1))
		done
	) &
	keygen=$!

	# On q35 the seed is a virtio disk, already there: the CD drivers
	# (ata_piix probes its ports for a while) only when it is not found.
	load seedfs
	dev=$(findfs LABEL=cidata 2>/dev/null || findfs LABEL=CIDATA 2>/dev/null)
	[ -n "$dev" ] || load seed
	i=0
	while [ -z "$dev" ] && [ $i -lt 30 ]; do
		usleep 100000
		dev=$(findfs LABEL=cidata 2>/dev/null || findfs LABEL=CIDATA 2>/dev/null)
		i=$((i + 1))
	done
	if [ -n "$dev" ] && mount -t iso9660 -o ro "$dev" /mnt/seed 2>/dev/null; then
		if [ -f /mnt/seed/user-data ]; then
			say "vmd-tiny: user-data: $(head -n 1 /mnt/seed/user-data)"
		fi
		h=$(sed -n 's/^local-hostname: *//p' /mnt/seed/meta-data 2>/dev/null | head -n 1)
		[ -n "$h" ] && hostname "$h"
		{
			[ -f /mnt/seed/meta-data ] && seed-keys /mnt/seed/meta-data
			[ "$(head -n 1 /mnt/seed/user-data 2>/dev/null)" = "#cloud-config" ] && seed-keys /mnt/seed/user-data
		} | awk '!seen[$0]++' >/root/.ssh/authorized_keys
		chmod 0600 /root/.ssh/authorized_keys
	fi

	wait $keygen
	dropbear $(for k in $keys; do echo "-r $k"; done) -s -P /var/run/dropbear.pid
	for k in $keys; do
		say "vmd-tiny: hostkey $(dropbearkey -y -f "$k" | grep -E '^(ssh-|ecdsa-)' | cut -d ' ' -f 1,2)"
	done
	say "vmd-tiny: hostkeys done"
) </dev/null >/dev/null 2>&1 &
EOF
chmod 0755 "$ROOT/etc/rc.late"

# seed-keys FILE prints the OpenSSH public keys listed under
# ssh_authorized_keys (cloud-config, also inside a users: entry) or
# public-keys (meta-data), in block or flow style: a few lines of awk, not a
# YAML parser, for the shapes cloud-init documents.
cat >"$ROOT/bin/seed-keys" <<'EOF'
#!/bin/sh
exec awk '
function indent(s) { match(s, /^[ \t]*/); return RLENGTH }
function emit(s,   k) {
	while (match(s, /(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp[0-9]+|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+\/=]+( [^"'"'"',\]}]*)?/)) {
		k = substr(s, RSTART, RLENGTH)
		sub(/[ \t]+$/, "", k)
		print k
		s = substr(s, RSTART + RLENGTH)
	}
}
{
	line = $0
	sub(/\r$/, "", line)
	if (inblk) {
		if (line ~ /^[ \t]*(#.*)?$/) next
		ind = indent(line)
		if (ind > kind || (ind == kind && line ~ /^[ \t]*- /)) { emit(line); next }
		inblk = 0
	}
	if (match(line, /(ssh_authorized_keys|ssh-authorized-keys|public-keys)["'"'"']?[ \t]*:/)) {
		pre = substr(line, 1, RSTART - 1)
		if (pre ~ /^[ \t{,"'"'"']*(- )?[ \t"'"'"']*$/) {
			kind = length(pre)
			sub(/["'"'"']$/, "", pre)
			kind = length(pre)
			emit(substr(line, RSTART + RLENGTH))
			inblk = 1
		}
	}
}' "$@"
EOF
chmod 0755 "$ROOT/bin/seed-keys"

# busybox udhcpc runs this on each DHCP event.
cat >"$ROOT/etc/udhcpc.script" <<'EOF'
#!/bin/sh
say() {
	printf '\n%s\n' "$*" >/dev/ttyS0 2>/dev/null
	printf '\n%s\n' "$*" >/dev/tty0 2>/dev/null
}
case $1 in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound | renew)
	old=$(cat "/var/run/udhcpc.$interface.ip" 2>/dev/null)
	if [ "$old" != "$ip/${mask:-24}" ]; then
		ip -4 addr flush dev "$interface"
		ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
	fi
	while ip route del default dev "$interface" 2>/dev/null; do :; done
	for r in $router; do
		ip route add default via "$r" dev "$interface" && break
	done
	{
		[ -n "$domain" ] && echo "search $domain"
		for d in $dns; do echo "nameserver $d"; done
	} >/etc/resolv.conf
	echo "$ip/${mask:-24}" >"/var/run/udhcpc.$interface.ip"
	[ "$old" != "$ip/${mask:-24}" ] && say "vmd-tiny: ip $ip"
	;;
esac
exit 0
EOF
chmod 0755 "$ROOT/etc/udhcpc.script"

# qemu-ga's guest-shutdown runs "/sbin/shutdown -P|-H|-r +0 MESSAGE"; busybox
# has no shutdown, so map it onto poweroff/halt/reboot (they signal init).
cat >"$ROOT/sbin/shutdown" <<'EOF'
#!/bin/sh
act=poweroff
for a in "$@"; do
	case $a in
	-r) act=reboot ;;
	-H) act=halt ;;
	-P | -h) act=poweroff ;;
	esac
done
exec "/sbin/$act"
EOF
chmod 0755 "$ROOT/sbin/shutdown"

# busybox acpid runs /etc/acpi/PWRF/00000080 on the power button's KEY_POWER.
printf '#!/bin/sh\nexec /sbin/poweroff\n' >"$ROOT/etc/acpi/PWRF/00000080"
chmod 0755 "$ROOT/etc/acpi/PWRF/00000080"

cat >"$ROOT/etc/profile" <<'EOF'
export PATH=/bin:/sbin HOME=/root
PS1='vmd-tiny:\w# '
cd /root
EOF
echo 'root:x:0:0:root:/root:/bin/sh' >"$ROOT/etc/passwd"
echo /bin/sh >"$ROOT/etc/shells"
echo 'root:x:0:' >"$ROOT/etc/group"
echo vmd-tiny >"$ROOT/etc/hostname"

(cd "$ROOT" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9 -n >"$WORK/initrd.gz"

# --- FAT + SYSLINUX -------------------------------------------------------------
cat >"$WORK/syslinux.cfg" <<'EOF'
DEFAULT vmd
PROMPT 0
TIMEOUT 0
LABEL vmd
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND console=tty0 console=ttyS0,115200 quiet panic=10
EOF

RAW="$WORK/disk.raw"
truncate -s "${FAT_MIB}M" "$RAW"
mkfs.vfat -n VMDTINY -i 766d6474 "$RAW" >/dev/null
syslinux --install "$RAW"
export MTOOLS_SKIP_CHECK=1
mcopy -i "$RAW" "$VMLINUZ" ::vmlinuz
mcopy -i "$RAW" "$WORK/initrd.gz" ::initrd.gz
mcopy -i "$RAW" "$WORK/syslinux.cfg" ::syslinux.cfg
# Grow past the file system: the counter sector and the rest start zeroed,
# so a fresh overlay's first boot counts 1.
truncate -s "${DISK_MIB}M" "$RAW"

mkdir -p "$(dirname "$OUT")"
TMP="$OUT.tmp.$$"
trap 'rm -rf "$WORK" "$TMP"' EXIT
qemu-img convert -q -f raw -O qcow2 "$RAW" "$TMP"
chmod 0644 "$TMP"
mv -f "$TMP" "$OUT"

END=$(date +%s.%N)
printf 'build-image: wrote %s (%s bytes, kernel %s, %s s)\n' "$OUT" "$(stat -c %s "$OUT")" "$KVER" \
	"$(echo "$END $START" | awk '{printf "%.1f", $1-$2}')"
