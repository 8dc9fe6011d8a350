// The noVNC console of one VM at /console/<vm-id>. The first connection uses
// the single-use token that `vmctl console` or the API put in the fragment
// (#token=…, never sent to a server); every later one fetches a fresh token
// with the session cookie, since a token works once and for 60 s.
import RFB from '@novnc/novnc';
import { $, ApiError, get } from './api.js';

const vmId = decodeURIComponent(location.pathname.split('/')[2] || '');
const screen = $('#screen');
const statusEl = $('#status');
let rfb = null;
let generation = 0;
let failure = '';

function setStatus(state, text) {
  statusEl.textContent = text;
  statusEl.className = 'status status-' + state;
  document.body.dataset.console = state;
  $('#ctrl-alt-del').disabled = state !== 'connected';
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

function connect(url) {
  const gen = ++generation;
  failure = '';
  setStatus('connecting', 'Connecting…');
  let r;
  try {
    r = new RFB(screen, url, { wsProtocols: ['binary'], shared: true });
  } catch (e) {
    setStatus('disconnected', 'Disconnected: ' + e.message);
    return;
  }
  rfb = r;
  r.background = '#0b0f17';
  r.focusOnClick = true;
  applyScale();
  r.addEventListener('connect', () => {
    if (gen !== generation) return;
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
  r.addEventListener('desktopname', (ev) => {
    if (ev.detail.name) document.title = `${ev.detail.name} · Console · vmd`;
  });
  r.addEventListener('clipboard', (ev) => {
    $('#paste-text').value = ev.detail.text;
  });
  r.addEventListener('disconnect', async (ev) => {
    if (gen !== generation) return;
    rfb = null;
    if (ev.detail.clean && !failure) {
      setStatus('disconnected', 'Disconnected');
      return;
    }
    const reason = failure || (await why()) || 'connection lost or refused';
    if (gen === generation) setStatus('disconnected', 'Disconnected: ' + reason);
  });
}

async function reconnect() {
  const gen = ++generation; // Silences the old connection's disconnect event.
  if (rfb) {
    rfb.disconnect();
    rfb = null;
  }
  setStatus('connecting', 'Getting a console token…');
  try {
    const c = await get(`/vms/${encodeURIComponent(vmId)}/console`);
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
$('#reconnect').addEventListener('click', reconnect);
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
  if (rfb) rfb.clipboardPasteFrom($('#paste-text').value);
});
$('#paste-type').addEventListener('click', async () => {
  await typeText($('#paste-text').value);
  if (rfb) rfb.focus();
});

$('#vm-title').textContent = vmId;
get(`/vms/${encodeURIComponent(vmId)}`).then(
  (vm) => {
    $('#vm-title').textContent = vm.name;
    document.title = `${vm.name} · Console · vmd`;
  },
  () => {},
);

const fragment = new URLSearchParams(location.hash.slice(1));
const first = fragment.get('token');
// The token is single-use: drop it from the address bar and history.
if (location.hash) history.replaceState(null, '', location.pathname + location.search);
if (!vmId) setStatus('disconnected', 'Disconnected: no VM in the address');
else if (first) connect(wsURLFor(first));
else reconnect();
