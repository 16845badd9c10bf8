// Times ONNX Runtime (CPU) on a GPEN ONNX export: node ort_time.js MODEL.onnx SIZE THREADS RUNS
// Prints one JSON line: median/min/max seconds. Run by tools/bench/peer_ort.sh.
const ort = require('onnxruntime-node');

async function main() {
  const [model, size, threads, runs] = process.argv.slice(2);
  const S = parseInt(size, 10), nThreads = parseInt(threads, 10), nRuns = parseInt(runs, 10);
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: nThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const data = new Float32Array(3 * S * S);
  for (let i = 0; i < data.length; ++i) data[i] = Math.sin(i * 0.001);  // any input: timing only
  const feeds = { input: new ort.Tensor('float32', data, [1, 3, S, S]) };
  await session.run(feeds);  // warm-up
  const times = [];
  for (let r = 0; r < nRuns; ++r) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const sorted = [...times].sort((a, b) => a - b);
  console.log(JSON.stringify({ peer: 'onnxruntime-node ' + require('onnxruntime-node/package.json').version,
    threads: nThreads, runs: nRuns, median_s: sorted[Math.floor(sorted.length / 2)], min_s: sorted[0],
    max_s: sorted[sorted.length - 1], times_s: times }));
}
main().catch((e) => { console.error(e); process.exit(1); });
