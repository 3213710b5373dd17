const identity = document.getElementById('identity');
const text = document.getElementById('text');
const log = document.getElementById('log');
const errorBox = document.getElementById('error');
identity.value = new URLSearchParams(location.search).get('identity')
  || ('+1555' + String(Math.floor(100000 + Math.random() * 900000)));

let shown = '';
async function refresh() {
  const res = await fetch('/api/tester/conversations/' + encodeURIComponent(identity.value.trim()));
  if (!res.ok) return;
  const body = await res.json();
  const seen = JSON.stringify(body.messages.map(m => m.id));
  if (seen === shown) return;
  shown = seen;
  log.replaceChildren(...body.messages.map(m => {
    const li = document.createElement('li');
    li.className = m.direction;
    li.textContent = m.text;
    return li;
  }));
}

document.getElementById('send').addEventListener('submit', async ev => {
  ev.preventDefault();
  errorBox.textContent = '';
  const res = await fetch('/api/tester/messages', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ identity: identity.value, text: text.value }),
  });
  if (!res.ok) {
    const body = await res.json().catch(() => ({ error: res.statusText }));
    errorBox.textContent = body.error;
    return;
  }
  text.value = '';
  refresh();
});
identity.addEventListener('change', refresh);
setInterval(refresh, 500);
refresh();
