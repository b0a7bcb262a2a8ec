// The in-browser benchmark: engine throughput in WebAssembly and the gzipped size of what the
// demo page downloads. The last line of the output is machine-readable and starts with `BENCH`.

import init, { BenchRun } from "./pkg/vigil_web.js";

// Files the demo page loads, by kind; sizes are measured after gzip in this browser.
const WASM_FILES = ["pkg/vigil_web_bg.wasm"];
const JS_FILES = ["pkg/vigil_web.js", "main.js", "worker.js", "vendor/uPlot.esm.js"];

async function gzippedBytes(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`failed to fetch ${path}: HTTP ${response.status}`);
  const stream = response.body.pipeThrough(new CompressionStream("gzip"));
  const compressed = await new Response(stream).arrayBuffer();
  return compressed.byteLength;
}

async function totalGzippedBytes(paths) {
  const sizes = await Promise.all(paths.map(gzippedBytes));
  return sizes.reduce((a, b) => a + b, 0);
}

// Times only `ingest`, so generating the next batch is not counted.
async function measureThroughput({ things, datapoints, batch }) {
  const run = new BenchRun(things);
  let elapsed = 0;
  let done = 0;
  while (done < datapoints) {
    run.prepare(Math.min(batch, datapoints - done));
    const start = performance.now();
    done += run.ingest();
    elapsed += performance.now() - start;
    // Yield now and then so the page stays alive while the benchmark runs.
    if (done % (batch * 20) === 0) await new Promise((resolve) => setTimeout(resolve, 0));
  }
  const stateBytes = run.snapshotBytes() / things;
  run.free();
  return { perSecond: done / (elapsed / 1000), stateBytes };
}

async function main() {
  const query = new URLSearchParams(location.search);
  const options = {
    things: Number(query.get("things") ?? 1000),
    datapoints: Number(query.get("datapoints") ?? 2_000_000),
    batch: Number(query.get("batch") ?? 10_000),
  };
  await init();
  const wasmBytes = await totalGzippedBytes(WASM_FILES);
  const jsBytes = await totalGzippedBytes(JS_FILES);
  const { perSecond, stateBytes } = await measureThroughput(options);
  const lines = [
    `bench: ${options.things} things, 1 ML behavior, ${options.datapoints} datapoints scored and learned after one training day, batches of ${options.batch}`,
    `browser engine (wasm): ${Math.round(perSecond)} datapoints/s`,
    `model state: ${Math.round(stateBytes)} bytes per (thing, metric)`,
    `gzipped download: wasm ${wasmBytes} bytes (${WASM_FILES.join(", ")}), JS ${jsBytes} bytes (${JS_FILES.join(", ")})`,
    `BENCH browser_dps=${Math.round(perSecond)} wasm_gzip_bytes=${wasmBytes} js_gzip_bytes=${jsBytes}`,
  ];
  document.querySelector("#result").textContent = lines.join("\n");
  document.body.dataset.done = "true";
}

main().catch((error) => {
  document.querySelector("#result").textContent = `benchmark failed: ${error.message ?? error}`;
  document.body.dataset.done = "failed";
});
