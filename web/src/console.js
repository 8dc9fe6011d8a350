// The noVNC console of one VM at /console/<vm-id>. The first connection uses
// the single-use token that `vmctl console` or the API put in the fragment
// (#token=…, never sent to a server); every later one fetches a fresh token
// with the session cookie, since a token works once and for 60 s.
import RFB from '@novnc/novnc';
import { $, ApiError, get, onLogout, post } from './api.js';
import './serial.js';

const vmId = decodeURIComponent(location.pathname.split('/')[2] || '');
// A view-only console (?view_only=true, or a share link): the page sends no
// input, and the proxy drops any that a changed page would send.
const fragment = new URLSearchParams(location.hash.slice(1));
const shareKey = 'vmd.console.link.' + vmId;
if (fragment.get('link')) sessionStorage.setItem(shareKey, fragment.get('link'));
const shareLink = sessionStorage.getItem(shareKey) || '';
const viewOnly = new URLSearchParams(location.search).get('view_only') === 'true' || shareLink !== '';
const screen = $('#screen');
const statusEl = $('#status');
let rfb = null;
let generation = 0;
let failure = '';
let vmName = vmId;
// over is set when the session behind the console ended (sign-out in
// another tab, a password change): nothing reconnects on its own then.
let over = false;

// finalClose says whether a WebSocket close code ends the console for good:
// the server closes with 1008 (policy) or an application code 4000-4999,
// with the reason, when the session behind it ended. 4001 (the VM stopped)
// is final for the connection but not the page: it shows the VM's state and
// offers Start. Others (1001 the VM's console closed, 1012 vmd restarting,
// a dropped network) reconnect on their own, with backoff.
const finalClose = (code) => code === 1008 || (code >= 4000 && code <= 4999);
const vmStoppedCode = 4001;

// Automatic reconnects: the delay doubles from 1 s to at most 15 s, and
// resets once a connection stands.
let attempt = 0;
let retryTimer = null;
const retryDelay = () => Math.min(1000 * 2 ** Math.max(0, attempt - 1), 15000);

// Inside the VM page's frame (only this origin may frame the page).
if (window.self !== window.top) document.body.classList.add('embedded');

function setTitle() {
  document.title = `${vmName} · Console · vmd`;
}

function setStatus(state, text) {
  statusEl.textContent = text;
  statusEl.className = 'status status-' + state;
  document.body.dataset.console = state;
  $('#ctrl-alt-del').disabled = state !== 'connected';
}

function cancelRetry() {
  clearTimeout(retryTimer);
  retryTimer = null;
}

// autoRetry says why the console dropped and tries again after a while:
// first the VM's state, then (when it runs) a fresh token and connection.
function autoRetry(reason) {
  if (over) return;
  cancelRetry();
  attempt++;
  const ms = retryDelay();
  setStatus('reconnecting', `Disconnected: ${reason}. Reconnecting in ${Math.round(ms / 1000)} s…`);
  retryTimer = setTimeout(resume, ms);
}

// resume reconnects when the VM runs, keeps waiting while it changes
// state, and offers Start when it has stopped.
async function resume() {
  retryTimer = null;
  if (over) return;
  let vm;
  try {
    vm = await get(`/vms/${encodeURIComponent(vmId)}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return reconnect(true); // says to sign in
    if (e instanceof ApiError && e.status === 404) return ended('the VM no longer exists');
    return autoRetry(e instanceof ApiError && e.status === 0 ? 'vmd is unreachable' : e.message);
  }
  if (vm.state === 'running') return reconnect(true);
  if (vm.state === 'stopped' || vm.state === 'error') return showStopped(vm);
  autoRetry(`the VM is ${vm.state}`);
}

// vmStopped handles the server's "vm stopped" close: it says so, then
// follows the VM until it is stopped (offer Start) or runs again (a restart:
// reconnect).
function vmStopped(reason) {
  cancelRetry();
  generation++;
  rfb = null;
  setStatus('disconnected', 'Disconnected: ' + reason);
  watchStopped();
}

async function watchStopped() {
  const gen = generation;
  for (;;) {
    let vm = null;
    try {
      vm = await get(`/vms/${encodeURIComponent(vmId)}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return ended('the VM no longer exists');
    }
    if (gen !== generation || over) return;
    if (vm && (vm.state === 'stopped' || vm.state === 'error')) return showStopped(vm);
    if (vm && vm.state === 'running') return reconnect(true);
    $('#vm-off-text').textContent = vm ? `The VM is ${vm.state}…` : 'Waiting for vmd…';
    $('#vm-off').hidden = false;
    $('#vm-start').hidden = true;
    await sleep(1000);
  }
}

// what says in words how a stopped VM got there, from its state and message.
function what(vm) {
  const m = (vm.message || '').trim();
  if (/powered off/i.test(m)) return 'The guest powered itself off (a poweroff, or Ctrl-Alt-Del where that powers off).';
  if (vm.state === 'error') return `The VM failed${m ? ': ' + m : ''}.`;
  return `The VM is stopped${m && m.toLowerCase() !== 'stopped' ? ': ' + m : ''}.`;
}

function showStopped(vm) {
  cancelRetry();
  if (!document.body.dataset.console.startsWith('disconnected')) setStatus('disconnected', 'Disconnected: the VM is ' + vm.state);
  $('#vm-off-text').textContent = what(vm);
  $('#vm-start').hidden = false;
  $('#vm-start').disabled = false;
  $('#vm-off').hidden = false;
}

async function startVM() {
  const b = $('#vm-start');
  b.disabled = true;
  $('#vm-off-text').textContent = 'Starting the VM…';
  try {
    await post(`/vms/${encodeURIComponent(vmId)}/start`);
  } catch (e) {
    $('#vm-off-text').textContent = 'Could not start the VM: ' + e.message;
    b.disabled = false;
    return;
  }
  generation++;
  watchStopped();
}

function wsURLFor(token) {
  // The same URL the API hands out as ws_url, for the token from the fragment.
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/api/v1/vms/${encodeURIComponent(vmId)}/console/ws?token=${encodeURIComponent(token)}`;
}

function applyScale() {
  if (!rfb) return;
  const fit = $('#scale').value === 'fit';
  rfb.scaleViewport = fit;
  rfb.clipViewport = false;
  screen.classList.toggle('native', !fit);
}

async function why() {
  // A refused or dropped socket says nothing; the VM's state often does.
  try {
    const vm = await get(`/vms/${encodeURIComponent(vmId)}`);
    if (vm.state !== 'running') return `the VM is ${vm.state}`;
  } catch {
    // No session in this browser: keep the generic reason.
  }
  return '';
}

// ended stops the console for good and says why.
function ended(reason) {
  if (over) return;
  over = true;
  cancelRetry();
  $('#vm-off').hidden = true;
  generation++; // Silences the connection's own disconnect event.
  if (rfb) {
    rfb.disconnect();
    rfb = null;
  }
  setStatus('disconnected', 'Disconnected: ' + reason);
  const box = $('#ended');
  box.replaceChildren(`The console closed: ${reason}.`);
  box.hidden = false;
  // Offer to sign in when the session is what ended.
  get('/me').catch((e) => {
    if (!(e instanceof ApiError && e.status === 401) || box.hidden) return;
    const a = document.createElement('a');
    a.href = '/login?next=' + encodeURIComponent(location.pathname);
    a.textContent = 'Sign in again';
    box.append(' ', a);
  });
}

function connect(url) {
  const gen = ++generation;
  failure = '';
  let closed = null; // the WebSocket's close event: its code and reason
  setStatus('connecting', 'Connecting…');
  let r;
  try {
    // The page opens the WebSocket itself, so it sees the close reason
    // noVNC does not pass on.
    const ws = new WebSocket(url, ['binary']);
    ws.addEventListener('close', (ev) => {
      closed = ev;
    });
    // Watchdog: a socket stuck opening (a half-dead network) is given up.
    setTimeout(() => {
      if (ws.readyState === WebSocket.CONNECTING && gen === generation) ws.close();
    }, 15000);
    r = new RFB(screen, ws, { shared: true });
  } catch (e) {
    setStatus('disconnected', 'Disconnected: ' + e.message);
    return;
  }
  rfb = r;
  r.viewOnly = viewOnly;
  r.background = '#0b0f17';
  r.focusOnClick = true;
  const canvas = screen.querySelector('canvas');
  if (canvas) {
    canvas.setAttribute('role', 'application');
    canvas.setAttribute('aria-label', `Screen of the VM ${vmName}: keys typed here go to the guest`);
    canvas.tabIndex = 0; // Reachable with Tab; Ctrl+Alt+Shift+K leaves it.
  }
  applyScale();
  r.addEventListener('connect', () => {
    if (gen !== generation) return;
    presence();
    attempt = 0;
    $('#vm-off').hidden = true;
    setStatus('connected', 'Connected');
    r.focus();
  });
  r.addEventListener('securityfailure', (ev) => {
    failure = ev.detail.reason || `security failure (status ${ev.detail.status})`;
  });
  r.addEventListener('credentialsrequired', () => {
    failure = 'the VNC server asked for a password';
    r.disconnect();
  });
  // QEMU names its desktop "QEMU (vm_…)"; the tab keeps the VM's name.
  r.addEventListener('desktopname', setTitle);
  r.addEventListener('clipboard', (ev) => {
    $('#paste-text').value = ev.detail.text;
  });
  r.addEventListener('disconnect', async (ev) => {
    if (gen !== generation) return;
    rfb = null;
    if (closed && closed.code === vmStoppedCode) {
      vmStopped(closed.reason || 'vm stopped');
      return;
    }
    if (closed && closed.reason && finalClose(closed.code)) {
      ended(closed.reason);
      return;
    }
    const refused = failure; // a refused handshake would be refused again
    if (closed && closed.reason && !failure) failure = closed.reason;
    if (ev.detail.clean && !failure) {
      setStatus('disconnected', 'Disconnected');
      return;
    }
    const reason = failure || (await why()) || 'connection lost or refused';
    if (gen !== generation) return;
    if (refused) setStatus('disconnected', 'Disconnected: ' + reason);
    else autoRetry(reason);
  });
}

// reconnect fetches a fresh token and connects; auto is set for the
// automatic reconnects, which keep trying while vmd or the VM is away.
async function reconnect(auto) {
  if (auto !== true) {
    over = false; // Asked for by hand: try again, whatever ended the last one.
    attempt = 0;
  }
  if (over) return;
  cancelRetry();
  $('#ended').hidden = true;
  const gen = ++generation; // Silences the old connection's disconnect event.
  if (rfb) {
    rfb.disconnect();
    rfb = null;
  }
  setStatus('connecting', 'Getting a console token…');
  try {
    const c = shareLink
      ? await post(`/vms/${encodeURIComponent(vmId)}/console/link-token`, { link: shareLink })
      : await get(`/vms/${encodeURIComponent(vmId)}/console${viewOnly ? '?view_only=true' : ''}`);
    if (gen !== generation) return;
    connect(c.ws_url);
  } catch (e) {
    if (gen !== generation) return;
    if (e instanceof ApiError && e.status === 401) {
      setStatus('disconnected', 'Disconnected: sign in to reconnect');
      const a = document.createElement('a');
      a.href = '/login?next=' + encodeURIComponent(location.pathname);
      a.textContent = ' Sign in';
      statusEl.append(a);
      return;
    }
    // vmd away (0, 502, 503) or the VM not running yet (409): wait for it.
    if (auto === true && e instanceof ApiError && [0, 409, 502, 503].includes(e.status)) {
      autoRetry(e.status === 0 ? 'vmd is unreachable' : e.message);
      return;
    }
    setStatus('disconnected', 'Disconnected: ' + e.message);
  }
}

// keysym maps a character to its X11 keysym, as RFB key events carry them.
function keysym(ch) {
  const cp = ch.codePointAt(0);
  if (ch === '\n' || ch === '\r') return 0xff0d;
  if (ch === '\t') return 0xff09;
  if (ch === '\b') return 0xff08;
  if ((cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xff)) return cp;
  return 0x01000000 + cp;
}

const shifted = /[A-Z~!@#$%^&*()_+{}|:"<>?]/;
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

async function typeText(text) {
  const r = rfb;
  if (!r) return;
  for (const ch of text.replace(/\r\n/g, '\n')) {
    if (r !== rfb) return;
    const shift = shifted.test(ch);
    if (shift) r.sendKey(0xffe1, 'ShiftLeft', true);
    r.sendKey(keysym(ch), null);
    if (shift) r.sendKey(0xffe1, 'ShiftLeft', false);
    // The guest's keyboard buffer is small; pace long pastes.
    await sleep(8);
  }
}

$('#scale').value = localStorage.getItem('vmd.console.scale') === '1' ? '1' : 'fit';
$('#scale').addEventListener('change', () => {
  localStorage.setItem('vmd.console.scale', $('#scale').value);
  applyScale();
});
$('#ctrl-alt-del').addEventListener('click', () => rfb && rfb.sendCtrlAltDel());
$('#reconnect').addEventListener('click', () => reconnect(false));
$('#vm-start').addEventListener('click', startVM);
// Back online, or back to the tab: a pending reconnect need not wait.
const hurry = () => {
  if (retryTimer && document.visibilityState === 'visible') {
    cancelRetry();
    resume();
  }
};
window.addEventListener('online', hurry);
document.addEventListener('visibilitychange', hurry);
$('#fullscreen').addEventListener('click', () => {
  if (document.fullscreenElement) document.exitFullscreen();
  else screen.requestFullscreen().catch((e) => setStatus(document.body.dataset.console, 'Full screen refused: ' + e.message));
});
document.addEventListener('fullscreenchange', () => {
  $('#fullscreen').textContent = document.fullscreenElement ? 'Exit full screen' : 'Full screen';
  if (rfb) rfb.focus();
});
$('#paste-toggle').addEventListener('click', () => {
  const p = $('#paste');
  p.hidden = !p.hidden;
  $('#paste-toggle').setAttribute('aria-expanded', String(!p.hidden));
  if (!p.hidden) $('#paste-text').focus();
});
$('#paste-clipboard').addEventListener('click', () => {
  const note = $('#paste-note');
  if (!rfb) {
    note.textContent = 'Not connected: nothing sent.';
    return;
  }
  const text = $('#paste-text').value;
  rfb.clipboardPasteFrom(text);
  const n = [...text].length;
  note.textContent = `Sent ${n} character${n === 1 ? '' : 's'} to the guest's clipboard (a clipboard agent in the guest receives it).`;
});
$('#paste-type').addEventListener('click', async () => {
  await typeText($('#paste-text').value);
  if (rfb) rfb.focus();
});

// The extra-keys bar: keys a browser keeps for itself (Tab, Esc, F-keys),
// sticky Ctrl and Alt for the next key, and a way to take the keyboard back.
const keysyms = { Tab: 0xff09, Escape: 0xff1b, ControlLeft: 0xffe3, AltLeft: 0xffe9, ShiftLeft: 0xffe1 };
for (let i = 1; i <= 12; i++) keysyms['F' + i] = 0xffbe + i - 1;
const mods = { ctrl: 'ControlLeft', alt: 'AltLeft' };
const held = new Set();

function setMod(mod, down) {
  const code = mods[mod];
  if (rfb) rfb.sendKey(keysyms[code], code, down);
  if (down) held.add(mod);
  else held.delete(mod);
  $(`#keys [data-mod="${mod}"]`).setAttribute('aria-pressed', String(down));
}

function releaseMods() {
  for (const mod of [...held]) setMod(mod, false);
}

function release() {
  // The guest must not keep modifiers pressed for a chord it never finished.
  if (rfb) {
    for (const code of ['ControlLeft', 'AltLeft', 'ShiftLeft']) rfb.sendKey(keysyms[code], code, false);
    rfb.blur();
  }
  held.clear();
  for (const b of document.querySelectorAll('#keys [data-mod]')) b.setAttribute('aria-pressed', 'false');
  $('#release').focus();
  $('#keys-hint').textContent = 'Keyboard released: Tab moves through the page; click the screen to type in the guest again.';
}

$('#keys').addEventListener('click', (ev) => {
  const b = ev.target.closest('button');
  if (!b || !rfb) return;
  if (b.dataset.mod) {
    setMod(b.dataset.mod, !held.has(b.dataset.mod));
  } else if (b.dataset.key) {
    rfb.sendKey(keysyms[b.dataset.key], b.dataset.key);
    releaseMods();
  } else {
    return;
  }
  // A pointer click gives the keyboard back to the guest; a key press on
  // the bar (detail 0) leaves focus on the bar for keyboard users.
  if (ev.detail > 0) rfb.focus();
});
$('#release').addEventListener('click', (ev) => {
  ev.stopPropagation();
  release();
});
// Seen before noVNC's own listener on the canvas, which would send it on.
window.addEventListener(
  'keydown',
  (ev) => {
    if (ev.ctrlKey && ev.altKey && ev.shiftKey && ev.code === 'KeyK') {
      ev.preventDefault();
      ev.stopPropagation();
      release();
    }
  },
  true,
);
// A held Ctrl or Alt from the bar applies to one key typed into the guest.
window.addEventListener('keyup', (ev) => {
  if (held.size && ev.target instanceof HTMLCanvasElement) setTimeout(releaseMods, 0);
});

if (!shareLink) onLogout(() => ended('you signed out in another tab'));

// Presence: who else has this console open, refreshed while the tab shows.
async function presence() {
  if (document.visibilityState !== 'visible' || shareLink) return;
  try {
    const ss = (await get(`/vms/${encodeURIComponent(vmId)}/console/sessions`)) || [];
    const box = $('#presence');
    const who = ss.map((x) => x.email + (x.link_id ? ' (share link)' : x.view_only ? ' (view-only)' : ''));
    box.textContent = ss.length > 1 ? `${ss.length} connected: ${who.join(', ')}` : '';
    box.title = who.join('\n');
    box.hidden = ss.length <= 1;
    box.dataset.count = String(ss.length);
  } catch {
    // Not signed in (a share link) or vmd away: no list.
  }
}
setInterval(presence, 5000);
document.addEventListener('visibilitychange', presence);
if (viewOnly) {
  document.body.classList.add('view-only');
  $('#keys').hidden = true;
  $('#paste-toggle').hidden = true;
  $('#view-only-note').hidden = false;
}

$('#vm-title').textContent = vmId;
setTitle();
get(`/vms/${encodeURIComponent(vmId)}`).then(
  (vm) => {
    vmName = vm.name;
    $('#vm-title').textContent = vm.name;
    $('#vm-title').title = vm.name;
    setTitle();
    const canvas = screen.querySelector('canvas');
    if (canvas) canvas.setAttribute('aria-label', `Screen of the VM ${vmName}: keys typed here go to the guest`);
  },
  () => {},
);

const first = fragment.get('token');
// The token is single-use: drop it from the address bar and history.
if (location.hash) history.replaceState(null, '', location.pathname + location.search);
if (!vmId) setStatus('disconnected', 'Disconnected: no VM in the address');
else if (first) connect(wsURLFor(first));
else reconnect(false);
