// The console's sign-in: posts the token, or an access key and its secret, and opens the
// console once the server has set its cookie.
'use strict';

async function signIn(form) {
    const error = document.getElementById('login-error');
    error.textContent = '';
    const response = await fetch('/console/login', {
        method: 'POST',
        body: new URLSearchParams(new FormData(form)),
        credentials: 'same-origin',
    });
    if (response.ok) {
        window.location.assign('/console/');
        return;
    }
    error.textContent = response.headers.get('x-kvs-console-error') || `refused (${response.status})`;
}

for (const id of ['token-form', 'key-form']) {
    const form = document.getElementById(id);
    form.addEventListener('submit', (event) => {
        event.preventDefault();
        signIn(form).catch((err) => {
            document.getElementById('login-error').textContent = String(err);
        });
    });
}
