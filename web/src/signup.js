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
