#!/usr/bin/env node
// End-to-end test of the `gpen serve` web page in a real browser: Debian's chromium, headless,
// driven by playwright-core. Starts the server on a free 127.0.0.1 port with the committed tiny
// GPEN, then: single image (upload, enhance, result, download), a TIFF's server-made preview, tab
// switches, a 2-image batch with its zip download, the model settings tab, and a phone-width
// layout check. Fails on any page error or console error (a CSP violation included).
//
//   node tests/e2e/web_ui.test.js --gpen build/gpen [--screenshots docs/screenshots] [--out DIR]
//
// Exit 77 (CTest's "skipped") when chromium or playwright-core is missing, saying which.
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const repo = path.resolve(__dirname, '..', '..');
const shared = path.resolve(repo, '..', 'shared');

function parseArgs() {
  const args = {
    gpen: path.join(repo, 'build', 'gpen'),
    model: path.join(repo, 'tests', 'fixtures', 'gpen_tiny', 'gpen_tiny.pth'),
    detector: path.join(shared, 'weights', 'retinaface_mobilenet0.25.pth'),
    chromium: '/usr/bin/chromium',
    screenshots: '',
    out: '',
  };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in args) || argv[i + 1] === undefined) throw new Error(`unknown or incomplete argument ${argv[i]}`);
    args[key] = path.resolve(argv[i + 1]);
  }
  return args;
}

function skip(reason) {
  console.log(`SKIPPED: ${reason}`);
  process.exit(77);
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
  console.log(`ok - ${message}`);
}

// Starts `gpen serve --port 0` and resolves with its URL once it prints the listening line.
function startServer(args, outputs) {
  const proc = spawn(args.gpen, ['serve', '--port', '0', '--model', args.model, '--detector', args.detector,
    '--outputs', outputs, '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error('gpen serve did not start in 60 s: ' + stderr)), 60000);
    proc.stdout.on('data', (d) => {
      stdout += d;
      const m = stdout.match(/listening on (http:\/\/[^\s]+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, url: m[1] });
      }
    });
    proc.on('exit', (code) => reject(new Error(`gpen serve exited with ${code}: ${stderr}`)));
  });
}

// Number of entries in a zip, from its end-of-central-directory record.
function zipEntryCount(buf) {
  for (let i = buf.length - 22; i >= 0; --i)
    if (buf.readUInt32LE(i) === 0x06054b50) return buf.readUInt16LE(i + 10);
  return -1;
}

// An uncompressed baseline RGB TIFF (little-endian, one strip) of a diagonal gradient.
function rgbTiff(w, h) {
  const tags = [[256, 3, w], [257, 3, h], [258, 3, 8], [259, 3, 1], [262, 3, 2], [273, 4, 0], [277, 3, 3],
    [278, 3, h], [279, 4, w * h * 3]];
  const ifdSize = 2 + tags.length * 12 + 4;
  const bpsAt = 8 + ifdSize, dataAt = bpsAt + 6;  // BitsPerSample's three values, then the pixels
  const buf = Buffer.alloc(dataAt + w * h * 3);
  buf.write('II', 0, 'latin1');
  buf.writeUInt16LE(42, 2);
  buf.writeUInt32LE(8, 4);
  buf.writeUInt16LE(tags.length, 8);
  tags.forEach(([tag, type, value], i) => {
    const at = 10 + i * 12;
    const count = tag === 258 ? 3 : 1;
    buf.writeUInt16LE(tag, at);
    buf.writeUInt16LE(type, at + 2);
    buf.writeUInt32LE(count, at + 4);
    const v = tag === 258 ? bpsAt : tag === 273 ? dataAt : value;
    if (type === 3 && count === 1) buf.writeUInt16LE(v, at + 8); else buf.writeUInt32LE(v, at + 8);
  });
  for (let i = 0; i < 3; ++i) buf.writeUInt16LE(8, bpsAt + 2 * i);
  for (let y = 0; y < h; ++y)
    for (let x = 0; x < w; ++x)
      for (let c = 0; c < 3; ++c) buf[dataAt + (y * w + x) * 3 + c] = (x * 2 + y * (c + 1)) & 255;
  return buf;
}

async function main() {
  const args = parseArgs();
  if (!fs.existsSync(args.chromium)) skip(`${args.chromium} not found (apt-get install chromium)`);
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    skip('playwright-core not installed (run `npm ci` in tests/e2e)');
  }
  for (const f of [args.gpen, args.model, args.detector]) if (!fs.existsSync(f)) throw new Error(`missing ${f}`);

  const work = args.out || fs.mkdtempSync(path.join(os.tmpdir(), 'gpen_e2e_'));
  fs.mkdirSync(work, { recursive: true });
  const outputs = path.join(work, 'outputs');
  fs.rmSync(outputs, { recursive: true, force: true });
  const server = await startServer(args, outputs);
  const browser = await chromium.launch({ executablePath: args.chromium, headless: true, args: ['--no-sandbox'] });
  const problems = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1100, height: 850 }, acceptDownloads: true });
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'error') problems.push('console error: ' + m.text()); });
    const shot = async (name) => {
      if (args.screenshots) await page.screenshot({ path: path.join(args.screenshots, name), fullPage: true });
    };

    await page.goto(server.url);
    await page.waitForSelector('#health.ok');
    check(true, 'page loaded and /api/health answered');

    // --- tab 1: single image ---
    const face = path.join(shared, 'images', 'lowq_face_512.png');
    await page.setInputFiles('#file-single', face);
    await page.click('#enhance');
    await page.waitForFunction(() => document.querySelector('#single-status').textContent.startsWith('Done'), null, { timeout: 60000 });
    const after = await page.$eval('#after', (img) => ({ w: img.naturalWidth, h: img.naturalHeight, src: img.src }));
    check(after.w === 512 && after.h === 512 && after.src.startsWith('blob:'), 'enhance shows the 512x512 result');
    check(await page.isVisible('#compare'), 'before/after comparison is shown');
    await page.fill('#compare-slider', '30');
    const pos = await page.$eval('#compare', (el) => el.style.getPropertyValue('--pos'));
    check(pos === '30%', 'the comparison slider moves the split');
    const [single] = await Promise.all([page.waitForEvent('download'), page.click('#download-single')]);
    check(/_gpen\.png$/.test(single.suggestedFilename()), `download offers ${single.suggestedFilename()}`);
    check(fs.readdirSync(outputs).some((n) => /^outputs_\d{14}(_\d+)?\.png$/.test(n)), 'the result was saved under --outputs');
    await shot('tab1_single.png');

    // --- a TIFF, which chromium does not show: the "before" side comes from /api/preview ---
    const tiffPath = path.join(work, 'scan.tif');
    fs.writeFileSync(tiffPath, rgbTiff(96, 64));
    await page.setInputFiles('#file-single', tiffPath);
    await page.waitForFunction(() => document.querySelector('#before').naturalWidth === 96, null, { timeout: 30000 });
    check(await page.$eval('#before', (img) => img.naturalHeight === 64 && img.src.startsWith('blob:')),
      'a TIFF upload gets a server-made preview as the "before" picture');

    // --- tab 3: advanced ---
    await page.click('#tab-advanced');
    check(await page.isVisible('#panel-advanced') && !(await page.isVisible('#panel-single')), 'tab switch to Advanced');
    await page.fill('#sharpen', '20');
    await shot('tab3_advanced.png');

    // --- tab 2: batch of two ---
    await page.click('#tab-batch');
    check(await page.isVisible('#panel-batch'), 'tab switch to Batch');
    await page.setInputFiles('#file-batch', [face, path.join(shared, 'images', 'group_solvay_1927.png')]);
    await page.click('#start-batch');
    await page.waitForSelector('#download-zip:not([hidden])', { timeout: 120000 });
    check(await page.$$eval('#gallery figure img', (imgs) => imgs.length) === 2, 'the gallery shows both results');
    check(await page.$eval('#batch-progress', (p) => p.value) === 1, 'progress reached 100 %');
    const [zip] = await Promise.all([page.waitForEvent('download'), page.click('#download-zip')]);
    const zipPath = path.join(work, 'batch.zip');
    await zip.saveAs(zipPath);
    const zipBytes = fs.readFileSync(zipPath);
    check(zipBytes.subarray(0, 2).toString() === 'PK' && zipEntryCount(zipBytes) === 2, 'the zip holds the 2 results');
    await shot('tab2_batch.png');

    // --- tab 4: model settings ---
    await page.click('#tab-settings');
    await page.waitForSelector('#models tbody tr');
    check(await page.$eval('#devices tbody', (t) => t.textContent.includes('CPU')), 'the device table lists the CPU');
    check(await page.$eval('#devices tbody', (t) => t.textContent.includes('(in use)')), 'the device table says which device runs the images');
    check(await page.$eval('#last-run tbody', (t) => t.textContent.includes('Images restored')), 'the last-run figures are shown');
    check(await page.$eval('#last-run tbody', (t) => t.textContent.includes(' on CPU')), 'the last image says where it ran');
    await page.selectOption('#output_format', 'webp');
    await page.click('#save-settings');
    await page.waitForFunction(() => document.querySelector('#settings-status').textContent === 'Saved.');
    check(true, 'settings saved');
    await shot('tab4_settings.png');

    // --- phone width ---
    await page.setViewportSize({ width: 390, height: 844 });
    await page.click('#tab-single');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `no horizontal scrolling at 390 px (overflow ${overflow} px)`);
    await shot('phone_single.png');

    check(problems.length === 0, 'no page or console errors' + (problems.length ? ': ' + problems.join('; ') : ''));
  } finally {
    await browser.close();
    server.proc.kill('SIGTERM');
    if (!args.out) fs.rmSync(work, { recursive: true, force: true });
  }
}

main().then(() => console.log('web UI end-to-end: all checks passed'), (e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
