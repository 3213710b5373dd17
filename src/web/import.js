document.getElementById('file').addEventListener('change', async ev => {
  const file = ev.target.files[0];
  if (file) document.getElementById('csv').value = await file.text();
});
