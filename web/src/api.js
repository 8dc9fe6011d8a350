// api.js is the pages' one way to call vmd: same-origin cookies, JSON, the
// CSRF header on unsafe methods, and errors as thrown ApiError values.

const base = '/api/v1';

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    // The request field a validation error is about: the error body's
    // "field", else the "field: …" its message starts with.
    const m = /^([a-z_]+): /.exec(message || '');
    this.field = field || (code === 'validation_failed' && m ? m[1] : '');
  }
}

function cookie(name) {
  for (const part of document.cookie.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return '';
}

export async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (!['GET', 'HEAD', 'OPTIONS'].includes(method)) {
    const csrf = cookie('vmd_csrf');
    if (csrf) headers['X-CSRF-Token'] = csrf;
  }
  let res;
  try {
    res = await fetch(base + path, {
      method,
      headers,
      credentials: 'same-origin',
      cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, 'network', 'cannot reach vmd: ' + err.message);
  }
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {
    // A proxy's HTML error page, say: fall through with no body.
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(res.status, e.code || 'http_' + res.status, e.message || `request failed (${res.status})`, e.field);
  }
  return data;
}

export const get = (p) => call('GET', p);
export const post = (p, b) => call('POST', p, b === undefined ? {} : b);
export const del = (p, b) => call('DELETE', p, b);

// safeNext keeps a post-login redirect on this site: a path, never //host.
export function safeNext(v) {
  return typeof v === 'string' && v.startsWith('/') && !v.startsWith('//') && !v.startsWith('/\\') ? v : '/';
}

export function $(sel, root = document) {
  return root.querySelector(sel);
}

// el builds an element; children are nodes or text, never HTML.
export function el(tag, attrs = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') n.className = v;
    else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return n;
}

export function showError(box, err) {
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = false;
}

// fieldError shows text beside an input (in the element its
// aria-describedby names first) and marks the input invalid; empty text
// clears it.
export function fieldError(input, text) {
  const box = document.getElementById((input.getAttribute('aria-describedby') || '').split(' ')[0]);
  if (text) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
  if (box) {
    box.textContent = text || '';
    box.hidden = !text;
  }
}

// showFieldErrors puts an API error beside the input of its field (inputs
// maps field names to inputs) or, when it names none of them, in box.
// It reports whether the error went to a field.
export function showFieldErrors(inputs, box, err) {
  const input = err instanceof ApiError && err.field ? inputs[err.field] : null;
  if (input) {
    fieldError(input, err.message.replace(/^[a-z_]+: /, ''));
    input.focus();
    return true;
  }
  showError(box, err);
  return false;
}

// The tabs of one browser tell each other about sign-out, so an open
// console closes with the session (BroadcastChannel; the storage event
// where it is missing).
const sessionChannel = 'vmd-session';

export function announceLogout() {
  try {
    const bc = new BroadcastChannel(sessionChannel);
    bc.postMessage({ type: 'logout' });
    bc.close();
  } catch {
    // No BroadcastChannel: the storage event below still reaches the tabs.
  }
  try {
    localStorage.setItem('vmd.logout', String(Date.now()));
  } catch {
    // Storage refused (private mode): nothing more to do.
  }
}

export function onLogout(f) {
  try {
    new BroadcastChannel(sessionChannel).addEventListener('message', (ev) => {
      if (ev.data && ev.data.type === 'logout') f();
    });
  } catch {
    // Fall back to the storage event alone.
  }
  window.addEventListener('storage', (ev) => {
    if (ev.key === 'vmd.logout') f();
  });
}

// busy disables a form's button while a call is out, to avoid double posts.
export async function busy(button, f) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await f();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = label;
  }
}
