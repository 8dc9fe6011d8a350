#!/bin/bash
# build-debian-image.sh OUT builds the Debian 12 (bookworm) cloud template, a
# BIOS-bootable qcow2, from Debian packages only: debootstrap from the
# machine's configured Debian mirror, the cloud kernel, cloud-init (NoCloud
# only), openssh-server and qemu-guest-agent.
#
# Disk layout (MBR, SYSLINUX's mbr.bin boots the active partition):
#   p1  [1 MiB, 64 MiB)   FAT16 "VMDBOOT", active: ldlinux.sys/.c32,
#                         syslinux.cfg, vmlinuz, initrd.img
#   p2  [64 MiB, 2 GiB)   ext4 "root", made with `mkfs.ext4 -d ROOTFS` in a
#                         plain file and written at its offset with dd
# No loop device and no mount of the image: mkfs.vfat, mcopy and
# `syslinux --install --offset` work on files. cloud-init's growpart grows p2
# when the VM's disk is larger than 2 GiB.
#
# Privileges: debootstrap and the chroot steps need root (chroot, mknod,
# mounting /proc inside the rootfs being built); the disk assembly does not.
#
# Caches in ${XDG_CACHE_HOME:-~/.cache}/vmd-image:
#   debian-12-debs-KEY.tgz    the .debs (debootstrap --make-tarball), keyed by
#                             the package list and mirror
#   debian-12-rootfs-KEY.tgz  the rootfs debootstrap made, same key
# so a rebuild after a change to this script's configuration part skips the
# download and debootstrap (the configuration runs on every build).
# (make image-debian skips everything when the image is newer than this script.)
#
# build-debian-image.sh --cache-status says whether a build would start from
# the cached rootfs (exit 0, "warm: FILE": under a minute) or run debootstrap
# (exit 1, "cold: ...": minutes); it needs neither root nor the tools.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 OUT.qcow2 | --cache-status" >&2
	exit 2
fi
OUT=$1
STATUS=
if [ "$OUT" = --cache-status ]; then
	STATUS=1
fi

SUITE=bookworm
DISK_MIB=2048
BOOT_START_MIB=1
ROOT_START_MIB=64
CACHE=${VMD_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmd-image}
# Only what a cloud template needs; debootstrap adds Depends, not Recommends,
# and does not resolve virtual packages: python3-cffi-backend provides the
# python3-cffi-backend-api-* that python3-cryptography (cloud-init) needs.
INCLUDE=linux-image-cloud-amd64,python3-cffi-backend,initramfs-tools,systemd-sysv,udev,dbus,kmod,iproute2,netbase,systemd-resolved,cloud-init,cloud-guest-utils,openssh-server,qemu-guest-agent,sudo,e2fsprogs,fdisk,less,ca-certificates

need() {
	for c in "$@"; do
		if ! command -v "$c" >/dev/null 2>&1; then
			echo "build-debian-image: $c not found; run make deps" >&2
			exit 1
		fi
	done
}
[ -n "$STATUS" ] || need debootstrap chroot sfdisk mkfs.ext4 mkfs.vfat syslinux mcopy qemu-img sha256sum dd tar
MBR=/usr/lib/syslinux/mbr/mbr.bin
[ -n "$STATUS" ] || [ -f "$MBR" ] || { echo "build-debian-image: $MBR missing; run make deps" >&2; exit 1; }
if [ -z "$STATUS" ] && [ "$(id -u)" != 0 ]; then
	echo "build-debian-image: debootstrap and chroot need root" >&2
	exit 1
fi

# The mirror is the first Debian archive the machine's apt is configured with
# (deb822 "URIs:" or one-line "deb URL SUITE"): the only registry reachable here.
mirror() {
	local f u
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		u=$(sed -n -e 's/^URIs: *\([^ ]*\/debian\/*\)$/\1/p' \
			-e 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\/debian\/*\) .*/\2/p' "$f" | head -1)
		if [ -n "$u" ]; then
			echo "${u%/}"
			return
		fi
	done
	echo http://deb.debian.org/debian
}
MIRROR=${DEBIAN_MIRROR:-$(mirror)}

DEBS_KEY=$(printf '%s %s %s\n' "$SUITE" "$MIRROR" "$INCLUDE" | sha256sum | cut -c1-12)
DEBS="$CACHE/debian-12-debs-$DEBS_KEY.tgz"
ROOTTAR="$CACHE/debian-12-rootfs-$DEBS_KEY.tgz"
if [ -n "$STATUS" ]; then
	if [ -f "$ROOTTAR" ]; then
		echo "warm: $ROOTTAR"
		exit 0
	fi
	if [ -f "$DEBS" ]; then
		echo "cold: no $ROOTTAR (the .debs are cached: debootstrap, minutes)"
	else
		echo "cold: no $ROOTTAR nor $DEBS (download and debootstrap, minutes)"
	fi
	exit 1
fi

START=$(date +%s.%N)
mkdir -p "$CACHE"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmd-debian.XXXXXX")
ROOTFS="$WORK/rootfs"
cleanup() {
	# Never leave a mount inside a directory we are about to delete.
	for m in "$ROOTFS/dev/pts" "$ROOTFS/proc" "$ROOTFS/sys"; do
		mountpoint -q "$m" 2>/dev/null && umount -l "$m"
	done
	rm -rf "$WORK" "${TMP:-}"
}
trap cleanup EXIT

elapsed() { echo "$(date +%s.%N) $START" | awk '{printf "%.0f", $1-$2}'; }
log() { echo "build-debian-image: [$(elapsed) s] $*"; }


mkdir -p "$ROOTFS"
if [ -f "$ROOTTAR" ]; then
	log "rootfs from cache $(basename "$ROOTTAR")"
	tar -xzf "$ROOTTAR" -C "$ROOTFS" --numeric-owner --xattrs --xattrs-include="*"
else
	# --- debootstrap ----------------------------------------------------------
	if [ ! -f "$DEBS" ]; then
		log "downloading packages from $MIRROR"
		debootstrap --variant=minbase --include="$INCLUDE" --make-tarball="$DEBS.tmp" \
			"$SUITE" "$WORK/tb" "$MIRROR" >"$WORK/debootstrap-dl.log" 2>&1 ||
			{ tail -20 "$WORK/debootstrap-dl.log" >&2; rm -f "$DEBS.tmp"; exit 1; }
		mv "$DEBS.tmp" "$DEBS"
		find "$CACHE" -maxdepth 1 -name 'debian-12-debs-*.tgz' ! -name "$(basename "$DEBS")" -delete
		rm -rf "$WORK/tb"
	fi
	log "debootstrap $SUITE from $(basename "$DEBS")"
	debootstrap --variant=minbase --include="$INCLUDE" --unpack-tarball="$DEBS" \
		"$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
		{
			tail -5 "$WORK/debootstrap.log" >&2
			grep -v 'URL:' "$ROOTFS/debootstrap/debootstrap.log" | tail -40 >&2
			exit 1
		}

	log "caching rootfs"
	tar -czf "$ROOTTAR.tmp" -C "$ROOTFS" --numeric-owner --xattrs --xattrs-include="*" .
	mv "$ROOTTAR.tmp" "$ROOTTAR"
	# Older rootfs caches are for other package lists: keep only this one.
	find "$CACHE" -maxdepth 1 -name 'debian-12-rootfs-*.tgz' ! -name "$(basename "$ROOTTAR")" -delete
fi

# --- configure ------------------------------------------------------------
log "configuring"
mount -t proc proc "$ROOTFS/proc"
mount -t sysfs sysfs "$ROOTFS/sys"
inchroot() { chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

echo debian >"$ROOTFS/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOTFS/etc/hosts"
# Pass 0: no fsck of the root at every boot (systemd-fsck-root was ~17 s of a
# boot under TCG on a loaded machine, for a journalled ext4 that is clean).
cat >"$ROOTFS/etc/fstab" <<-'EOF'
# The root file system; the FAT boot partition (/dev/vda1) is not mounted.
/dev/vda2 / ext4 defaults,errors=remount-ro 0 0
EOF
cat >"$ROOTFS/etc/apt/sources.list" <<-EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
EOF

# A small initramfs with only the drivers a QEMU guest needs: MODULES=most
# is ~3x larger, and every MiB costs boot time under TCG.
cat >"$ROOTFS/etc/initramfs-tools/conf.d/vmd.conf" <<-'EOF'
MODULES=list
COMPRESS=gzip
EOF
printf '%s\n' virtio_pci virtio_blk virtio_scsi sd_mod ata_piix ahci >"$ROOTFS/etc/initramfs-tools/modules"
inchroot update-initramfs -u -k all >"$WORK/initramfs.log" 2>&1 ||
	{ cat "$WORK/initramfs.log" >&2; exit 1; }

# cloud-init: the NoCloud seed vmd attaches (label cidata), nothing that
# probes a metadata address; networkd renders its network config (DHCP on
# the NIC by default).
cat >"$ROOTFS/etc/cloud/cloud.cfg.d/90-vmd.cfg" <<-'EOF'
datasource_list: [ NoCloud, None ]
# Two key types, not four: RSA-3072 and DSA cost ~10 s under TCG.
ssh_genkeytypes: [ ed25519, ecdsa ]
# No locales package (update-locale) in the image: C.UTF-8 is built in.
locale: false
# Debian's module lists without what this image cannot use (snap, grub,
# byobu, config managers, rightscale, lxd, landscape, fan, keyboard, rsyslog,
# ssh-authkey-fingerprints): every module is a Python import, slow under TCG.
# The lists replace Debian's. keys-to-console runs in the init stage, right
# after ssh made the host keys, not in the final stage: the host keys block
# on the serial console (what vmd records as the VM's ssh_host_keys) comes
# out as soon as sshd can start, not after the config and final stages
# (minutes later under TCG).
cloud_init_modules:
 - migrator
 - seed_random
 - bootcmd
 - write-files
 - growpart
 - resizefs
 - disk_setup
 - mounts
 - set_hostname
 - update_hostname
 - update_etc_hosts
 - ca-certs
 - users-groups
 - ssh
 - keys-to-console
cloud_config_modules:
 - set-passwords
 - apt-pipelining
 - apt-configure
 - ntp
 - timezone
 - disable-ec2-metadata
 - runcmd
cloud_final_modules:
 - package-update-upgrade-install
 - write-files-deferred
 - scripts-vendor
 - scripts-per-once
 - scripts-per-boot
 - scripts-per-instance
 - scripts-user
 - phone-home
 - final-message
 - power-state-change
system_info:
  network:
    renderers: [ networkd ]
EOF
inchroot systemctl enable systemd-networkd systemd-resolved >/dev/null 2>&1
ln -sf /run/systemd/resolve/stub-resolv.conf "$ROOTFS/etc/resolv.conf"
# Waiting for "online" would stall a guest without a NIC for 2 minutes.
mkdir -p "$ROOTFS/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat >"$ROOTFS/etc/systemd/system/systemd-networkd-wait-online.service.d/vmd.conf" <<-'EOF'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=20
EOF
# Lean boot: nothing periodic, nothing that is not a cloud guest's job.
for u in apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
	e2scrub_all.timer e2scrub_all.service e2scrub_reap.service fstrim.timer man-db.timer \
	dpkg-db-backup.timer systemd-tmpfiles-clean.timer motd-news.timer \
	modprobe@drm.service modprobe@efi_pstore.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount \
	getty@tty2.service getty@tty3.service getty@tty4.service getty@tty5.service getty@tty6.service; do
	inchroot systemctl mask "$u" >/dev/null 2>&1 || true
done
# qemu-guest-agent is started by udev when its port appears (BindsTo the
# device), but Debian's unit has the default dependencies: After=basic.target,
# so it waited for sysinit.target, i.e. for cloud-init's local and network
# stages (cloud-init.service is Before=sysinit.target): minutes under TCG.
# It needs nothing of that (the root file system and /run are there before
# any unit starts), so it starts as soon as udev has made its port's link.
mkdir -p "$ROOTFS/etc/systemd/system/qemu-guest-agent.service.d"
cat >"$ROOTFS/etc/systemd/system/qemu-guest-agent.service.d/vmd.conf" <<-'EOF'
[Unit]
DefaultDependencies=no
After=systemd-journald.socket
Before=shutdown.target
Conflicts=shutdown.target
EOF
mkdir -p "$ROOTFS/etc/systemd/logind.conf.d"
printf '[Login]\nNAutoVTs=1\n' >"$ROOTFS/etc/systemd/logind.conf.d/vmd.conf"

# Per-instance identity is made at first boot: host keys by cloud-init,
# machine-id by systemd.
rm -f "$ROOTFS"/etc/ssh/ssh_host_*
: >"$ROOTFS/etc/machine-id"
rm -f "$ROOTFS/var/lib/dbus/machine-id"
inchroot apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/log/*.log \
	"$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/* "$ROOTFS"/var/cache/debconf/*-old
umount "$ROOTFS/sys" "$ROOTFS/proc"


# --- disk -----------------------------------------------------------------
log "assembling disk"
VMLINUZ=$(ls -1 "$ROOTFS"/boot/vmlinuz-* | sort -V | tail -1)
INITRD=$(ls -1 "$ROOTFS"/boot/initrd.img-* | sort -V | tail -1)
KVER=${VMLINUZ##*/vmlinuz-}

RAW="$WORK/disk.raw"
truncate -s "${DISK_MIB}M" "$RAW"
sfdisk -q "$RAW" <<EOF
label: dos
start=${BOOT_START_MIB}MiB, size=$((ROOT_START_MIB - BOOT_START_MIB))MiB, type=c, bootable
start=${ROOT_START_MIB}MiB, type=83
EOF
dd if="$MBR" of="$RAW" bs=440 count=1 conv=notrunc status=none

# p1: FAT with the kernel and SYSLINUX. -h: the partition's offset in sectors,
# which SYSLINUX's boot sector adds to find ldlinux.sys.
BOOT="$WORK/boot.fat"
truncate -s "$((ROOT_START_MIB - BOOT_START_MIB))M" "$BOOT"
mkfs.vfat -n VMDBOOT -h $((BOOT_START_MIB * 2048)) "$BOOT" >/dev/null
export MTOOLS_SKIP_CHECK=1
cat >"$WORK/syslinux.cfg" <<EOF
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
  KERNEL vmlinuz
  INITRD initrd.img
  APPEND root=/dev/vda2 ro console=tty0 console=ttyS0,115200 panic=10
EOF
mcopy -i "$BOOT" "$VMLINUZ" ::vmlinuz
mcopy -i "$BOOT" "$INITRD" ::initrd.img
mcopy -i "$BOOT" "$WORK/syslinux.cfg" ::syslinux.cfg
dd if="$BOOT" of="$RAW" bs=1M seek="$BOOT_START_MIB" conv=notrunc,sparse status=none
syslinux --install --offset $((BOOT_START_MIB << 20)) "$RAW"

# p2: ext4 filled from the rootfs directory, no mount.
PART="$WORK/root.ext4"
truncate -s "$((DISK_MIB - ROOT_START_MIB))M" "$PART"
mkfs.ext4 -q -L root -d "$ROOTFS" "$PART"
dd if="$PART" of="$RAW" bs=1M seek="$ROOT_START_MIB" conv=notrunc,sparse status=none
rm -f "$PART"

mkdir -p "$(dirname "$OUT")"
TMP="$OUT.tmp.$$"
qemu-img convert -q -c -f raw -O qcow2 "$RAW" "$TMP"
chmod 0644 "$TMP"
mv -f "$TMP" "$OUT"
log "wrote $OUT ($(stat -c %s "$OUT") bytes, kernel $KVER)"
