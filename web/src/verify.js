// The e-mail link lands here. The token is sent by POST from this script, so
// a mail scanner that only fetches the link does not use it up.
import { $, post } from './api.js';

const token = new URLSearchParams(location.search).get('token') || '';
// Keep the token out of the history and of anything copied from the address bar.
history.replaceState(null, '', location.pathname);

const status = $('#verify-status');
if (!token) {
  status.textContent = 'This link has no verification token. Open the link from the e-mail again.';
  status.className = 'status-line error';
} else {
  post('/auth/verify', { token }).then(
    () => {
      status.textContent = 'Your e-mail address is verified. You can now sign in.';
      status.className = 'status-line success';
      $('#verify-next').hidden = false;
    },
    (e) => {
      status.textContent = 'Verification failed: ' + e.message;
      status.className = 'status-line error';
    },
  );
}
