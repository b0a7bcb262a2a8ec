// Runs the benchmark page in headless Chromium and prints its output; the last line starts with
// `BENCH browser_dps=`. Usage: VIGIL_DEMO_URL=http://127.0.0.1:PORT/demo/ node bench.mjs

import { demoUrl, launchBrowser } from "./browser.mjs";

const browser = await launchBrowser();
try {
  const page = await browser.context.newPage();
  await page.goto(new URL("bench.html", demoUrl()).href);
  await page.waitForSelector("body[data-done]", { timeout: 120_000 });
  const output = await page.locator("#result").textContent();
  console.log(output);
  if ((await page.getAttribute("body", "data-done")) !== "true") process.exitCode = 1;
} finally {
  await browser.close();
}
