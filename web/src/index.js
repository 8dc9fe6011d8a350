// The dashboard: my VMs, my quota and a create form, refreshed every 2 s.
import { $, ApiError, announceLogout, busy, del, el, fieldError, get, post, showError, showFieldErrors } from './api.js';
import { limits, namePattern } from './limits.js';
import { keepThumbs, thumb } from './thumbs.js';

const pollMs = 2000;
const rows = new Map(); // vm id -> {tr, sig}
let timer = null;
// leaving is set once the page sends the user on (account deleted, signed out): a poll still
// out then gets a 401, and its redirect must not replace the page that says why.
let leaving = false;

function leave(url) {
  leaving = true;
  clearTimeout(timer);
  location.replace(url);
}

function toLogin() {
  if (!leaving) leave('/login?next=' + encodeURIComponent(location.pathname));
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

// note is the line under a VM's state badge, or null. A message that only
// repeats the state ("running" under running) or is left over from an
// earlier step is dropped: it is shown while the VM is busy or failed.
// `ready` (readiness from the guest, when the server reports it) turns
// running into booting or ready.
function note(vm) {
  if (vm.state === 'running' && typeof vm.ready === 'boolean') return vm.ready ? 'ready' : 'booting…';
  const m = (vm.message || '').trim();
  if (!m || m.toLowerCase() === vm.state) return null;
  return busyStates.has(vm.state) || vm.state === 'error' || vm.state === 'unknown' ? m : null;
}

function vmRow(vm) {
  const id = encodeURIComponent(vm.id);
  const running = vm.state === 'running';
  const stopped = vm.state === 'stopped' || vm.state === 'error';
  const badge = el('span', { class: `badge state-${vm.state}${busyStates.has(vm.state) ? ' pulse' : ''}` }, vm.state);
  // Each button names its VM, so a screen reader's list of buttons says which.
  const button = (action, label, attrs) =>
    el('button', { type: 'button', class: 'small', 'data-action': action, 'aria-label': `${label} ${vm.name}`, ...attrs }, label);
  const start = button('start', 'Start', { disabled: !stopped });
  start.addEventListener('click', () => act(start, () => post(`/vms/${id}/start`)));
  const stop = button('stop', 'Stop', { disabled: !(running || vm.state === 'starting' || vm.state === 'paused') });
  stop.addEventListener('click', () => act(stop, () => post(`/vms/${id}/stop`)));
  const remove = button('delete', 'Delete', { class: 'small danger', disabled: vm.state === 'deleting' });
  remove.addEventListener('click', () => {
    if (confirm(`Delete the VM "${vm.name}" and its disk? This cannot be undone.`)) act(remove, () => del(`/vms/${id}`));
  });
  const consoleLink = running || vm.state === 'paused' // a paused VM's console shows the frozen screen
    ? el('a', { class: 'button small', href: `/console/${id}`, target: '_blank', rel: 'noopener', 'data-action': 'console', 'aria-label': `Console ${vm.name}` }, 'Console')
    : button('console', 'Console', { disabled: true, title: 'The console opens once the VM runs' });
  const sub = note(vm);
  return el(
    'tr',
    { 'data-vm': vm.id, 'data-name': vm.name, 'data-state': vm.state },
    el(
      'td',
      { class: 'name' },
      el('a', { class: 'vm-link', href: `/vms/${encodeURIComponent(vm.name)}` }, el('strong', { class: 'vm-name ellipsis', title: vm.name }, vm.name)),
      el('div', { class: 'muted mono ellipsis', title: vm.id }, vm.id),
      running ? thumb(vm.id, vm.name) : null,
    ),
    el('td', { 'data-label': 'State' }, el('div', {}, badge, sub ? el('div', { class: 'muted small-text sub', 'data-note': '' }, sub) : null,
      vm.expires_at ? el('div', { class: 'muted small-text', 'data-expires': vm.expires_at }, expiresIn(vm.expires_at)) : null)),
    el('td', { 'data-label': 'Template' }, vm.template),
    el('td', { 'data-label': 'CPUs' }, vm.cpu),
    el('td', { 'data-label': 'Memory' }, fmtMB(vm.memory_mb)),
    el('td', { 'data-label': 'Disk' }, vm.disk_gb + ' GB'),
    el('td', { 'data-label': 'Created', title: new Date(vm.created_at).toLocaleString() }, ago(vm.created_at)),
    el('td', { class: 'actions' }, consoleLink, start, stop, remove),
  );
}

function renderVMs(vms) {
  const body = $('#vm-rows');
  const seen = new Set();
  let prev = null;
  for (const vm of vms) {
    seen.add(vm.id);
    const sig = JSON.stringify([vm.name, vm.state, vm.ready, vm.message, vm.template, vm.cpu, vm.memory_mb, vm.disk_gb, ago(vm.created_at),
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
  keepThumbs(new Set(vms.filter((v) => v.state === 'running').map((v) => v.id)));
}

async function refresh() {
  const [me, vms] = await Promise.all([get('/me'), get('/vms')]);
  $('#me-email').textContent = me.email;
  $('#me-email').title = me.email;
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
    if (!leaving) showError($('#error'), e);
  }
  if (!leaving) timer = setTimeout(poll, pollMs);
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

const createInputs = {
  name: $('#vm-name'),
  template: $('#vm-template'),
  cpu: $('#vm-cpu'),
  memory_mb: $('#vm-memory'),
  disk_gb: $('#vm-disk'),
};

// wholeIn checks a number field: a whole number within the server's bounds.
function wholeIn(raw, { min, max }, unit) {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n)) return [n, `enter a whole number${unit ? ' of ' + unit : ''}`];
  if (n < min || n > max) return [n, `must be between ${min} and ${max}${unit ? ' ' + unit : ''}`];
  return [n, ''];
}

// checkCreate validates the form as the server would, so a 0 does not
// silently become the default size; it returns the request or null.
function checkCreate() {
  const f = createInputs;
  const name = f.name.value.trim();
  const errs = {};
  if (!name) errs.name = 'give the VM a name';
  else if (!namePattern.test(name)) errs.name = 'lower-case letters, digits and "-" (1 to 63), starting and ending with a letter or digit';
  if (!f.template.value) errs.template = 'choose a template';
  const [cpu, cpuErr] = wholeIn(f.cpu.value, limits.cpu, '');
  const [memory, memErr] = wholeIn(f.memory_mb.value, limits.memory_mb, 'MB');
  const [disk, diskErr] = wholeIn(f.disk_gb.value, limits.disk_gb, 'GB');
  if (cpuErr) errs.cpu = cpuErr;
  if (memErr) errs.memory_mb = memErr;
  if (diskErr) errs.disk_gb = diskErr;
  let first = null;
  for (const [k, input] of Object.entries(f)) {
    fieldError(input, errs[k] || '');
    if (errs[k] && !first) first = input;
  }
  if (first) {
    first.focus();
    return null;
  }
  return { name, template: f.template.value, cpu, memory_mb: memory, disk_gb: disk };
}

$('#create-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const err = $('#create-error');
  err.hidden = true;
  const req = checkCreate();
  if (!req) return;
  busy($('#create-submit'), async () => {
    try {
      await post('/vms', req);
      $('#vm-name').value = '';
      await refresh();
    } catch (e) {
      // A field's error goes beside it; others (quota, say) under the form, as the server says them.
      if (!guard(e)) showFieldErrors(createInputs, err, e);
    }
  });
});
for (const input of Object.values(createInputs)) input.addEventListener('input', () => fieldError(input, ''));

$('#delete-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const pw = $('#delete-password');
  const err = $('#delete-error');
  err.hidden = true;
  fieldError(pw, '');
  if (!pw.value) {
    fieldError(pw, 'enter your current password');
    pw.focus();
    return;
  }
  if (!confirm('Delete your account and all its VMs? This cannot be undone.')) return;
  busy($('#delete-submit'), async () => {
    try {
      const r = await del('/me', { password: pw.value });
      announceLogout();
      // 202 "deleting": the VMs are still being torn down; the account follows them.
      leave('/login?deleted=' + (r && r.status === 'deleting' ? 'pending' : '1'));
    } catch (e) {
      if (!guard(e)) showFieldErrors({ password: pw }, err, e);
    }
  });
});

$('#logout').addEventListener('click', async () => {
  try {
    await post('/auth/logout');
  } catch {
    // Signed out already, or vmd is gone: the login page is right either way.
  }
  announceLogout();
  leave('/login');
});

// Pause polling while the tab is hidden; catch up at once when it returns.
document.addEventListener('visibilitychange', () => {
  if (document.hidden) clearTimeout(timer);
  else if (!leaving) poll();
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
