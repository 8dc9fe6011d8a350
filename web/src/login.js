import { $, busy, post, safeNext, showError } from './api.js';

const params = new URLSearchParams(location.search);
if (params.get('verified')) {
  const n = $('#notice');
  n.textContent = 'Your e-mail address is verified. Sign in to continue.';
  n.hidden = false;
}

$('#login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const err = $('#error');
  err.hidden = true;
  const email = $('#email').value.trim();
  const password = $('#password').value;
  if (!email || !password) {
    showError(err, 'Enter your e-mail address and password.');
    return;
  }
  busy($('#login-submit'), async () => {
    try {
      await post('/auth/login', { email, password });
      location.assign(safeNext(params.get('next')));
    } catch (e) {
      showError(err, e);
    }
  });
});
