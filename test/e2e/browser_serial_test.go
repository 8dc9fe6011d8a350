package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestBrowserSerialConsole opens the console page's Serial tab on a running
// guest: xterm.js shows the shell's prompt, what is typed there runs, and
// the page keeps its CSP (newBrowser fails the test on a violation).
func TestBrowserSerialConsole(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[0])
	const email, password = "sam@example.com", "correct horse battery"
	if out, code := v.admin(t, password+"\n", "user", "add", email, "--password-stdin"); code != 0 {
		t.Fatalf("vmd user add: %d %s", code, out)
	}
	b := newBrowser(t)
	b.login(v.URL, email, password)
	b.createVM("ser1", 128)
	b.waitJS("VM running", `document.querySelector('tr[data-name="ser1"]')?.dataset.state === 'running'`, 4*time.Minute)
	vmID := value(b, "VM id", chromedp.AttributeValue(chromedp.CSS(`tr[data-name="ser1"]`), "data-vm")).Value
	waitSerial(t, v, vmID, "vmd-tiny: booted", 2*time.Minute)

	b.run("open the console page",
		chromedp.Navigate(v.URL+"/console/"+vmID),
		chromedp.WaitVisible(chromedp.CSS("#tab-serial")),
	)
	// The tab is visible before the page's module script has run: click
	// until the tab has taken it (a click before its listener is lost).
	b.waitJS("the Serial tab selected", `(() => { const t = document.querySelector('#tab-serial');
		if (t.getAttribute('aria-selected') === 'true') return true; t.click(); return false; })()`, 30*time.Second)
	b.waitJS("serial connected", `document.querySelector('#serial').dataset.serial === 'Connected'`, 30*time.Second)
	rows := `(document.querySelector('#serial-term .xterm-rows')?.textContent || '')`
	// An empty line makes the shell print its prompt again.
	b.run("press Enter", chromedp.SendKeys(chromedp.CSS("#serial-term .xterm-helper-textarea"), "\r"))
	b.waitJS("the prompt shows", rows+`.includes('vmd-tiny:')`, 30*time.Second)
	// Inserted as text: SendKeys's key events reach xterm.js twice (keydown
	// and keypress), which a person typing does not cause.
	b.run("type a command",
		chromedp.Focus(chromedp.CSS("#serial-term .xterm-helper-textarea")),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: "echo web-$((5*5))q"})
			return err
		}),
		chromedp.KeyEvent("\r"))
	b.waitJS("its output shows", rows+`.includes('web-25q')`, 30*time.Second)
	waitSerial(t, v, vmID, "web-25q", 10*time.Second)
	// xterm's styles apply although the CSP allows no inline <style>.
	b.waitJS("xterm styled", `document.adoptedStyleSheets.length > 0 && !document.querySelector('style') &&
		getComputedStyle(document.querySelector('#serial-term .xterm-rows')).color !== ''`, 5*time.Second)
	b.shot("browser-serial-console")
}
