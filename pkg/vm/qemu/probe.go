package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// probeMarker is what the probe's boot sector prints on the serial port.
const probeMarker = "vmd-probe: ok"

// bootSector is a 512-byte x86 boot sector that writes msg to COM1 and halts.
// Hand-assembled (16-bit real mode, loaded at 0x7c00):
//
//	cli; cld; xor ax,ax; mov ds,ax; mov si,msg; mov dx,0x3f8
//	next: lodsb; test al,al; jz done; out dx,al; jmp next
//	done: hlt; jmp done
func bootSector(msg string) []byte {
	const msgOff = 23
	addr := 0x7c00 + msgOff
	code := []byte{
		0xfa, 0xfc, 0x31, 0xc0, 0x8e, 0xd8,
		0xbe, byte(addr), byte(addr >> 8),
		0xba, 0xf8, 0x03,
		0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf8,
		0xf4, 0xeb, 0xfd,
	}
	b := make([]byte, 512)
	copy(b, code)
	copy(b[msgOff:], msg+"\n\x00")
	b[510], b[511] = 0x55, 0xaa
	return b
}

// writeBootDisk writes a raw disk whose boot sector prints msg. SeaBIOS
// does not boot a disk of one sector, hence the padding to 1 MiB.
func writeBootDisk(path, msg string) error {
	if err := os.WriteFile(path, bootSector(msg), 0o644); err != nil {
		return err
	}
	return os.Truncate(path, 1<<20)
}

// probeTimeout is how long a probe guest may take to print; TCG needs well
// under a second for it, KVM far less.
const probeTimeout = 3 * time.Second

// ProbeAccel picks the accelerator for requested ("auto", "kvm" or "tcg").
// KVM counts only if a tiny guest really runs under it and prints on its
// serial port within a few seconds: on some hosts /dev/kvm opens but guests
// hang or QEMU aborts. "auto" falls back to TCG and says why in reason;
// "kvm" that fails is an error.
func ProbeAccel(ctx context.Context, requested string) (chosen string, reason string, err error) {
	return probeAccel(ctx, "qemu-system-x86_64", requested)
}

func probeAccel(ctx context.Context, bin, requested string) (string, string, error) {
	switch requested {
	case "tcg":
		return "tcg", "requested", nil
	case "kvm", "auto", "":
	default:
		return "", "", fmt.Errorf("accel %q: want auto, kvm or tcg", requested)
	}
	var perr error
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		perr = fmt.Errorf("open /dev/kvm: %w", err)
	} else {
		f.Close()
		perr = probeGuest(ctx, bin, "kvm")
	}
	if perr == nil {
		return "kvm", "probe guest ran under kvm", nil
	}
	if requested == "kvm" {
		return "", "", fmt.Errorf("accel kvm: %w", perr)
	}
	return "tcg", "kvm unusable: " + perr.Error(), nil
}

// probeGuest boots the probe boot sector under accel and waits for its line.
func probeGuest(ctx context.Context, bin, accel string) error {
	dir, err := os.MkdirTemp("", "vmd-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	img := filepath.Join(dir, "boot.img")
	if err := writeBootDisk(img, probeMarker); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-nodefaults", "-no-user-config", "-machine", "q35",
		"-accel", accel, "-m", "16", "-display", "none", "-serial", "stdio",
		"-drive", "if=none,id=d0,format=raw,readonly=on,file="+escape(img),
		"-device", "virtio-blk-pci,drive=d0")
	cmd.WaitDelay = time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	found := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), probeMarker) {
				found <- true
				return
			}
		}
		found <- false
	}()
	select {
	case ok := <-found:
		if ok {
			return nil
		}
		_ = cmd.Wait()
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = "no output"
		}
		return fmt.Errorf("probe guest under %s failed: %s", accel, msg)
	case <-ctx.Done():
		return fmt.Errorf("probe guest under %s printed nothing within %s: %w", accel, probeTimeout,
			errors.Join(ctx.Err()))
	}
}
