// End-to-end test of the browser demo: train a small fleet past 14 simulated days, attack one
// thing, check the alarm and its explanation, label it, quarantine the thing, and save a
// screenshot. Run by `cargo xtask test` against `vigil serve`.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { demoUrl, launchBrowser } from "./browser.mjs";

const OUTPUT_DIR = process.env.VIGIL_TEST_OUTPUT ?? "target/web-demo-test";
const VICTIM = "camera-0002";

let browser;
let page;
const pageErrors = [];

before(async () => {
  browser = await launchBrowser();
  page = await browser.context.newPage();
  page.on("pageerror", (error) => pageErrors.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error") pageErrors.push(message.text());
  });
});

after(async () => {
  await browser?.close();
});

function number(text) {
  return Number(text.replaceAll(",", ""));
}

test("demo trains, alarms, explains and quarantines", { timeout: 110_000 }, async () => {
  await page.goto(demoUrl());
  await page.waitForSelector("body[data-ready=true]");

  // A small fleet at full speed trains in a few seconds.
  await page.fill("#fleet-size", "24");
  await page.click("#reset");
  await page.selectOption("#speed", "0");
  await page.click("#start");
  await page.waitForFunction(
    () =>
      Number(document.body.dataset.day) >= 14.2 &&
      [...document.querySelectorAll("#training tbody tr")].length === 5 &&
      [...document.querySelectorAll("#training tbody tr")].every((row) => row.dataset.status === "ACTIVE"),
    null,
    { timeout: 60_000, polling: 200 },
  );
  const fleetStates = await page.$$eval("#fleet button", (buttons) => buttons.map((b) => b.dataset.state));
  assert.equal(fleetStates.length, 24);
  assert.ok(!fleetStates.includes("training"), `still training: ${fleetStates}`);

  // Slow down, then flood one camera with messages.
  await page.selectOption("#speed", "21600");
  await page.click(`#fleet button[data-thing="${VICTIM}"]`);
  await page.waitForFunction((thing) => document.querySelector("#thing-name").textContent === thing, VICTIM);
  await page.selectOption("#attack", "message-flood");
  await page.click("#inject");

  const alarm = page.locator("#active li", { hasText: `${VICTIM} · num-messages-sent-ml-behavior` });
  await alarm.waitFor({ timeout: 30_000 });
  await alarm.locator("button").click();
  const explanation = page.locator("#explanation");
  await explanation.waitFor({ state: "visible" });
  const field = (name) => explanation.locator(`[data-field=${name}]`).textContent();
  assert.equal(await field("thing"), VICTIM);
  const [low, high] = (await field("range")).split(" – ").map(number);
  const observed = number(await field("observed"));
  const score = number(await field("score"));
  assert.ok(Number.isFinite(low), `expected low ${low}`);
  assert.ok(Number.isFinite(high), `expected high ${high}`);
  assert.ok(observed > high, `observed ${observed} is not above the expected high ${high}`);
  assert.ok(score > 0.5, `anomaly score ${score}`);
  assert.ok(score <= 1, `anomaly score ${score}`);
  assert.equal(await field("confidence"), "HIGH");
  assert.equal(await page.locator("#thing-state").textContent(), "alarm");

  // Label the alarm, then quarantine the thing through the mitigation action.
  await explanation.locator('[data-verify="TRUE_POSITIVE"]').click();
  await page.waitForFunction(
    () => document.querySelector('#explanation [data-field="verification"]').textContent === "TRUE_POSITIVE",
  );
  await page.click("#quarantine");
  await page.waitForSelector(`#fleet button[data-thing="${VICTIM}"][data-state=quarantined]`);
  assert.equal(await page.locator("#thing-state").textContent(), "quarantined");
  assert.match(await page.locator("#task").textContent(), new RegExp(`${VICTIM}: SUCCESSFUL`));
  const quarantined = await page.$$eval("#fleet button[data-state=quarantined]", (b) => b.length);
  assert.equal(quarantined, 1);

  await page.click("#pause");
  mkdirSync(OUTPUT_DIR, { recursive: true });
  const screenshot = path.join(OUTPUT_DIR, "demo.png");
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshot: ${screenshot}`);

  // A new confidence level changes the behaviors' criteria, which invalidates the open alarm.
  await page.selectOption("#confidence", "LOW");
  await page.check("#suppress");
  await page.click("#apply-profile");
  await page.waitForFunction(() => document.querySelector("#profile-state").textContent.includes("version 2"));
  assert.match(await page.locator("#profile-state").textContent(), /confidence LOW, suppressAlerts true/);
  await page.waitForFunction(() => document.querySelector("#active-count").textContent === "0");
  const invalidated = page.locator("#history li.alarm-invalidated", { hasText: VICTIM });
  assert.equal(await invalidated.count(), 1);

  assert.equal(await page.locator("#error").isHidden(), true);
  assert.deepEqual(pageErrors, []);
});
