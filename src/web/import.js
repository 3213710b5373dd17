document.getElementById('file').addEventListener('change', async ev => {
  const file = ev.target.files[0];
  if (!file) return;
  document.getElementById('csv').value = await file.text();
  // The campaign form keeps the file's name with the campaign.
  const name = document.getElementById('file-name');
  if (name) name.value = file.name;
});
