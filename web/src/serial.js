// The Serial tab of the console page: the VM's serial port in xterm.js,
// over the console WebSocket with type=serial (raw bytes both ways). Each
// connection takes a fresh console token with the session cookie. The
// first connection to a VM's port types and later ones only watch (vmd
// says so in the terminal); "Take over typing" reconnects with write=true.
import { Terminal } from '@xterm/xterm';
import { $, get } from './api.js';

const vmId = decodeURIComponent(location.pathname.split('/')[2] || '');
const pane = $('#serial');
const tabScreen = $('#tab-screen');
const tabSerial = $('#tab-serial');
let term = null;
let ws = null;
let generation = 0;

// The page's CSP allows no inline <style>, and xterm.js writes its theme
// and cell sizes into <style> elements, which the browser would refuse. So
// on this page a "style" element is made as an inert <xterm-style> (hidden
// by style.css) and each one's text is mirrored into a constructed style
// sheet, which is not an inline style. Nothing else here makes <style>.
const createElement = Document.prototype.createElement;
document.createElement = function (tag, options) {
  return createElement.call(this, String(tag).toLowerCase() === 'style' ? 'xterm-style' : tag, options);
};

function adoptStyles(root) {
  const sheets = new Map();
  const sync = () => {
    for (const el of root.querySelectorAll('xterm-style')) {
      let sheet = sheets.get(el);
      if (!sheet) {
        sheet = new CSSStyleSheet();
        sheets.set(el, sheet);
        document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
      }
      sheet.replaceSync(el.textContent || '');
    }
  };
  new MutationObserver(sync).observe(root, { subtree: true, childList: true, characterData: true });
  sync();
}

function status(text) {
  $('#serial-status').textContent = text;
  pane.dataset.serial = text;
}

async function connect(write) {
  const gen = ++generation;
  if (ws) ws.close();
  ws = null;
  status('Connecting…');
  let c;
  try {
    c = await get(`/vms/${encodeURIComponent(vmId)}/console`);
  } catch (e) {
    status('Disconnected: ' + e.message);
    return;
  }
  if (gen !== generation) return;
  const sock = new WebSocket(c.ws_url + '&type=serial' + (write ? '&write=true' : ''), ['binary']);
  sock.binaryType = 'arraybuffer';
  ws = sock;
  sock.addEventListener('open', () => {
    status('Connected');
    term.focus();
  });
  sock.addEventListener('message', (ev) => {
    if (ev.data instanceof ArrayBuffer) term.write(new Uint8Array(ev.data));
  });
  sock.addEventListener('close', (ev) => {
    if (gen !== generation) return;
    status('Disconnected' + (ev.reason ? ': ' + ev.reason : ''));
  });
}

function open() {
  if (term) return;
  term = new Terminal({ convertEol: false, cursorBlink: true, scrollback: 5000, fontSize: 14,
    theme: { background: '#0b0f17' } });
  const host = $('#serial-term');
  term.open(host);
  adoptStyles(host);
  const enc = new TextEncoder();
  term.onData((d) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d));
  });
  // The serial port has no window size to tell; the terminal only fits the pane.
  connect(false);
}

function show(serial) {
  tabScreen.setAttribute('aria-selected', String(!serial));
  tabSerial.setAttribute('aria-selected', String(serial));
  $('#screen').hidden = serial;
  $('#keys').hidden = serial;
  pane.hidden = !serial;
  document.body.dataset.tab = serial ? 'serial' : 'screen';
  if (serial) open();
}

tabScreen.addEventListener('click', () => show(false));
tabSerial.addEventListener('click', () => show(true));
$('#serial-write').addEventListener('click', () => term && connect(true));
$('#serial-reconnect').addEventListener('click', () => term && connect(false));
if (new URLSearchParams(location.hash.slice(1)).get('tab') === 'serial') show(true);
