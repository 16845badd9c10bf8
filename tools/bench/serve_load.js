#!/usr/bin/env node
// Load test of `gpen serve`: N requests to POST /api/enhance from C concurrent clients, counting
// answers by status, with latency percentiles and the server's resident memory (VmRSS) after a
// warm-up, after the run, and after a second identical run (flat memory = no growth between them).
// Only 200 and the documented 503 (queue full, with Retry-After) are acceptable answers; a client
// that gets 503 waits Retry-After seconds before its next request, as the API asks.
//
//   node tools/bench/serve_load.js --gpen build/gpen [--requests 200] [--clients 8]
//        [--model tests/fixtures/gpen_tiny/gpen_tiny.pth] [--image ../shared/images/lowq_face_512.png]
//        [--workers 1] [--queue 4]
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const repo = path.resolve(__dirname, '..', '..');
const args = {
  gpen: path.join(repo, 'build', 'gpen'),
  model: path.join(repo, 'tests', 'fixtures', 'gpen_tiny', 'gpen_tiny.pth'),
  detector: path.join(repo, '..', 'shared', 'weights', 'retinaface_mobilenet0.25.pth'),
  image: path.join(repo, '..', 'shared', 'images', 'lowq_face_512.png'),
  requests: '200', clients: '8', workers: '1', queue: '4',
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, '');
  if (!(key in args) || argv[i + 1] === undefined) throw new Error(`unknown or incomplete argument ${argv[i]}`);
  args[key] = argv[i + 1];
}

function startServer(outputs) {
  const proc = spawn(args.gpen, ['serve', '--port', '0', '--quiet', '--model', args.model, '--detector', args.detector,
    '--outputs', outputs, '--workers', args.workers, '--queue', args.queue], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^\s]+?)\/?\s/);
      if (m) resolve({ proc, url: m[1] });
    });
    proc.on('exit', (code) => reject(new Error(`gpen serve exited with ${code}`)));
  });
}

function rssMiB(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : NaN;
}

async function run(url, total, clients, image) {
  const counts = {};
  const latencies = [];
  let next = 0;
  const t0 = performance.now();
  async function client() {
    while (next < total) {
      next++;
      const form = new FormData();
      form.append('image', new Blob([image], { type: 'image/png' }), path.basename(args.image));
      const start = performance.now();
      let status;
      let retryAfter = 0;
      try {
        const res = await fetch(url + '/api/enhance', { method: 'POST', body: form });
        await res.arrayBuffer();
        if (res.status === 503) retryAfter = Number(res.headers.get('Retry-After')) || 0;
        status = res.status === 503 && !res.headers.get('Retry-After') ? '503 without Retry-After' : String(res.status);
      } catch (e) {
        status = 'network error: ' + e.message;
      }
      if (status === '200') latencies.push(performance.now() - start);
      counts[status] = (counts[status] || 0) + 1;
      // A well-behaved client waits as told before its next request.
      if (retryAfter > 0) await new Promise((r) => setTimeout(r, retryAfter * 1000));
    }
  }
  await Promise.all(Array.from({ length: clients }, client));
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : NaN);
  return { counts, seconds, p50: pct(0.5), p95: pct(0.95), max: latencies[latencies.length - 1] };
}

async function main() {
  const image = fs.readFileSync(args.image);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gpen_load_'));
  const server = await startServer(path.join(work, 'outputs'));
  try {
    const total = Number(args.requests);
    const clients = Number(args.clients);
    await run(server.url, clients, 1, image);  // warm-up: compiled graphs, allocator pools
    const rssWarm = rssMiB(server.proc.pid);
    const first = await run(server.url, total, clients, image);
    const rssFirst = rssMiB(server.proc.pid);
    const second = await run(server.url, total, clients, image);
    const rssSecond = rssMiB(server.proc.pid);
    const bad = [first, second].some((r) => Object.keys(r.counts).some((k) => k !== '200' && k !== '503'));
    const line = (name, r) => `${name}: ${JSON.stringify(r.counts)} in ${r.seconds.toFixed(1)} s ` +
      `(${(r.counts['200'] || 0) / r.seconds ? ((r.counts['200'] || 0) / r.seconds).toFixed(2) : 0} images/s), ` +
      `latency of 200s p50 ${r.p50.toFixed(0)} ms, p95 ${r.p95.toFixed(0)} ms, max ${r.max.toFixed(0)} ms`;
    console.log(`gpen serve load: ${total} requests x 2 runs, ${clients} clients, ${args.workers} worker(s), ` +
      `queue ${args.queue}, model ${path.basename(args.model)}, image ${path.basename(args.image)}, ${os.cpus().length} CPUs`);
    console.log(line('run 1', first));
    console.log(line('run 2', second));
    console.log(`server RSS: ${rssWarm.toFixed(1)} MiB after warm-up, ${rssFirst.toFixed(1)} MiB after run 1, ` +
      `${rssSecond.toFixed(1)} MiB after run 2`);
    console.log(`saved outputs: ${fs.readdirSync(path.join(work, 'outputs')).length}`);
    if (bad) {
      console.error('FAIL: answers other than 200 and 503 with Retry-After');
      process.exitCode = 1;
    }
  } finally {
    server.proc.kill('SIGTERM');
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
