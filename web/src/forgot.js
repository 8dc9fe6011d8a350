// Forgot password: the server answers the same whether or not the address
// has an account, and so does this page.
import { $, busy, fieldError, post, showFieldErrors } from './api.js';

const email = $('#email');
email.value = new URLSearchParams(location.search).get('email') || '';

$('#forgot-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  $('#error').hidden = true;
  fieldError(email, '');
  const addr = email.value.trim();
  if (!addr) {
    fieldError(email, 'enter the address of your account');
    email.focus();
    return;
  }
  busy($('#forgot-submit'), async () => {
    try {
      await post('/auth/password/forgot', { email: addr });
      $('#forgot-email').textContent = addr;
      $('#forgot-section').hidden = true;
      $('#forgot-done').hidden = false;
    } catch (e) {
      showFieldErrors({ email }, $('#error'), e);
    }
  });
});
