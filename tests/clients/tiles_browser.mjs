// Opens coop's map page in headless Chromium (Debian's, driven by playwright-core), waits
// until the map has drawn, checks the console stayed clean and the screenshot is not blank,
// then adds a marker through the members' GeoJSON API and waits until the page draws it.
// Usage: node tiles_browser.mjs MAP_URL API_URL USER PASSWORD SCREENSHOT.png
import fs from "node:fs";
import { chromium } from "playwright-core";

const [mapUrl, apiUrl, user, password, screenshotFile] = process.argv.slice(2);
const fail = (message) => { console.log("FAIL " + message); process.exitCode = 1; };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--ignore-gpu-blocklist"],
});
try {
  const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
  const problems = [];
  page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  // A request the page itself cancels (MapLibre drops a GeoJSON load that setData replaced,
  // or tiles scrolled out of view) is ERR_ABORTED: not a failure.
  page.on("requestfailed", (r) => {
    const reason = (r.failure() || {}).errorText || "";
    if (!reason.includes("ERR_ABORTED")) problems.push("request failed: " + r.url() + " " + reason);
  });
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });

  await page.goto(mapUrl, { waitUntil: "load" });
  await page.waitForFunction(() => window.coopMap && window.coopMap.loaded() && window.coopMap.areTilesLoaded(),
                             null, { timeout: 60000, polling: 100 });
  await page.waitForTimeout(300);
  const rendered = await page.evaluate(() => {
    const counts = {};
    for (const f of window.coopMap.queryRenderedFeatures()) counts[f.sourceLayer || f.source] = (counts[f.sourceLayer || f.source] || 0) + 1;
    return counts;
  });
  // A marker added through the API shows up without a reload.
  const center = await page.evaluate(() => window.coopMap.getCenter().toArray());
  const before = await page.evaluate(() => window.coopMarkerCount);
  const started = Date.now();
  const response = await fetch(apiUrl, {
    method: "POST",
    headers: { "Authorization": "Basic " + Buffer.from(`${user}:${password}`).toString("base64"), "Content-Type": "application/geo+json" },
    body: JSON.stringify({ type: "Feature", geometry: { type: "Point", coordinates: center },
                           properties: { title: "Repair café", kind: "event", when: "2026-12-05T18:00:00+01:00" } }),
  });
  if (response.status !== 201) fail(`marker POST answered ${response.status}`);
  await page.waitForFunction((n) => window.coopMarkerCount > n &&
                               window.coopMap.queryRenderedFeatures({ layers: ["markers"] }).length > 0,
                             before, { timeout: 10000, polling: 50 });
  const markerMs = Date.now() - started;
  await page.waitForFunction(() => window.coopMap.loaded() && window.coopMap.areTilesLoaded(), null, { timeout: 30000 });
  await page.waitForTimeout(600);  // symbols fade in
  const png = await page.screenshot({ path: screenshotFile });
  // Count the screenshot's colours in a 2D canvas: a blank or single-colour map fails.
  const colours = await page.evaluate(async (b64) => {
    const img = new Image();
    img.src = "data:image/png;base64," + b64;
    await img.decode();
    const canvas = document.createElement("canvas");
    canvas.width = img.width; canvas.height = img.height;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, img.width, img.height).data;
    const seen = new Set();
    for (let i = 0; i < data.length; i += 4 * 7) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    return seen.size;
  }, png.toString("base64"));


  // ?pick=1: a click away from the markers shows where it was, to copy into a form.
  let picked = null;
  if (new URL(mapUrl).searchParams.get("pick") === "1") {
    await page.mouse.click(40, 300);
    await page.waitForSelector("#coop-picked", { timeout: 10000 });
    picked = { text: await page.textContent("#coop-picked"), value: await page.evaluate(() => window.coopPicked) };
  }

  console.log(JSON.stringify({ rendered, colours, markerMs, picked, problems }));
  if (problems.length) fail("problems: " + problems.join("; "));
  if (colours < 5) fail(`screenshot has ${colours} colours`);
  if (!Object.keys(rendered).length) fail("nothing rendered");
  if (!process.exitCode) console.log("ALL OK");
} finally {
  await browser.close();
}
