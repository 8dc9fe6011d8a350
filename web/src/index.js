// The dashboard: my VMs, my quota and a create form, refreshed every 2 s.
import { $, ApiError, busy, del, el, get, post, showError } from './api.js';

const pollMs = 2000;
const rows = new Map(); // vm id -> {tr, sig}
let timer = null;

function toLogin() {
  location.replace('/login?next=' + encodeURIComponent(location.pathname));
}

// guard sends the user to sign in when the session has gone.
function guard(e) {
  if (e instanceof ApiError && e.status === 401) {
    toLogin();
    return true;
  }
  return false;
}

const quotaItems = [
  ['vms', 'VMs', (n) => String(n)],
  ['cpus', 'CPUs', (n) => String(n)],
  ['memory_mb', 'Memory', fmtMB],
  ['disk_gb', 'Disk', (n) => n + ' GB'],
];

function fmtMB(n) {
  return n >= 1024 && n % 1024 === 0 ? n / 1024 + ' GB' : n + ' MB';
}

function renderQuota(me) {
  const box = $('#quota');
  box.replaceChildren(
    ...quotaItems.map(([key, label, fmt]) => {
      const used = (me.usage && me.usage[key]) || 0;
      const max = (me.quota && me.quota[key]) || 0;
      const pct = max > 0 ? Math.min(100, Math.round((used / max) * 100)) : 0;
      const level = pct >= 90 ? 'high' : pct >= 70 ? 'mid' : 'low';
      const bar = el('div', { class: 'bar-fill ' + level });
      bar.style.width = pct + '%';
      return el(
        'div',
        { class: 'quota-item', 'data-quota': key },
        el('div', { class: 'quota-head' }, el('span', {}, label), el('span', { class: 'muted' }, `${fmt(used)} of ${fmt(max)}`)),
        el('div', { class: 'bar', role: 'progressbar', 'aria-label': label, 'aria-valuemin': '0', 'aria-valuemax': String(max), 'aria-valuenow': String(used) }, bar),
      );
    }),
  );
}

function ago(ts) {
  const s = Math.max(0, (Date.now() - new Date(ts).getTime()) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ago';
  return new Date(ts).toLocaleDateString();
}

// expiresIn is the countdown to a VM's expiry (vmd deletes it then).
function expiresIn(ts) {
  const m = Math.ceil((new Date(ts).getTime() - Date.now()) / 60000);
  return m <= 0 ? 'expires now' : m < 120 ? `expires in ${m} min` : `expires in ${Math.floor(m / 60)} h`;
}

const busyStates = new Set(['pending', 'provisioning', 'starting', 'stopping', 'deleting']);

async function act(button, f) {
  $('#error').hidden = true;
  await busy(button, async () => {
    try {
      await f();
      await refresh();
    } catch (e) {
      if (!guard(e)) showError($('#error'), e);
    }
  });
}

function vmRow(vm) {
  const id = encodeURIComponent(vm.id);
  const running = vm.state === 'running';
  const stopped = vm.state === 'stopped' || vm.state === 'error';
  const badge = el('span', { class: `badge state-${vm.state}${busyStates.has(vm.state) ? ' pulse' : ''}` }, vm.state);
  const start = el('button', { type: 'button', class: 'small', 'data-action': 'start', disabled: !stopped }, 'Start');
  start.addEventListener('click', () => act(start, () => post(`/vms/${id}/start`)));
  const stop = el('button', { type: 'button', class: 'small', 'data-action': 'stop', disabled: !(running || vm.state === 'starting' || vm.state === 'paused') }, 'Stop');
  stop.addEventListener('click', () => act(stop, () => post(`/vms/${id}/stop`)));
  const remove = el('button', { type: 'button', class: 'small danger', 'data-action': 'delete', disabled: vm.state === 'deleting' }, 'Delete');
  remove.addEventListener('click', () => {
    if (confirm(`Delete the VM "${vm.name}" and its disk? This cannot be undone.`)) act(remove, () => del(`/vms/${id}`));
  });
  const consoleLink = running || vm.state === 'paused' // a paused VM's console shows the frozen screen
    ? el('a', { class: 'button small', href: `/console/${id}`, target: '_blank', rel: 'noopener', 'data-action': 'console' }, 'Console')
    : el('button', { type: 'button', class: 'small', disabled: true, 'data-action': 'console', title: 'The console opens once the VM runs' }, 'Console');
  return el(
    'tr',
    { 'data-vm': vm.id, 'data-name': vm.name, 'data-state': vm.state },
    el('td', {}, el('strong', {}, vm.name), el('div', { class: 'muted mono' }, vm.id)),
    el('td', {}, badge, vm.message ? el('div', { class: 'muted small-text' }, vm.message) : null,
      vm.expires_at ? el('div', { class: 'muted small-text', 'data-expires': vm.expires_at }, expiresIn(vm.expires_at)) : null),
    el('td', {}, vm.template),
    el('td', {}, vm.cpu),
    el('td', {}, fmtMB(vm.memory_mb)),
    el('td', {}, vm.disk_gb + ' GB'),
    el('td', { title: new Date(vm.created_at).toLocaleString() }, ago(vm.created_at)),
    el('td', { class: 'actions' }, consoleLink, start, stop, remove),
  );
}

function renderVMs(vms) {
  const body = $('#vm-rows');
  const seen = new Set();
  let prev = null;
  for (const vm of vms) {
    seen.add(vm.id);
    const sig = JSON.stringify([vm.name, vm.state, vm.message, vm.template, vm.cpu, vm.memory_mb, vm.disk_gb, ago(vm.created_at),
      vm.expires_at && expiresIn(vm.expires_at)]);
    let r = rows.get(vm.id);
    // Rebuild a row only when it changed, so a button under the pointer stays put.
    if (!r || r.sig !== sig) {
      const tr = vmRow(vm);
      if (r) r.tr.replaceWith(tr);
      r = { tr, sig };
      rows.set(vm.id, r);
    }
    const want = prev ? prev.nextSibling : body.firstChild;
    if (want !== r.tr) body.insertBefore(r.tr, want);
    prev = r.tr;
  }
  for (const [id, r] of rows) {
    if (!seen.has(id)) {
      r.tr.remove();
      rows.delete(id);
    }
  }
  $('#vm-empty').hidden = vms.length > 0;
}

async function refresh() {
  const [me, vms] = await Promise.all([get('/me'), get('/vms')]);
  $('#me-email').textContent = me.email;
  renderQuota(me);
  renderVMs(vms || []);
}

async function poll() {
  clearTimeout(timer);
  try {
    await refresh();
    $('#error').hidden = true;
  } catch (e) {
    if (guard(e)) return;
    showError($('#error'), e);
  }
  timer = setTimeout(poll, pollMs);
}

async function loadTemplates() {
  const sel = $('#vm-template');
  try {
    const ts = (await get('/templates')) || [];
    sel.replaceChildren(...ts.map((t) => el('option', { value: t.name }, t.name)));
    if (ts.length === 0) sel.append(el('option', { value: '', disabled: true, selected: true }, 'no templates'));
  } catch (e) {
    if (!guard(e)) showError($('#create-error'), e);
  }
}

$('#create-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const err = $('#create-error');
  err.hidden = true;
  const req = {
    name: $('#vm-name').value.trim(),
    template: $('#vm-template').value,
    cpu: Number($('#vm-cpu').value),
    memory_mb: Number($('#vm-memory').value),
    disk_gb: Number($('#vm-disk').value),
  };
  if (!req.name) {
    showError(err, 'Give the VM a name.');
    return;
  }
  busy($('#create-submit'), async () => {
    try {
      await post('/vms', req);
      $('#vm-name').value = '';
      await refresh();
    } catch (e) {
      if (!guard(e)) showError(err, e);
    }
  });
});

$('#logout').addEventListener('click', async () => {
  try {
    await post('/auth/logout');
  } catch {
    // Signed out already, or vmd is gone: the login page is right either way.
  }
  location.replace('/login');
});

// Pause polling while the tab is hidden; catch up at once when it returns.
document.addEventListener('visibilitychange', () => {
  if (document.hidden) clearTimeout(timer);
  else poll();
});

get('/me').then(
  () => {
    loadTemplates();
    poll();
  },
  (e) => {
    if (!guard(e)) showError($('#error'), e);
  },
);
