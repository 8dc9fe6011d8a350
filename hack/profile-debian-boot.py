#!/usr/bin/env python3
"""profile-debian-boot.py IMAGE OUTDIR boots the Debian template the way
TestDebianImageCloudInit does (q35, TCG, 1 vCPU, 1024 MB, a virtio NoCloud
seed with an ssh key in meta-data and a #cloud-config with write_files and
runcmd, a restrict=on user NIC with an ssh hostfwd, the guest agent's port) and
prints, from QEMU's start, the wall time and the QEMU process's CPU time
(user+system: the guest's own work, less sensitive to the machine's load than
the wall time) when: the kernel starts, the initramfs hands over, systemd
starts, each cloud-init stage starts, qga answers guest-ping, cloud-init's host
keys block is on the serial console, `ssh debian@ true` works, runcmd's
/run/marker exists, cloud-init has finished. Then it saves systemd-analyze
(time, critical-chain, blame), cloud-init analyze, the journal and
cloud-init.log (over ssh) to OUTDIR/report.txt, the marks to OUTDIR/marks.json,
and shuts the guest down through qga. Needs qemu-system-x86, qemu-utils,
xorriso, openssh-client (make deps). Not a test: a measuring tool
(docs/BENCHMARKS.md, "Debian template")."""
import json, os, re, socket, subprocess, sys, time

img, out = sys.argv[1], sys.argv[2]
disk_gb = os.environ.get("DISK_GB", "")
os.makedirs(out, exist_ok=True)
disk = os.path.join(out, "disk.qcow2")
serial = os.path.join(out, "serial.log")
qgas = os.path.join(out, "qga.sock")
for f in (disk, serial, qgas):
    if os.path.exists(f):
        os.remove(f)
subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", os.path.abspath(img), disk] + ([disk_gb + "G"] if disk_gb else []))
key = os.path.join(out, "id")
if not os.path.exists(key):
    subprocess.check_call(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
pub = open(key + ".pub").read().strip()
seeddir = os.path.join(out, "seed")
os.makedirs(seeddir, exist_ok=True)
open(os.path.join(seeddir, "meta-data"), "w").write("instance-id: i-debian\nlocal-hostname: deb-test\npublic-keys:\n  - %s\n" % pub)
open(os.path.join(seeddir, "user-data"), "w").write(
    "#cloud-config\n"
    "write_files:\n  - path: /etc/vmd-test/written\n    content: |\n      written by cloud-init\n    permissions: '0640'\n"
    "runcmd:\n  - [ sh, -c, 'echo runcmd-$(hostname) > /run/marker' ]\n")
seed = os.path.join(out, "seed.iso")
subprocess.check_call(["xorriso", "-as", "mkisofs", "-quiet", "-o", seed, "-V", "cidata", "-J", "-R", seeddir])
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
args = ["qemu-system-x86_64", "-nodefaults", "-no-user-config", "-machine", "q35", "-accel", "tcg", "-m", "1024",
        "-display", "none", "-vga", "std",
        "-drive", "if=none,id=disk0,file=%s,format=qcow2" % disk, "-device", "virtio-blk-pci,drive=disk0,bootindex=0",
        "-chardev", "file,id=serial0,path=" + serial, "-serial", "chardev:serial0",
        "-drive", "if=none,id=seed0,file=%s,format=raw,readonly=on" % seed, "-device", "virtio-blk-pci,drive=seed0",
        "-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22" % port, "-device", "virtio-net-pci,netdev=n0",
        "-chardev", "socket,path=%s,server=on,wait=off,id=qga0" % qgas,
        "-device", "virtio-serial", "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0"]
load0 = open("/proc/loadavg").read().split()[0]
t0 = time.time()
q = subprocess.Popen(args, stderr=open(os.path.join(out, "qemu.err"), "w"), start_new_session=True)
marks = {}
sshopts = ["-i", key, "-p", str(port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
           "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]


def ssh(cmd, timeout=60):
    return subprocess.run(["ssh"] + sshopts + ["debian@127.0.0.1", cmd], capture_output=True, text=True, timeout=timeout)


def qga(cmd, timeout=3):
    c = socket.socket(socket.AF_UNIX)
    c.settimeout(timeout)
    c.connect(qgas)
    try:
        sid = int(time.time()) % 100000
        c.sendall(b"\xff" + json.dumps({"execute": "guest-sync-delimited", "arguments": {"id": sid}}).encode())
        buf = b""
        while True:
            b = c.recv(4096)
            if not b:
                raise OSError("eof")
            buf += b
            i = buf.rfind(b"\xff")
            if i >= 0 and b"\n" in buf[i:]:
                if str(sid).encode() in buf[i:]:
                    break
        c.sendall(json.dumps(cmd).encode())
        buf = b""
        while b"\n" not in buf:
            b = c.recv(4096)
            if not b:
                raise OSError("eof")
            buf += b
        return json.loads(buf.split(b"\n")[0])
    finally:
        c.close()


def cpu():
    f = open("/proc/%d/stat" % q.pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def mark(name):
    if name not in marks:
        marks[name] = (time.time() - t0, cpu())
        print("%7.1f s  (qemu cpu %6.1f s)  %s" % (marks[name][0], marks[name][1], name), flush=True)


deadline = t0 + 900
while time.time() < deadline and q.poll() is None:
    log = open(serial, "rb").read().decode("utf-8", "replace") if os.path.exists(serial) else ""
    for name, rx in (("kernel: Linux version", r"Linux version"), ("serial: Run /init or switch root", r"Run /init as init process"),
                     ("serial: systemd banner", r"systemd\[1\]: systemd \d+|Welcome to"),
                     ("serial: cloud-init init-local", r"cloud-init\[\d+\]: Cloud-init v\. .* running 'init-local'"),
                     ("serial: cloud-init init", r"running 'init' at"),
                     ("serial: host keys block", r"-----END SSH HOST KEY KEYS-----"),
                     ("serial: modules:config", r"running 'modules:config'"),
                     ("serial: modules:final", r"running 'modules:final'"),
                     ("serial: cloud-init finished", r"Cloud-init v\. .* finished at"),
                     ("serial: login prompt", r"login:")):
        if name not in marks and re.search(rx, log):
            mark(name)
    if "qga answers" not in marks and os.path.exists(qgas):
        try:
            if "return" in qga({"execute": "guest-ping"}):
                mark("qga answers")
        except (OSError, ValueError):
            pass
    if "ssh true" not in marks:
        try:
            if ssh("true", timeout=15).returncode == 0:
                mark("ssh true")
        except subprocess.TimeoutExpired:
            pass
    if "runcmd marker" not in marks and "ssh true" in marks:
        try:
            if ssh("cat /run/marker", timeout=15).returncode == 0:
                mark("runcmd marker")
        except subprocess.TimeoutExpired:
            pass
    if all(k in marks for k in ("qga answers", "ssh true", "runcmd marker", "serial: cloud-init finished")):
        break
    time.sleep(0.5)
load1 = open("/proc/loadavg").read().split()[0]
print("load %s -> %s" % (load0, load1), flush=True)
if "ssh true" in marks:
    report = ssh("set -x; systemd-analyze; systemd-analyze critical-chain; systemd-analyze critical-chain ssh.service qemu-guest-agent.service cloud-final.service;"
                 " systemd-analyze blame | head -40; sudo cloud-init analyze blame; sudo cloud-init analyze show;"
                 " sudo journalctl -b -o short-monotonic --no-pager; sudo cat /var/log/cloud-init.log; systemctl list-units --no-pager; cat /proc/cmdline; df -h /;"
                 " python3 -X importtime -c 'import cloudinit.cmd.main' 2>&1 | sort -t'|' -k2 -n | tail -25", timeout=300)
    open(os.path.join(out, "report.txt"), "w").write(report.stdout + report.stderr)
json.dump({"marks": marks, "load": [load0, load1]}, open(os.path.join(out, "marks.json"), "w"), indent=1)
try:
    qga({"execute": "guest-shutdown"})
except (OSError, ValueError):
    pass
try:
    q.wait(120)
except subprocess.TimeoutExpired:
    q.kill()
    q.wait()
