// The e-mail link lands here. The token is sent by POST from this script, so
// a mail scanner that only fetches the link does not use it up.
import { $, busy, fieldError, post, showFieldErrors } from './api.js';

const token = new URLSearchParams(location.search).get('token') || '';
// Keep the token out of the history and of anything copied from the address bar.
history.replaceState(null, '', location.pathname);

const status = $('#verify-status');
// failed says why and offers a new link and the way back to sign in.
function failed(text) {
  status.textContent = text;
  status.className = 'status-line error';
  $('#verify-failed').hidden = false;
}

$('#resend-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const email = $('#email');
  $('#resend-error').hidden = true;
  fieldError(email, '');
  if (!email.value.trim()) {
    fieldError(email, 'enter the address you signed up with');
    email.focus();
    return;
  }
  busy($('#resend-submit'), async () => {
    try {
      await post('/auth/verify/resend', { email: email.value.trim() });
      $('#resend-note').textContent = 'If ' + email.value.trim() + ' has an unverified account, a new link is on its way.';
      $('#resend-note').hidden = false;
    } catch (e) {
      showFieldErrors({ email }, $('#resend-error'), e);
    }
  });
});

if (!token) {
  failed('This link has no verification token. Open the link from the e-mail again.');
} else {
  post('/auth/verify', { token }).then(
    () => {
      status.textContent = 'Your e-mail address is verified. You can now sign in.';
      status.className = 'status-line success';
      $('#verify-next').hidden = false;
    },
    (e) => failed('Verification failed: ' + e.message),
  );
}
