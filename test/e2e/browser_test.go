package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// chromiumPath is Debian's chromium (hack/install-deps.sh installs it).
const chromiumPath = "/usr/bin/chromium"

// browser is one headless Chromium with a fresh profile. It records page
// errors and CSP violations, which fail the test at its end.
type browser struct {
	t        *testing.T
	ctx      context.Context
	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("headless browser tests need Chromium at %s (make deps installs it): %v", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, 8*time.Minute)
	b := &browser{t: t, ctx: ctx}
	// Start the browser before anything else: a timeout on its first call would end it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.problem(fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, msg))
		case *log.EventEntryAdded:
			if strings.Contains(ev.Entry.Text, "Content Security Policy") {
				b.problem("CSP: " + ev.Entry.Text)
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				if s := strings.Join(parts, " "); strings.Contains(s, "Content Security Policy") {
					b.problem("CSP: " + s)
				}
			}
		}
	})
	if err != nil {
		t.Fatalf("listen to chromium: %v", err)
	}
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, p := range b.problems {
			t.Errorf("browser: %s", p)
		}
	})
	return b
}

func (b *browser) problem(s string) {
	b.mu.Lock()
	b.problems = append(b.problems, s)
	b.mu.Unlock()
}

// run runs browser actions, failing the test with what it was doing.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.shot("failed-" + regexp.MustCompile(`\W+`).ReplaceAllString(what, "-"))
		b.t.Fatalf("browser: %s: %v", what, err)
	}
}

// value runs one browser action that returns a value.
func value[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.shot("failed-" + regexp.MustCompile(`\W+`).ReplaceAllString(what, "-"))
		b.t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// shot keeps a screenshot of the whole page under test-artifacts/.
func (b *browser) shot(name string) string {
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	return saveArtifact(b.t, name+".png", buf)
}

func saveArtifact(t *testing.T, name string, data []byte) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "test-artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("artifact: %s", p)
	return p
}

// waitJS polls a JavaScript expression until it is true.
func (b *browser) waitJS(what, expr string, timeout time.Duration) {
	b.t.Helper()
	var err error
	if !testutil.WaitFor(timeout, func() bool {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer cancel()
		var ok bool
		ok, err = chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		return err == nil && ok
	}) {
		b.shot("failed-" + regexp.MustCompile(`\W+`).ReplaceAllString(what, "-"))
		b.t.Fatalf("browser: %s: not within %s (last error: %v)", what, timeout, err)
	}
}

func (b *browser) login(base, email, password string) {
	b.t.Helper()
	b.run("sign in",
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#vm-table")),
	)
	b.waitJS("dashboard shows the account", fmt.Sprintf(`document.querySelector('#me-email').textContent === %q`, email), 10*time.Second)
}

// createVM fills the dashboard's form and waits for the VM's row.
func (b *browser) createVM(name string, memoryMB int) {
	b.t.Helper()
	b.waitJS("template list", `document.querySelector('#vm-template option[value="tiny"]') !== null`, 10*time.Second)
	b.run("create "+name,
		chromedp.SendKeys(chromedp.CSS("#vm-name"), name),
		chromedp.SetValue(chromedp.CSS("#vm-template"), "tiny"),
		chromedp.SetValue(chromedp.CSS("#vm-memory"), fmt.Sprint(memoryMB)),
		chromedp.Click(chromedp.CSS("#create-submit")),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-name=%q]`, name))),
	)
}

var verifyLink = regexp.MustCompile(`https?://[^\s"<>]+/verify\?token=[A-Za-z0-9_-]+`)

// TestBrowserSignupToDashboard is a new user in a real browser: sign-up on
// the page, the e-mail link, sign-in, the dashboard and a VM created from its form.
func TestBrowserSignupToDashboard(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[0])
	b := newBrowser(t)
	const email, password = "grace@example.com", "correct horse battery"

	// Signed out, the dashboard sends the visitor to sign in.
	b.run("dashboard when signed out",
		chromedp.Navigate(v.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
	)
	b.waitJS("redirect keeps where to return", `location.pathname === '/login' && location.search === '?next=%2F'`, 5*time.Second)

	b.run("sign up",
		chromedp.Navigate(v.URL+"/signup"),
		chromedp.WaitVisible(chromedp.CSS("#signup-form")),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.SendKeys(chromedp.CSS("#password2"), password),
		chromedp.Click(chromedp.CSS("#signup-submit")),
		chromedp.WaitVisible(chromedp.CSS("#signup-done")),
	)
	done := value(b, "sign-up message", chromedp.Text(chromedp.CSS("#signup-done")))
	if !strings.Contains(done, "Check your e-mail") || !strings.Contains(done, email) {
		t.Fatalf("after sign-up the page says %q", done)
	}
	b.shot("browser-signup-done")

	msg := v.SMTP.WaitFor(t, email, 10*time.Second)
	link := verifyLink.FindString(strings.ReplaceAll(msg.Data, "=\r\n", ""))
	if link == "" {
		t.Fatalf("no verification link in the e-mail:\n%s", msg.Data)
	}
	b.run("follow the e-mail link",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS("#verify-next")),
	)
	status := value(b, "verify message", chromedp.Text(chromedp.CSS("#verify-status")))
	if !strings.Contains(status, "verified") {
		t.Fatalf("verify page says %q", status)
	}
	b.waitJS("token dropped from the address bar", `location.search === ''`, 5*time.Second)
	b.shot("browser-verified")

	b.run("sign-in link", chromedp.Click(chromedp.CSS("#signin-link")), chromedp.WaitVisible(chromedp.CSS("#notice")))
	b.run("sign in",
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#vm-table")),
	)
	b.waitJS("dashboard shows the account and quota", fmt.Sprintf(
		`document.querySelector('#me-email').textContent === %q && document.querySelectorAll('#quota .quota-item').length === 4`, email), 10*time.Second)
	b.waitJS("empty list", `!document.querySelector('#vm-empty').hidden`, 5*time.Second)

	b.createVM("web1", 128)
	// The create form's POST carried the CSRF header (the server refuses it otherwise);
	// polling then shows the VM and counts it against the quota.
	b.waitJS("quota counts the VM", `document.querySelector('[data-quota="vms"] .muted').textContent.startsWith('1 of')`, 10*time.Second)
	state := value(b, "VM row", chromedp.Text(chromedp.CSS(`tr[data-name="web1"] .badge`)))
	if !regexp.MustCompile(`^(pending|provisioning|starting|running|stopped|error)$`).MatchString(state) {
		t.Fatalf("VM state badge = %q", state)
	}
	// A bad name is refused beside the name field, before it is sent.
	b.run("create with a bad name",
		chromedp.SendKeys(chromedp.CSS("#vm-name"), "Bad_Name"),
		chromedp.Click(chromedp.CSS("#create-submit")),
		chromedp.WaitVisible(chromedp.CSS("#vm-name-error")),
	)
	b.shot("browser-dashboard")

	b.run("sign out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	b.run("dashboard after sign-out", chromedp.Navigate(v.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	// Without a session or a token in the URL, the console asks to sign in.
	b.run("console when signed out", chromedp.Navigate(v.URL+"/console/vm_nothing"))
	b.waitJS("console asks to sign in", `document.body.dataset.console === 'disconnected' &&
		document.querySelector('#status').textContent.includes('sign in to reconnect')`, 10*time.Second)
	b.shot("browser-console-signed-out")
}

// TestBrowserConsole opens the noVNC console of a running guest: first with
// the token in the URL's fragment, as `vmctl console` opens it, then again
// with the Reconnect button, which fetches a fresh token. It types a command
// on the guest's VGA shell and sees it run on the serial port, and keeps a
// screenshot in which the guest's text screen is visible.
func TestBrowserConsole(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[0])
	const email, password = "lin@example.com", "correct horse battery"
	if out, code := v.admin(t, password+"\n", "user", "add", email, "--password-stdin"); code != 0 {
		t.Fatalf("vmd user add: %d %s", code, out)
	}
	b := newBrowser(t)
	b.login(v.URL, email, password)
	b.createVM("con1", 128)
	b.waitJS("VM running", `document.querySelector('tr[data-name="con1"]')?.dataset.state === 'running'`, 4*time.Minute)
	vmID := value(b, "VM id", chromedp.AttributeValue(chromedp.CSS(`tr[data-name="con1"]`), "data-vm")).Value
	serial := waitSerial(t, v, vmID, "vmd-tiny: booted", 2*time.Minute)
	_ = serial
	// The dashboard's live thumbnail: the guest's screen at its own size.
	b.waitJS("thumbnail of the running VM", `document.querySelector('tr[data-name="con1"] img.thumb')?.naturalWidth === 720`, 30*time.Second)

	// The API's console URL, fetched with the session cookie like any page call.
	url := value(b, "console URL", chromedp.Evaluate[string](fmt.Sprintf(
		`fetch('/api/v1/vms/%s/console', {credentials: 'same-origin'}).then(async r => { const j = await r.json(); if (!r.ok) throw new Error(r.status + ' ' + JSON.stringify(j)); return j.url; })`, vmID),
		chromedp.EvalAwaitPromise))
	if !strings.Contains(url, "/console/"+vmID+"#token=") {
		t.Fatalf("console url = %q", url)
	}
	b.run("open the console", chromedp.Navigate(url))
	b.waitJS("connected with the URL's token", `document.body.dataset.console === 'connected'`, 30*time.Second)
	b.waitJS("token dropped from the address bar", `location.hash === ''`, 5*time.Second)

	b.run("reconnect", chromedp.Click(chromedp.CSS("#reconnect")))
	b.waitJS("connected again with a fresh token", `document.body.dataset.console === 'connected'`, 30*time.Second)

	// A second browser watches view-only; the first one lists it.
	b2 := newBrowser(t)
	b2.login(v.URL, email, password)
	b2.run("open a view-only console", chromedp.Navigate(v.URL+"/console/"+vmID+"?view_only=true"))
	b2.waitJS("view-only connected", `document.body.dataset.console === 'connected' &&
		!document.querySelector('#view-only-note').hidden && document.querySelector('#keys').hidden`, 30*time.Second)
	b.waitJS("presence lists the viewer", `document.querySelector('#presence').dataset.count === '2' &&
		document.querySelector('#presence').textContent.includes('(view-only)')`, 15*time.Second)
	b.shot("browser-console-presence")

	// Type on the VGA shell through noVNC; the guest writes it to its serial port.
	const marker = "vmd-web-typed-42"
	b.run("type a command",
		chromedp.Click(chromedp.CSS("#paste-toggle")),
		chromedp.SetValue(chromedp.CSS("#paste-text"), "echo "+strings.ToUpper(marker[:3])+marker[3:]+" > /dev/ttyS0\n"),
		chromedp.Click(chromedp.CSS("#paste-type")),
		chromedp.Click(chromedp.CSS("#paste-toggle")),
	)
	waitSerial(t, v, vmID, "VMD"+marker[3:], 30*time.Second)

	// The guest's text screen: light glyphs on a dark background.
	deadline := time.Now().Add(30 * time.Second)
	for {
		buf := value(b, "screenshot the console", chromedp.Screenshot(chromedp.CSS("#screen canvas")))
		frac, rows, err := textScreen(buf)
		if err != nil {
			t.Fatal(err)
		}
		if frac > 0.002 && frac < 0.4 && rows >= 3 {
			p := saveArtifact(t, "browser-console.png", buf)
			t.Logf("console: %.2f%% lit pixels in %d text rows (%s)", frac*100, rows, p)
			break
		}
		if time.Now().After(deadline) {
			saveArtifact(t, "failed-browser-console.png", buf)
			t.Fatalf("console screenshot shows no text screen: %.3f%% lit pixels, %d rows", frac*100, rows)
		}
		time.Sleep(time.Second) // paces the screenshots (each is a PNG of the canvas), not a wait for something
	}
	b.shot("browser-console-page")
}

// textScreen measures a screenshot: the share of light pixels, and how many
// separate bands of rows hold any (lines of text, roughly).
func textScreen(pngData []byte) (float64, int, error) {
	img, err := png.Decode(bytes.NewReader(pngData))
	if err != nil {
		return 0, 0, fmt.Errorf("decode screenshot: %w", err)
	}
	r := img.Bounds()
	if r.Dx() < 100 || r.Dy() < 100 {
		return 0, 0, fmt.Errorf("console canvas is only %v", r.Size())
	}
	lit, bands, inBand := 0, 0, false
	for y := r.Min.Y; y < r.Max.Y; y++ {
		rowLit := 0
		for x := r.Min.X; x < r.Max.X; x++ {
			if light(img, x, y) {
				rowLit++
			}
		}
		lit += rowLit
		if rowLit > 0 && !inBand {
			bands++
		}
		inBand = rowLit > 0
	}
	return float64(lit) / float64(r.Dx()*r.Dy()), bands, nil
}

func light(img image.Image, x, y int) bool {
	cr, cg, cb, _ := img.At(x, y).RGBA()
	return cr>>8 > 110 && cg>>8 > 110 && cb>>8 > 110
}

// waitSerial waits until the VM's serial log holds want.
func waitSerial(t *testing.T, v *vmd, vmID, want string, timeout time.Duration) string {
	t.Helper()
	var last string
	if testutil.WaitFor(timeout, func() bool {
		paths, _ := filepath.Glob(filepath.Join(v.DataDir, "vms", "*", vmID, "serial.log"))
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil {
				last = string(b)
				if strings.Contains(last, want) {
					return true
				}
			}
		}
		return false
	}) {
		return last
	}
	t.Fatalf("serial log of %s has no %q within %s; it has:\n%s", vmID, want, timeout, last)
	return ""
}
