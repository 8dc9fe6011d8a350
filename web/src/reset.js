// The password-reset link lands here. As on the verify page, the token is
// posted by this script (a mail scanner fetching the link does not use it)
// and dropped from the address bar at once.
import { $, busy, fieldError, post, showError, showFieldErrors } from './api.js';

const token = new URLSearchParams(location.search).get('token') || '';
history.replaceState(null, '', location.pathname);

const pw = $('#password');
const pw2 = $('#password2');

if (!token) {
  showError($('#error'), 'This link has no reset token. Open the link from the e-mail again, or ask for a new one.');
  $('#reset-submit').disabled = true;
  $('#reset-again').hidden = false;
}

$('#reset-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  $('#error').hidden = true;
  fieldError(pw, '');
  fieldError(pw2, '');
  if ([...pw.value].length < 8) {
    fieldError(pw, 'must be at least 8 characters');
    pw.focus();
    return;
  }
  if (pw.value !== pw2.value) {
    fieldError(pw2, 'the two passwords differ');
    pw2.focus();
    return;
  }
  let spent = false;
  busy($('#reset-submit'), async () => {
    try {
      await post('/auth/password/reset', { token, new_password: pw.value });
      location.replace('/login?reset=1');
    } catch (e) {
      showFieldErrors({ new_password: pw }, $('#error'), e);
      // A used or expired link cannot be retried: offer a new one.
      if (e.code === 'invalid_token') {
        $('#reset-again').hidden = false;
        spent = true;
      }
    }
  }).then(() => {
    if (spent) $('#reset-submit').disabled = true;
  });
});
