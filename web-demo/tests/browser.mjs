// Launches Debian's Chromium through playwright-core for the demo tests and the benchmark.
// Nothing is downloaded: playwright-core drives the browser at CHROMIUM_PATH.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

// Flags that keep a test browser off the network: it talks only to the demo server.
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// Returns the demo's URL, such as `http://127.0.0.1:8080/demo/`, from VIGIL_DEMO_URL.
export function demoUrl() {
  const url = process.env.VIGIL_DEMO_URL;
  if (!url) throw new Error("VIGIL_DEMO_URL is not set; start `vigil serve` and pass its URL");
  return url;
}

// Starts headless Chromium with a fresh profile directory; `close()` removes it again.
export async function launchBrowser() {
  const userDataDir = mkdtempSync(path.join(tmpdir(), "vigil-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
