// One VM's page at /vms/<name>: its state, resources, addresses and
// snapshots (when the server reports them), events, serial log tail (when
// the server has logs) and the console embedded: the console page in a
// same-origin frame (the server lets only this origin frame it), which
// reconnects by itself and shows why it dropped.
import { $, ApiError, announceLogout, el, get, post, showError } from './api.js';

const ref = decodeURIComponent(location.pathname.split('/')[2] || '');
let vmId = '';
let logsMissing = false;

function fmtMB(n) {
  return n >= 1024 && n % 1024 === 0 ? n / 1024 + ' GB' : n + ' MB';
}

function render(vm) {
  vmId = vm.id;
  document.title = `${vm.name} · vmd`;
  $('#vm-name').textContent = vm.name;
  $('#vm-name').title = vm.name;
  $('#vm-state').textContent = vm.state;
  $('#vm-state').className = 'badge state-' + vm.state;
  $('#vm-message').textContent = vm.message && vm.message !== vm.state ? vm.message : '';
  const running = vm.state === 'running';
  const link = $('#vm-console');
  link.href = `/console/${encodeURIComponent(vm.id)}`;
  link.hidden = !running;
  const frame = $('#vm-console-frame');
  if (!frame.src) {
    // Set once: the console inside follows the VM's state on its own.
    frame.title = `Console of ${vm.name}`;
    frame.src = link.href;
    frame.hidden = false;
  }
  $('#vm-start').disabled = !(vm.state === 'stopped' || vm.state === 'error');
  $('#vm-stop').disabled = !running;
  const facts = [
    ['ID', vm.id],
    ['Template', vm.template],
    ['CPUs', String(vm.cpu)],
    ['Memory', fmtMB(vm.memory_mb)],
    ['Disk', vm.disk_gb + ' GB'],
    ['Created', new Date(vm.created_at).toLocaleString()],
  ];
  if (vm.network) facts.push(['Network', vm.network]);
  if (vm.expires_at) facts.push(['Expires', new Date(vm.expires_at).toLocaleString()]);
  $('#vm-resources').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { class: 'ellipsis', title: v }, v)]));
  if (Array.isArray(vm.addresses)) {
    $('#addresses-panel').hidden = false;
    $('#vm-addresses').replaceChildren(...(vm.addresses.length ? vm.addresses.map((a) => el('li', {}, String(a))) : [el('li', { class: 'muted' }, 'not known yet')]));
  }
  if (Array.isArray(vm.snapshots)) {
    $('#snapshots-panel').hidden = false;
    $('#vm-snapshots').replaceChildren(
      ...(vm.snapshots.length ? vm.snapshots.map((s) => el('li', {}, typeof s === 'string' ? s : `${s.name || s.id}${s.created_at ? ' · ' + new Date(s.created_at).toLocaleString() : ''}`)) : [el('li', { class: 'muted' }, 'none')]),
    );
  }
  const evs = (vm.events || []).slice(-50).reverse();
  $('#vm-events').replaceChildren(
    ...evs.map((e) => el('li', {}, el('time', { datetime: e.time }, new Date(e.time).toLocaleString()), ' ', el('span', { class: 'badge state-' + e.state }, e.state), ' ', e.message || '')),
  );
}

async function logs() {
  if (logsMissing || !vmId) return;
  try {
    const res = await fetch(`/api/v1/vms/${encodeURIComponent(vmId)}/logs?tail=40`, { credentials: 'same-origin', cache: 'no-store' });
    if (res.status === 404 || res.status === 405) {
      logsMissing = true; // a vmd without the logs API: no panel
      return;
    }
    if (!res.ok) return;
    $('#vm-logs').textContent = await res.text();
    $('#logs-panel').hidden = false;
  } catch {
    // vmd away: the next refresh tries again.
  }
}

let timer = null;
async function refresh() {
  clearTimeout(timer);
  try {
    const vm = await get(`/vms/${encodeURIComponent(ref)}`);
    render(vm);
    $('#error').hidden = true;
    await logs();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      location.replace('/login?next=' + encodeURIComponent(location.pathname));
      return;
    }
    showError($('#error'), e);
  }
  timer = setTimeout(refresh, 5000);
}

async function act(path) {
  try {
    await post(`/vms/${encodeURIComponent(vmId)}/${path}`);
  } catch (e) {
    showError($('#error'), e);
  }
  refresh();
}
$('#vm-start').addEventListener('click', () => act('start'));
$('#vm-stop').addEventListener('click', () => act('stop'));
$('#logout').addEventListener('click', async () => {
  try {
    await post('/auth/logout');
  } catch {
    // Signed out already.
  }
  announceLogout();
  location.replace('/login');
});
get('/me').then((me) => {
  $('#me-email').textContent = me.email;
  $('#me-email').title = me.email;
}, () => {});
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') refresh();
});
refresh();
