package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// typeIn types text into the guest through the console page's "Type it".
func (b *browser) typeIn(text string) {
	b.t.Helper()
	b.run("type "+strings.TrimSpace(text),
		chromedp.Click(chromedp.CSS("#paste-toggle")),
		chromedp.SetValue(chromedp.CSS("#paste-text"), text),
		chromedp.Click(chromedp.CSS("#paste-type")),
		chromedp.Click(chromedp.CSS("#paste-toggle")),
	)
}

// serialCount counts want in a VM's serial log.
func serialCount(t *testing.T, v *vmd, vmID, want string) int {
	paths, _ := filepath.Glob(filepath.Join(v.DataDir, "vms", "*", vmID, "serial.log"))
	n := 0
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			n += strings.Count(string(b), want)
		}
	}
	return n
}

func waitSerialCount(t *testing.T, v *vmd, vmID, want string, n int, timeout time.Duration) {
	t.Helper()
	testutil.Eventually(t, timeout, fmt.Sprintf("%d× %q on the serial port", n, want), func() bool { return serialCount(t, v, vmID, want) >= n })
}

// TestBrowserConsoleHeals: the console page comes back on its own after a
// guest reboot and a vmd restart, and after the guest powers itself off
// (Ctrl-Alt-Del in the tiny image) it says so and offers Start.
func TestBrowserConsoleHeals(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[0])
	const email, password = "heal@example.com", "correct horse battery"
	if out, code := v.admin(t, password+"\n", "user", "add", email, "--password-stdin"); code != 0 {
		t.Fatalf("vmd user add: %d %s", code, out)
	}
	b := newBrowser(t)
	b.login(v.URL, email, password)
	b.createVM("heal", 128)
	b.waitJS("VM running", `document.querySelector('tr[data-name="heal"]')?.dataset.state === 'running'`, 4*time.Minute)
	vmID := value(b, "VM id", chromedp.AttributeValue(chromedp.CSS(`tr[data-name="heal"]`), "data-vm")).Value
	const booted = "vmd-tiny: booted"
	waitSerialCount(t, v, vmID, booted, 1, 2*time.Minute)
	// The guest makes its SSH host keys after the shell is up, and keys
	// typed while a CPU-starved guest does so are lost (QEMU's PS/2 queue
	// is short): type once the last key line is out.
	const lastBootLine = "vmd-tiny: hostkey ecdsa-sha2-nistp256 "
	waitSerialCount(t, v, vmID, lastBootLine, 1, 2*time.Minute)

	b.run("open the console", chromedp.Navigate(v.URL+"/console/"+vmID))
	b.waitJS("connected", `document.body.dataset.console === 'connected'`, 30*time.Second)
	// Counts the connections the page makes, to tell a reconnect from none.
	b.run("count connections", chromedp.Evaluate[chromedp.Void](`(() => { window.opened = 0; const W = window.WebSocket;
		window.WebSocket = function (...a) { window.opened++; return new W(...a); }; window.WebSocket.CONNECTING = W.CONNECTING; })()`))

	t.Run("guest reboot", func(t *testing.T) {
		b.typeIn("reboot\n")
		waitSerialCount(t, v, vmID, booted, 2, 2*time.Minute)
		waitSerialCount(t, v, vmID, lastBootLine, 2, 2*time.Minute)
		b.waitJS("connected after the reboot", `document.body.dataset.console === 'connected'`, 60*time.Second)
		b.typeIn("echo HEAL-AFTER-REBOOT > /dev/ttyS0\n")
		waitSerial(t, v, vmID, "HEAL-AFTER-REBOOT", 30*time.Second)
	})

	t.Run("vmd restart", func(t *testing.T) {
		before := value(b, "connections so far", chromedp.Evaluate[int](`window.opened`))
		v.stop()
		b.waitJS("says why and that it reconnects", `document.body.dataset.console === 'reconnecting' &&
			document.querySelector('#status').textContent.includes('server restarting')`, 15*time.Second)
		b.shot("console-reconnecting")
		v.start()
		b.waitJS("connected again without a click", `document.body.dataset.console === 'connected'`, 90*time.Second)
		if after := value(b, "connections now", chromedp.Evaluate[int](`window.opened`)); after <= before {
			t.Fatalf("connections %d then %d: no reconnect", before, after)
		}
		b.typeIn("echo HEAL-AFTER-RESTART > /dev/ttyS0\n")
		waitSerial(t, v, vmID, "HEAL-AFTER-RESTART", 30*time.Second)
		buf := value(b, "screenshot the console", chromedp.Screenshot(chromedp.CSS("#screen canvas")))
		if frac, rows, err := textScreen(buf); err != nil || frac < 0.002 || rows < 3 {
			saveArtifact(t, "failed-heal-canvas.png", buf)
			t.Fatalf("canvas after the restart: %.3f%% lit, %d rows, %v", frac*100, rows, err)
		}
	})

	t.Run("vmd restart, in the VM page", func(t *testing.T) {
		b.run("open the VM page", chromedp.Navigate(v.URL+"/vms/heal"))
		b.waitJS("embedded console shows the screen", embeddedScreen, 60*time.Second)
		status := `document.querySelector('#vm-console-frame').contentDocument.querySelector('#status').textContent`
		v.stop()
		b.waitJS("says why inside the VM page", `document.querySelector('#vm-console-frame').contentDocument.body.dataset.console === 'reconnecting' &&
			`+status+`.includes('server restarting')`, 15*time.Second)
		b.shot("vm-page-console-reconnecting")
		v.start()
		b.waitJS("embedded console back without a click", embeddedScreen, 90*time.Second)
		b.run("back to the console page", chromedp.Navigate(v.URL+"/console/"+vmID))
		b.waitJS("console page connected", `document.body.dataset.console === 'connected'`, 30*time.Second)
	})

	t.Run("ctrl-alt-del powers off, Start brings it back", func(t *testing.T) {
		b.run("Ctrl-Alt-Del", chromedp.Click(chromedp.CSS("#ctrl-alt-del")))
		b.waitJS("says the guest powered off and offers Start", `!document.querySelector('#vm-off').hidden &&
			document.querySelector('#vm-off-text').textContent.includes('powered itself off') &&
			!document.querySelector('#vm-start').hidden && document.body.dataset.console === 'disconnected'`, 90*time.Second)
		b.shot("console-powered-off")
		b.run("Start", chromedp.Click(chromedp.CSS("#vm-start")))
		b.waitJS("connected to the started VM", `document.body.dataset.console === 'connected' && document.querySelector('#vm-off').hidden`, 3*time.Minute)
		waitSerialCount(t, v, vmID, booted, 3, 2*time.Minute)
	})
}
