// gpen web page: four tabs over the JSON API of docs/API.md. No framework, no CDN.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem('gpen-token') || '', singleFile: null, batchFiles: [], urls: [] };

// --- API access -------------------------------------------------------------------------------
// A token can come in the address (#token=...) once; it is then kept for this tab only.
(function tokenFromHash() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    state.token = decodeURIComponent(m[1]);
    sessionStorage.setItem('gpen-token', state.token);
    history.replaceState(null, '', location.pathname);
  }
})();

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers.Authorization = 'Bearer ' + state.token;
  const res = await fetch(path, Object.assign({}, options, { headers }));
  if (res.status === 401) $('token-form').hidden = false;
  return res;
}

async function errorText(res) {
  try {
    const body = await res.json();
    let text = body.error || res.statusText;
    const retry = res.headers.get('Retry-After');
    if (retry) text += ` (retry in ${retry} s)`;
    return text;
  } catch (e) {
    return `HTTP ${res.status}`;
  }
}

function setStatus(id, text, isError = false) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle('error', isError);
}

// Object URLs are released when replaced, so a long session does not keep every image alive.
function objectUrl(blob, group) {
  const url = URL.createObjectURL(blob);
  state.urls.push({ url, group });
  return url;
}
function releaseUrls(group) {
  state.urls = state.urls.filter((u) => {
    if (u.group !== group) return true;
    URL.revokeObjectURL(u.url);
    return false;
  });
}

// --- tabs ---------------------------------------------------------------------------------------
function showTab(tab) {
  for (const t of document.querySelectorAll('[role="tab"]')) {
    const selected = t === tab;
    t.setAttribute('aria-selected', String(selected));
    $(t.getAttribute('aria-controls')).hidden = !selected;
  }
  if (tab.id === 'tab-settings') loadSettingsTab();
}
for (const t of document.querySelectorAll('[role="tab"]')) t.addEventListener('click', () => showTab(t));

// --- the parameters of a request (tab 1 + tab 3) -----------------------------------------------
const numericFields = ['strength', 'denoise', 'sharpen', 'contrast', 'brightness', 'det_threshold', 'min_face', 'max_faces', 'quality'];
const booleanFields = ['skin_protect', 'detail', 'only_center_face', 'single_scale', 'aligned', 'strip_metadata', 'eight_bit'];

function appendParams(form) {
  for (const f of numericFields) form.append(f, $(f).value);
  for (const f of booleanFields) form.append(f, $(f).checked ? 'true' : 'false');
  form.append('mode', $('mode').value);
  form.append('warp', $('warp').value);
  if ($('format').value) form.append('format', $('format').value);
}

// Sliders show their value next to their label.
for (const range of document.querySelectorAll('input[type="range"]')) {
  const out = range.parentElement.querySelector('output');
  if (out) range.addEventListener('input', () => { out.textContent = range.value; });
}

$('reset-advanced').addEventListener('click', () => {
  for (const el of document.querySelectorAll('#panel-advanced input, #panel-advanced select')) {
    if (el.type === 'checkbox') el.checked = el.defaultChecked;
    else el.value = el.defaultValue !== undefined && el.tagName === 'INPUT' ? el.defaultValue : el.options[0].value;
    el.dispatchEvent(new Event('input'));
  }
});

// --- drop zones -----------------------------------------------------------------------------------
// What the server reads (by content; browsers leave the type of .heic files empty on some systems).
function isPhotoFile(f) {
  return /^image\/(png|jpeg|webp|tiff|bmp|x-ms-bmp|heic|heif|avif)$/.test(f.type) ||
    /\.(png|jpe?g|webp|tiff?|bmp|heic|heif|avif)$/i.test(f.name);
}

function dropZone(zoneId, inputId, onFiles) {
  const zone = $(zoneId);
  const input = $(inputId);
  input.addEventListener('change', () => onFiles([...input.files]));
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    onFiles([...e.dataTransfer.files].filter(isPhotoFile));
  });
}

// --- tab 1: single image --------------------------------------------------------------------------
dropZone('drop-single', 'file-single', (files) => {
  state.singleFile = files[0] || null;
  $('enhance').disabled = !state.singleFile;
  $('drop-single-text').textContent = state.singleFile ? state.singleFile.name : 'Drop a photo here or click to choose';
  if (state.singleFile) {
    releaseUrls('single');
    $('before').src = objectUrl(state.singleFile, 'single');
    $('after').removeAttribute('src');
    $('compare').hidden = true;
    $('download-single').hidden = true;
  }
});

// Most browsers show no TIFF or HEIC: the server makes a JPEG of the upload for the "before" side.
$('before').addEventListener('error', async () => {
  const file = state.singleFile;
  if (!file || state.previewOf === file) return;
  state.previewOf = file;
  const form = new FormData();
  form.append('image', file, file.name);
  try {
    const res = await api('/api/preview', { method: 'POST', body: form });
    if (res.ok && state.singleFile === file) $('before').src = objectUrl(await res.blob(), 'single');
  } catch (e) {
    // the result still shows; only the comparison lacks its left side
  }
});

$('compare-slider').addEventListener('input', (e) => {
  $('compare').style.setProperty('--pos', e.target.value + '%');
});

$('enhance').addEventListener('click', async () => {
  if (!state.singleFile) return;
  const form = new FormData();
  form.append('image', state.singleFile, state.singleFile.name);
  appendParams(form);
  $('enhance').disabled = true;
  setStatus('single-status', 'Enhancing…');
  try {
    let res = await api('/api/enhance', { method: 'POST', body: form });
    if (res.status === 202) res = await waitForLargeResult(await res.json());
    if (!res.ok) return setStatus('single-status', await errorText(res), true);
    showSingleResult(await res.blob(), res.headers);
  } catch (e) {
    setStatus('single-status', 'Network error: ' + e.message, true);
  } finally {
    $('enhance').disabled = false;
  }
});

// Large images come back as a job; poll it, then fetch its one image.
async function waitForLargeResult(job) {
  for (;;) {
    const st = await (await api(job.status_url)).json();
    setStatus('single-status', `Enhancing… (${st.status})`);
    if (st.status === 'finished') {
      const img = st.images[0];
      if (img.status !== 'done') return new Response(JSON.stringify({ error: img.error }), { status: 400 });
      return api(img.url);
    }
    await new Promise((r) => setTimeout(r, 700));
  }
}

function showSingleResult(blob, headers) {
  const url = objectUrl(blob, 'single');
  $('after').src = url;
  $('compare').hidden = false;
  $('compare-legend').hidden = false;
  const link = $('download-single');
  const name = (state.singleFile.name.replace(/\.[^.]*$/, '') || 'image') + '_gpen.' + blob.type.split('/')[1].replace('jpeg', 'jpg');
  link.href = url;
  link.download = name;
  link.hidden = false;
  const faces = headers.get('X-Gpen-Faces');
  const profile = headers.get('X-Gpen-Colour-Profile');
  const saved = headers.get('X-Gpen-Saved-As');
  setStatus('single-status', 'Done' + (faces !== null ? `: ${faces} face(s) restored` : '') +
    (profile ? ` (in sRGB, from its ${profile} colour profile)` : '') + (saved ? `, saved as ${saved}` : ''));
}

// --- tab 2: batch ------------------------------------------------------------------------------------
dropZone('drop-batch', 'file-batch', (files) => {
  state.batchFiles = files;
  $('start-batch').disabled = files.length === 0;
  $('drop-batch-text').textContent = files.length ? `${files.length} photo(s) chosen` : 'Drop several photos here or click to choose';
});

$('start-batch').addEventListener('click', async () => {
  const form = new FormData();
  for (const f of state.batchFiles) form.append('images', f, f.name);
  appendParams(form);
  $('start-batch').disabled = true;
  $('download-zip').hidden = true;
  $('gallery').replaceChildren();
  releaseUrls('batch');
  $('batch-progress').hidden = false;
  $('batch-progress').value = 0;
  setStatus('batch-status', 'Uploading…');
  try {
    const res = await api('/api/jobs', { method: 'POST', body: form });
    if (res.status !== 202) return setStatus('batch-status', await errorText(res), true);
    await followJob(await res.json());
  } catch (e) {
    setStatus('batch-status', 'Network error: ' + e.message, true);
  } finally {
    $('start-batch').disabled = state.batchFiles.length === 0;
  }
});

async function followJob(job) {
  const shown = new Set();
  for (;;) {
    const res = await api(job.status_url);
    if (!res.ok) return setStatus('batch-status', await errorText(res), true);
    const st = await res.json();
    $('batch-progress').value = st.progress;
    setStatus('batch-status', st.status === 'queued' ? `Waiting in the queue (position ${st.queue_position + 1})`
      : `${st.done} done, ${st.failed} failed of ${st.total}`);
    for (const img of st.images) {
      if ((img.status === 'done' || img.status === 'failed') && !shown.has(img.index)) {
        shown.add(img.index);
        await addToGallery(img);
      }
    }
    if (st.status === 'finished') {
      if (st.zip_url) await prepareZip(st.zip_url, st.id);
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function addToGallery(img) {
  const figure = document.createElement('figure');
  const caption = document.createElement('figcaption');
  caption.textContent = img.status === 'done' ? `${img.name}: ${img.faces} face(s)` : `${img.name}: ${img.error}`;
  caption.classList.toggle('error', img.status !== 'done');
  if (img.status === 'done') {
    const res = await api(img.url);
    if (res.ok) {
      const el = document.createElement('img');
      el.alt = img.name;
      el.src = objectUrl(await res.blob(), 'batch');
      figure.append(el);
    }
  }
  figure.append(caption);
  $('gallery').append(figure);
}

async function prepareZip(url, id) {
  const res = await api(url);
  if (!res.ok) return setStatus('batch-status', await errorText(res), true);
  const link = $('download-zip');
  link.href = objectUrl(await res.blob(), 'batch');
  link.download = `gpen_${id.slice(0, 8)}.zip`;
  link.hidden = false;
}

// --- tab 4: model settings -----------------------------------------------------------------------------
function cell(row, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  row.append(td);
}

function fillTable(id, rows) {
  const body = $(id).querySelector('tbody');
  body.replaceChildren();
  for (const cells of rows) {
    const tr = document.createElement('tr');
    for (const [text, cls] of cells) cell(tr, text, cls);
    body.append(tr);
  }
}

async function loadSettingsTab() {
  const [health, models] = await Promise.all([api('/api/health'), api('/api/models')]);
  if (!health.ok || !models.ok) return setStatus('settings-status', await errorText(health.ok ? models : health), true);
  const h = await health.json();
  const m = await models.json();
  const device = $('device');
  device.replaceChildren();
  for (const name of ['auto', ...h.devices.map((d) => d.name)]) {
    const d = h.devices.find((x) => x.name === name);
    const opt = new Option(d ? `${name.toUpperCase()}${d.available ? '' : ' — ' + d.detail}` : 'auto', name);
    opt.disabled = d ? !d.available : false;
    device.append(opt);
  }
  device.value = h.settings.device;
  $('batch_size').value = h.settings.batch_size;
  $('output_format').value = h.settings.output_format === 'jpg' ? 'jpeg' : h.settings.output_format;
  $('auto_download').checked = h.settings.auto_download;
  // The GPU's entry, once it is set up, also says how well concurrent photos shared GPEN forwards.
  const deviceDetail = (d) => {
    const parts = [d.detail + (h.device_in_use === d.name ? ' (in use)' : '')];
    if (d.gpen_batches !== undefined) {
      parts.push(`${d.gpen_faces} faces in ${d.gpen_batches} GPEN batches (largest ${d.largest_batch})`);
    }
    if (d.memory_mb) parts.push(`${d.memory_mb.held} MiB held, peak ${d.memory_mb.peak} MiB`);
    return parts.join('; ');
  };
  fillTable('devices', h.devices.map((d) => [[d.name.toUpperCase()], [d.available ? 'yes' : 'no', d.available ? 'present' : 'missing'], [deviceDetail(d)]]));
  $('active-model').textContent = `Active: ${m.gpen.name} — ${m.gpen.description}; detector: ${m.detector || 'none'}`;
  const modelState = (c) => (c.in_use ? 'in use' : c.present ? 'present' : 'missing');
  fillTable('models', m.catalogue.map((c) => [[c.name], [c.description], [modelState(c), c.present ? 'present' : 'missing']]));
  const last = h.queue.last_image;
  const q = h.queue;
  const rows = [['Images restored', q.images_done], ['Images failed', q.images_failed], ['Requests refused (queue full)', q.jobs_refused],
    ['Workers / queue bound', `${q.workers} / ${q.max_queued}`]];
  if (last) {
    rows.unshift(['Last image', `${last.width}×${last.height}, ${last.faces} face(s)` + (last.device ? ` on ${last.device.toUpperCase()}` : '')],
      ['Total', `${last.total_ms.toFixed(0)} ms`],
      ['Detect / align / GPEN / paste', [last.detect_ms, last.align_ms, last.gpen_ms, last.paste_ms].map((x) => x.toFixed(0)).join(' / ') + ' ms']);
  }
  fillTable('last-run', rows.map(([k, v]) => [[k], [String(v)]]));
}

$('save-settings').addEventListener('click', async () => {
  const body = {
    device: $('device').value,
    batch_size: Number($('batch_size').value),
    output_format: $('output_format').value,
    auto_download: $('auto_download').checked,
  };
  const res = await api('/api/settings', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  setStatus('settings-status', res.ok ? 'Saved.' : await errorText(res), !res.ok);
});

// --- token and health ------------------------------------------------------------------------------------
$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  state.token = $('token-input').value;
  sessionStorage.setItem('gpen-token', state.token);
  $('token-form').hidden = true;
  checkHealth();
});

async function checkHealth() {
  const chip = $('health');
  try {
    const res = await api('/api/health');
    if (!res.ok) throw new Error(await errorText(res));
    const h = await res.json();
    chip.textContent = `${h.model.description.split(' ')[0]} · ${h.queue.running} running, ${h.queue.queued} queued`;
    chip.className = 'chip ok';
  } catch (e) {
    chip.textContent = 'offline: ' + e.message;
    chip.className = 'chip bad';
  }
}
checkHealth();
setInterval(checkHealth, 10000);
