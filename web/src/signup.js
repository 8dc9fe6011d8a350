import { $, busy, post, showError } from './api.js';

$('#signup-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const err = $('#error');
  err.hidden = true;
  const email = $('#email').value.trim();
  const password = $('#password').value;
  if (!email || !password) {
    showError(err, 'Enter an e-mail address and a password.');
    return;
  }
  if (password !== $('#password2').value) {
    showError(err, 'The two passwords differ.');
    return;
  }
  busy($('#signup-submit'), async () => {
    try {
      await post('/auth/signup', { email, password });
      $('#signup-email').textContent = email;
      $('#signup-section').hidden = true;
      $('#signup-done').hidden = false;
    } catch (e) {
      showError(err, e);
    }
  });
});

$('#resend').addEventListener('click', () => {
  $('#resend-error').hidden = true;
  busy($('#resend'), async () => {
    try {
      await post('/auth/verify/resend', { email: $('#signup-email').textContent });
      $('#resend-note').textContent = 'Sent again. It can take a minute; check the spam folder too.';
      $('#resend-note').hidden = false;
    } catch (e) {
      showError($('#resend-error'), e);
    }
  });
});
