package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// viewport is a browser window size the pages must fit.
type viewport struct {
	w, h int64
	// full: also keep a screenshot and run axe-core at this size.
	full bool
}

// pageSizes: a phone (390 wide), a laptop, and the two ends of the range
// the layout promises (360 to 1440 px) for the overflow check alone.
var pageSizes = []viewport{{390, 844, true}, {1280, 800, true}, {360, 740, false}, {1440, 900, false}}

// axeSource is axe-core's browser build, vendored (see testdata/axe-core/README.md).
func axeSource(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatalf("axe-core: %v", err)
	}
	return string(b)
}

// axeCheck runs axe-core on the current page and fails the test on any
// serious or critical violation, naming the rule and the elements.
func (b *browser) axeCheck(page string) {
	b.t.Helper()
	if !value(b, "axe loaded", chromedp.Evaluate[bool](`typeof axe !== 'undefined'`)) {
		value(b, "inject axe-core", chromedp.Evaluate[bool](axeSource(b.t)+"\n;true"))
	}
	// Frames (the console in the VM page) are checked as pages of their own.
	got := value(b, "run axe on "+page, chromedp.Evaluate[[]string](`axe.run(document, {resultTypes: ['violations'], iframes: false}).then(r =>
		r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
			.map(v => v.impact + ' ' + v.id + ': ' + v.help + ' [' + v.nodes.slice(0, 4).map(n => n.target.join(' ')).join(', ') + ']'))`,
		chromedp.EvalAwaitPromise))
	for _, v := range got {
		b.t.Errorf("axe on %s: %s", page, v)
	}
}

// checkLayout puts the loaded page through every size: no horizontal
// scroll (scrollWidth within innerWidth), then a screenshot and axe-core
// where the size asks for them.
func (b *browser) checkLayout(page string) {
	b.t.Helper()
	for _, vp := range pageSizes {
		b.run(fmt.Sprintf("%s at %d px", page, vp.w), chromedp.EmulateViewport(vp.w, vp.h))
		b.waitJS(fmt.Sprintf("%s fits %d px without horizontal scroll", page, vp.w), fmt.Sprintf(
			`window.innerWidth === %d && document.documentElement.scrollWidth <= window.innerWidth`, vp.w), 5*time.Second)
		if vp.full {
			b.shot(fmt.Sprintf("pages-%s-%d", page, vp.w))
			b.axeCheck(fmt.Sprintf("%s at %d px", page, vp.w))
		}
	}
	b.run("back to the laptop size", chromedp.EmulateViewport(1280, 800))
}

func jsString(s string) string { j, _ := json.Marshal(s); return string(j) }

// embeddedScreen is true when the VM page's framed console is connected and
// its canvas holds the guest's screen: more than one colour, some lit pixels.
const embeddedScreen = `(() => { const f = document.querySelector('#vm-console-frame'); const d = f && f.contentDocument;
	if (f.hidden || !d || !d.body || d.body.dataset.console !== 'connected') return false;
	const c = d.querySelector('#screen canvas'); if (!c || !c.width || !c.height) return false;
	const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; const seen = new Set(); let lit = 0;
	for (let i = 0; i < px.length; i += 16) { seen.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]); if (px[i] + px[i + 1] + px[i + 2] > 384) lit++; }
	return seen.size > 1 && lit > 0; })()`

// TestBrowserPagesFit walks every page at phone and laptop sizes (no
// horizontal scroll, no serious axe-core violation, screenshots in
// test-artifacts/), and checks what a first walk found: a 63-character VM
// name truncated in its card with a tooltip, the create form refusing 0 CPUs
// and 0 MB before sending and putting the server's field errors beside their
// field, a main heading and buttons that name their VM, and a console that
// keeps the VM's name in its title, labels its screen, releases the
// keyboard, confirms a clipboard send and closes on a sign-out elsewhere.
func TestBrowserPagesFit(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[0])
	const email, password = "mae@example.com", "correct horse battery"
	if out, code := v.admin(t, password+"\n", "user", "add", email, "--password-stdin"); code != 0 {
		t.Fatalf("vmd user add: %d %s", code, out)
	}
	// A small memory quota, so a create beyond it still fits the node.
	if out, code := v.admin(t, "", "user", "set-quota", email, "--memory-mb", "512"); code != 0 {
		t.Fatalf("vmd user set-quota: %d %s", code, out)
	}
	b := newBrowser(t)

	for _, p := range []struct{ name, path, ready string }{
		{"login", "/login", "#login-form"},
		{"signup", "/signup", "#signup-form"},
		{"verify-failed", "/verify?token=nope", "#verify-failed"},
		{"forgot", "/forgot", "#forgot-form"},
		{"reset", "/reset?token=nope", "#reset-form"},
	} {
		b.run("open "+p.name, chromedp.Navigate(v.URL+p.path), chromedp.WaitVisible(chromedp.CSS(p.ready)))
		b.checkLayout(p.name)
	}
	b.run("failed verification page", chromedp.Navigate(v.URL+"/verify?token=nope"), chromedp.WaitVisible(chromedp.CSS("#back-to-signin")))
	b.waitJS("failed verification links back to sign in", `document.querySelector('#back-to-signin').getAttribute('href') === '/login' &&
		document.querySelector('#verify-status').textContent.includes('Verification failed')`, 10*time.Second)

	b.login(v.URL, email, password)
	b.waitJS("dashboard has one main heading", `document.querySelectorAll('h1').length === 1 && document.querySelector('main h1') !== null`, 5*time.Second)
	b.waitJS("template list", `document.querySelector('#vm-template option[value="tiny"]') !== null`, 10*time.Second)

	// The form refuses what the server would silently turn into defaults.
	rows := `document.querySelectorAll('#vm-rows tr').length`
	for _, c := range []struct{ field, value, errBox, want string }{
		{"#vm-cpu", "0", "#vm-cpu-error", "between 1 and 64"},
		{"#vm-memory", "0", "#vm-memory-error", "between 64 and 262144 MB"},
		{"#vm-disk", "0", "#vm-disk-error", "between 1 and 2048 GB"},
		{"#vm-cpu", "1.5", "#vm-cpu-error", "whole number"},
	} {
		b.run("create with "+c.field+"="+c.value,
			chromedp.SetValue(chromedp.CSS("#vm-cpu"), "1"), chromedp.SetValue(chromedp.CSS("#vm-memory"), "128"),
			chromedp.SetValue(chromedp.CSS("#vm-disk"), "1"), chromedp.SetValue(chromedp.CSS("#vm-name"), "checked"),
			chromedp.SetValue(chromedp.CSS(c.field), c.value),
			chromedp.Click(chromedp.CSS("#create-submit")))
		b.waitJS(c.field+"="+c.value+" refused beside its field", fmt.Sprintf(
			`!document.querySelector(%q).hidden && document.querySelector(%q).textContent.includes(%q) &&
			 document.querySelector(%q).getAttribute('aria-invalid') === 'true' && %s === 0`,
			c.errBox, c.errBox, c.want, c.field, rows), 5*time.Second)
	}
	b.checkLayout("dashboard-form-errors")
	// The server's own field error (a template it does not have) lands beside the field.
	b.run("create from a template the server lacks",
		chromedp.SetValue(chromedp.CSS("#vm-cpu"), "1"),
		chromedp.Evaluate[chromedp.Void](`(() => { const o = document.createElement('option'); o.value = o.textContent = 'gone';
			document.querySelector('#vm-template').append(o); document.querySelector('#vm-template').value = 'gone'; })()`),
		chromedp.Click(chromedp.CSS("#create-submit")))
	b.waitJS("server field error beside the template", `!document.querySelector('#vm-template-error').hidden &&
		document.querySelector('#vm-template-error').textContent.includes('no template named "gone"') &&
		document.querySelector('#create-error').hidden`, 10*time.Second)
	// A quota refusal is shown as the server words it, under the form.
	b.run("create beyond the memory quota",
		chromedp.SetValue(chromedp.CSS("#vm-template"), "tiny"),
		chromedp.SetValue(chromedp.CSS("#vm-memory"), "1024"),
		chromedp.Click(chromedp.CSS("#create-submit")))
	b.waitJS("quota message shown", `(() => { const boxes = ['#create-error', '#vm-memory-error'].map(s => document.querySelector(s));
		return boxes.some(e => !e.hidden && /quota|left of/.test(e.textContent)); })()`, 10*time.Second)

	long := strings.Repeat("long-name-", 6) + "abc"
	if len(long) != 63 {
		t.Fatalf("name is %d characters", len(long))
	}
	b.run("reset the form", chromedp.Evaluate[chromedp.Void](`document.querySelector('#vm-name').value = ''`))
	b.createVM(long, 128)
	row := fmt.Sprintf(`document.querySelector('tr[data-name=%s]')`, jsString(long))
	nameFits := fmt.Sprintf(`(() => { const tr = %s; const n = tr.querySelector('.vm-name');
		const card = tr.closest('.panel').getBoundingClientRect(); const acts = tr.querySelector('td.actions').getBoundingClientRect();
		return n.title === %s && n.scrollWidth > n.clientWidth && acts.right <= card.right + 0.5 && acts.left >= card.left - 0.5; })()`,
		row, jsString(long))
	b.waitJS("long name truncated, with a tooltip, actions inside the card", nameFits, 5*time.Second)
	for _, action := range []string{"console", "start", "stop", "delete"} {
		b.waitJS(action+" button names its VM", fmt.Sprintf(`%s.querySelector('[data-action=%s]').getAttribute('aria-label') === %s`,
			row, action, jsString(strings.ToUpper(action[:1])+action[1:]+" "+long)), 5*time.Second)
	}
	b.waitJS("VM running", row+`?.dataset.state === 'running'`, 4*time.Minute)
	b.waitJS("no note repeating the state", fmt.Sprintf(`(() => { const n = %s.querySelector('[data-note]');
		return !n || n.textContent.trim() !== 'running'; })()`, row), 5*time.Second)
	for _, vp := range []int64{390, 1280} {
		b.run(fmt.Sprintf("dashboard at %d px", vp), chromedp.EmulateViewport(vp, 800))
		b.waitJS(fmt.Sprintf("long name fits at %d px", vp), nameFits, 5*time.Second)
	}
	b.checkLayout("dashboard")
	vmID := value(b, "VM id", chromedp.Evaluate[string](row+`.dataset.vm`))

	// The VM's own page, reached from its name on the dashboard.
	b.run("open the VM page", chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-vm=%q] a.vm-link`, vmID))),
		chromedp.WaitVisible(chromedp.CSS("#vm-resources dt")))
	b.waitJS("VM page shows the VM and its events", fmt.Sprintf(`document.querySelector('#vm-name').textContent === %s &&
		document.querySelectorAll('#vm-events li').length > 0 && document.title === %s`, jsString(long), jsString(long+" · vmd")), 30*time.Second)
	b.waitJS("VM page's console shows the guest's screen", embeddedScreen, 60*time.Second)
	b.checkLayout("vm")
	for _, vp := range []int64{390, 1280} {
		b.run(fmt.Sprintf("VM page at %d px", vp), chromedp.EmulateViewport(vp, 800))
		b.waitJS(fmt.Sprintf("embedded console fits %d px", vp), `(() => { const f = document.querySelector('#vm-console-frame');
			const d = f.contentDocument, r = f.getBoundingClientRect();
			return r.width > 0 && r.right <= window.innerWidth + 0.5 && d.documentElement.scrollWidth <= d.defaultView.innerWidth; })()`, 5*time.Second)
	}
	b.waitJS("embedded console still shows the screen", embeddedScreen, 10*time.Second)
	b.run("back to the dashboard", chromedp.Navigate(v.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#vm-table")))

	// The console, opened as the dashboard's link opens it (the session fetches the token).
	b.run("open the console", chromedp.Navigate(v.URL+"/console/"+vmID))
	b.waitJS("console connected", `document.body.dataset.console === 'connected'`, 30*time.Second)
	title := long + " · Console · vmd"
	b.waitJS("tab title keeps the VM's name", fmt.Sprintf(`document.title === %s`, jsString(title)), 5*time.Second)
	b.waitJS("screen is labelled", fmt.Sprintf(`(() => { const c = document.querySelector('#screen canvas');
		return c.getAttribute('role') === 'application' && c.getAttribute('aria-label').includes(%s); })()`, jsString(long)), 5*time.Second)
	b.run("shortcut releases the keyboard",
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#screen canvas').focus()`),
		chromedp.KeyEvent("k", chromedp.KeyModifiers(chromedp.ModifierCtrl, chromedp.ModifierAlt, chromedp.ModifierShift)))
	b.waitJS("focus on the keys bar after the shortcut", `document.activeElement && document.activeElement.id === 'release'`, 5*time.Second)
	b.run("sticky Ctrl, then Tab",
		chromedp.Click(chromedp.CSS(`#keys [data-mod="ctrl"]`)))
	b.waitJS("Ctrl held", `document.querySelector('#keys [data-mod="ctrl"]').getAttribute('aria-pressed') === 'true'`, 5*time.Second)
	b.run("send Tab", chromedp.Click(chromedp.CSS(`#keys [data-key="Tab"]`)))
	b.waitJS("Ctrl released with the key", `document.querySelector('#keys [data-mod="ctrl"]').getAttribute('aria-pressed') === 'false'`, 5*time.Second)
	b.run("release button",
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#screen canvas').focus()`),
		chromedp.Click(chromedp.CSS("#release")))
	b.waitJS("focus left the screen", `document.activeElement.id === 'release'`, 5*time.Second)
	b.run("send to clipboard",
		chromedp.Click(chromedp.CSS("#paste-toggle")),
		chromedp.SetValue(chromedp.CSS("#paste-text"), "hello"),
		chromedp.Click(chromedp.CSS("#paste-clipboard")))
	b.waitJS("clipboard send confirmed", `document.querySelector('#paste-note').textContent.includes('Sent 5 characters')`, 5*time.Second)
	b.checkLayout("console")
	b.waitJS("still connected after the checks", `document.body.dataset.console === 'connected'`, 5*time.Second)
	// The server's close reasons reach the page (noVNC alone does not pass them on).
	// The login session ending (here a logout the page itself does not announce)
	// closes the console for good.
	csrf := `decodeURIComponent(document.cookie.split('; ').find(c => c.startsWith('vmd_csrf=')).slice(9))`
	if !value(b, "log out behind the page's back", chromedp.Evaluate[bool](`fetch('/api/v1/auth/logout', {method: 'POST',
		credentials: 'same-origin', headers: {'X-CSRF-Token': `+csrf+`}}).then(r => r.ok)`, chromedp.EvalAwaitPromise)) {
		t.Fatal("logout refused")
	}
	b.waitJS("session end shown, with a way to sign in", `!document.querySelector('#ended').hidden &&
		document.querySelector('#ended').textContent.includes('session ended') &&
		document.querySelector('#ended a')?.textContent === 'Sign in again' &&
		document.querySelector('#status').textContent.startsWith('Disconnected: session ended')`, 15*time.Second)
	b.run("sign in again from the console",
		chromedp.Click(chromedp.CSS("#ended a")),
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#login-submit")))
	b.waitJS("back on the console, connected", fmt.Sprintf(`location.pathname === %s && document.body.dataset.console === 'connected'`,
		jsString("/console/"+vmID)), 30*time.Second)
	// A VM that stops says so.
	if !value(b, "stop the VM", chromedp.Evaluate[bool](fmt.Sprintf(`fetch('/api/v1/vms/%s/stop', {method: 'POST', credentials: 'same-origin',
		headers: {'X-CSRF-Token': %s}}).then(r => r.ok)`, vmID, csrf), chromedp.EvalAwaitPromise)) {
		t.Fatal("stop refused")
	}
	b.waitJS("close reason shown", `document.querySelector('#status').textContent === 'Disconnected: vm stopped' &&
		document.querySelector('#ended').hidden`, 30*time.Second)

	// Sign-out in another tab of the same browser reaches this page too
	// (its console is closed already, so only the broadcast can tell it).
	tab, cancel := chromedp.NewContext(b.ctx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(tab, 60*time.Second)
	defer cancelTimeout()
	if err := chromedp.Do(ctx, chromedp.Navigate(v.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#vm-table")),
		chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-form"))); err != nil {
		t.Fatalf("sign out in a second tab: %v", err)
	}
	b.waitJS("console told of the sign-out", `!document.querySelector('#ended').hidden &&
		document.querySelector('#ended').textContent.includes('signed out in another tab') &&
		document.body.dataset.console === 'disconnected'`, 10*time.Second)
	b.waitJS("console offers to sign in again", `document.querySelector('#ended a')?.textContent === 'Sign in again'`, 10*time.Second)
	b.waitJS("title still the VM's", fmt.Sprintf(`document.title === %s`, jsString(title)), 5*time.Second)
	b.shot("pages-console-ended")

	// Deleting the account deletes its VM first, then the account.
	b.login(v.URL, email, password)
	b.run("delete the account with its VM", chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`),
		chromedp.Click(chromedp.CSS("#delete-account summary")),
		chromedp.SendKeys(chromedp.CSS("#delete-password"), password),
		chromedp.Click(chromedp.CSS("#delete-submit")),
		chromedp.WaitVisible(chromedp.CSS("#notice")))
	testutil.Eventually(t, 2*time.Minute, "account gone with its VM", func() bool {
		out, code := v.admin(t, "", "user", "list")
		return code == 0 && !strings.Contains(out, email)
	})

	if paths, _ := filepath.Glob(filepath.Join(v.DataDir, "vms", "*", vmID)); len(paths) != 0 {
		t.Fatalf("the VM's directory is still there: %v", paths)
	}
}

var resetLink = regexp.MustCompile(`https?://[^\s"<>]+/reset\?token=[A-Za-z0-9_-]+`)

// mailCount is how many e-mails to addr the test SMTP server received.
func mailCount(v *vmd, addr string) int {
	n := 0
	for _, m := range v.SMTP.Messages() {
		for _, to := range m.To {
			if to == addr {
				n++
			}
		}
	}
	return n
}

// TestBrowserAccountRecovery walks the account pages a user needs when
// something went wrong, on both stores: the verification e-mail sent again
// (from the sign-up page and from a failed verification), forgot and reset
// password with clear errors for a short password and a used link, and
// deleting the account.
func TestBrowserAccountRecovery(t *testing.T) {
	parallel(t, 1)
	storetest.Run(t, func(t *testing.T, be storetest.Backend) {
		v := startVMD(t, be)
		b := newBrowser(t)
		const email, password, newPassword = "rex@example.com", "correct horse battery", "a brand new secret"
		waitMails := func(n int) string {
			t.Helper()
			testutil.Eventually(t, 10*time.Second, fmt.Sprintf("e-mail %d to %s", n, email), func() bool { return mailCount(v, email) >= n })
			var got []string
			for _, m := range v.SMTP.Messages() {
				if len(m.To) == 1 && m.To[0] == email {
					got = append(got, strings.ReplaceAll(m.Data, "=\r\n", ""))
				}
			}
			return got[n-1]
		}

		b.run("sign up",
			chromedp.Navigate(v.URL+"/signup"),
			chromedp.WaitVisible(chromedp.CSS("#signup-form")),
			chromedp.SendKeys(chromedp.CSS("#email"), email),
			chromedp.SendKeys(chromedp.CSS("#password"), password),
			chromedp.SendKeys(chromedp.CSS("#password2"), password),
			chromedp.Click(chromedp.CSS("#signup-submit")),
			chromedp.WaitVisible(chromedp.CSS("#signup-done")))
		waitMails(1)
		b.run("send it again", chromedp.Click(chromedp.CSS("#resend")), chromedp.WaitVisible(chromedp.CSS("#resend-note")))
		waitMails(2)

		b.run("a spoilt link", chromedp.Navigate(v.URL+"/verify?token=spoilt"), chromedp.WaitVisible(chromedp.CSS("#verify-failed")))
		b.run("ask for a new link",
			chromedp.SendKeys(chromedp.CSS("#email"), email),
			chromedp.Click(chromedp.CSS("#resend-submit")),
			chromedp.WaitVisible(chromedp.CSS("#resend-note")))
		third := verifyLink.FindString(waitMails(3))
		if third == "" {
			t.Fatal("no verification link in the third e-mail")
		}
		b.run("verify with the newest link", chromedp.Navigate(third), chromedp.WaitVisible(chromedp.CSS("#verify-next")))

		// Forgot password, from the sign-in page, which hands over the address.
		b.run("forgot password",
			chromedp.Navigate(v.URL+"/login"),
			chromedp.WaitVisible(chromedp.CSS("#login-form")),
			chromedp.SendKeys(chromedp.CSS("#email"), email),
			chromedp.Click(chromedp.CSS("#forgot-link")),
			chromedp.WaitVisible(chromedp.CSS("#forgot-form")))
		b.waitJS("address carried over", fmt.Sprintf(`document.querySelector('#email').value === %q`, email), 5*time.Second)
		b.run("ask for the reset link", chromedp.Click(chromedp.CSS("#forgot-submit")), chromedp.WaitVisible(chromedp.CSS("#forgot-done")))
		link := resetLink.FindString(waitMails(4))
		if link == "" {
			t.Fatal("no reset link in the e-mail")
		}
		b.run("open the reset link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#reset-form")))
		b.waitJS("token dropped from the address bar", `location.search === ''`, 5*time.Second)
		b.run("a short password",
			chromedp.SendKeys(chromedp.CSS("#password"), "short"),
			chromedp.SendKeys(chromedp.CSS("#password2"), "short"),
			chromedp.Click(chromedp.CSS("#reset-submit")))
		b.waitJS("short password refused beside the field", `!document.querySelector('#password-error').hidden &&
			document.querySelector('#password-error').textContent.includes('at least 8')`, 5*time.Second)
		b.run("the new password",
			chromedp.SetValue(chromedp.CSS("#password"), newPassword),
			chromedp.SetValue(chromedp.CSS("#password2"), newPassword),
			chromedp.Click(chromedp.CSS("#reset-submit")),
			chromedp.WaitVisible(chromedp.CSS("#notice")))
		b.waitJS("sign-in page says the password changed", `location.pathname === '/login' && document.querySelector('#notice').textContent.includes('password is changed')`, 5*time.Second)

		b.run("the used link again", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#reset-form")),
			chromedp.SendKeys(chromedp.CSS("#password"), "yet another secret"),
			chromedp.SendKeys(chromedp.CSS("#password2"), "yet another secret"),
			chromedp.Click(chromedp.CSS("#reset-submit")),
			chromedp.WaitVisible(chromedp.CSS("#reset-again")))
		b.waitJS("used link refused clearly", `document.querySelector('#error').textContent.includes('invalid, used or expired') &&
			document.querySelector('#reset-submit').disabled`, 5*time.Second)

		b.run("old password no longer works",
			chromedp.Navigate(v.URL+"/login"), chromedp.WaitVisible(chromedp.CSS("#login-form")),
			chromedp.SendKeys(chromedp.CSS("#email"), email), chromedp.SendKeys(chromedp.CSS("#password"), password),
			chromedp.Click(chromedp.CSS("#login-submit")), chromedp.WaitVisible(chromedp.CSS("#error")))
		b.login(v.URL, email, newPassword)

		// Delete the account: the password is asked again.
		b.run("open delete", chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`),
			chromedp.Click(chromedp.CSS("#delete-account summary")),
			chromedp.SendKeys(chromedp.CSS("#delete-password"), "not my password"),
			chromedp.Click(chromedp.CSS("#delete-submit")))
		b.waitJS("wrong password beside the field", `!document.querySelector('#delete-password-error').hidden`, 10*time.Second)
		// A poll that goes out as the delete's answer comes back gets a 401 after the page has
		// moved on; its redirect to sign in must not replace the page that says the account is
		// gone (it once did, under CI's load). The wrapper starts such a poll at that moment.
		b.run("a poll racing the delete", chromedp.Evaluate[chromedp.Void](`(() => {
			const f = window.fetch;
			window.fetch = async (...a) => {
				const r = await f(...a);
				if (a[1] && a[1].method === 'DELETE' && r.ok) document.dispatchEvent(new Event('visibilitychange'));
				return r;
			};
		})()`))
		b.run("delete with the password",
			chromedp.SetValue(chromedp.CSS("#delete-password"), newPassword),
			chromedp.Click(chromedp.CSS("#delete-submit")),
			chromedp.WaitVisible(chromedp.CSS("#notice")))
		b.waitJS("sign-in page says it is gone", `document.querySelector('#notice').textContent.includes('account and its VMs are deleted')`, 5*time.Second)
		out, code := v.admin(t, "", "user", "list")
		if code != 0 || strings.Contains(out, email) {
			t.Fatalf("vmd user list after the deletion (%d):\n%s", code, out)
		}
	})
}
