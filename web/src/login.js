import { $, busy, post, safeNext, showError } from './api.js';

const params = new URLSearchParams(location.search);
const notices = {
  verified: 'Your e-mail address is verified. Sign in to continue.',
  reset: 'Your password is changed. Sign in with the new one.',
  deleted: 'Your account and its VMs are deleted.',
};
if (params.get('deleted') === 'pending') notices.deleted = 'Your VMs are being deleted; your account goes with the last of them.';
for (const [k, text] of Object.entries(notices)) {
  if (params.get(k)) {
    const n = $('#notice');
    n.textContent = text;
    n.hidden = false;
  }
}

// The forgot-password page starts with the address typed here.
$('#email').addEventListener('input', () => {
  const email = $('#email').value.trim();
  $('#forgot-link').href = '/forgot' + (email ? '?email=' + encodeURIComponent(email) : '');
});

$('#resend').addEventListener('click', () => {
  const btn = $('#resend');
  busy(btn, async () => {
    try {
      await post('/auth/verify/resend', { email: $('#email').value.trim() });
      const n = $('#notice');
      n.textContent = 'If ' + $('#email').value.trim() + ' has an unverified account, a new verification e-mail is on its way.';
      n.hidden = false;
      $('#error').hidden = true;
      $('#unverified').hidden = true;
    } catch (e) {
      showError($('#error'), e);
    }
  });
});

$('#login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const err = $('#error');
  err.hidden = true;
  $('#unverified').hidden = true;
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
      $('#unverified').hidden = e.code !== 'email_unverified';
    }
  });
});
