// Opens published pages in headless Chromium (Debian's, driven by playwright-core): each must
// load with no console error, no failed request and no 4xx/5xx, show text, and give a
// screenshot that is not blank.
// Usage: node site_browser.mjs SCREENSHOT_PREFIX URL...
import fs from "node:fs";
import { chromium } from "playwright-core";

const [prefix, ...urls] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--enable-unsafe-swiftshader"],
});
let failed = false;
const fail = (m) => { console.log("FAIL " + m); failed = true; };
try {
  for (const [i, url] of urls.entries()) {
    const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
    const problems = [];
    page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
    page.on("pageerror", (e) => problems.push("page error: " + e.message));
    page.on("requestfailed", (r) => problems.push("request failed: " + r.url()));
    page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
    const response = await page.goto(url, { waitUntil: "load" });
    const text = await page.evaluate(() => document.body.innerText);
    const heading = await page.evaluate(() => (document.querySelector("h1") || {}).textContent || "");
    const file = `${prefix}-${i}.png`;
    await page.screenshot({ path: file, fullPage: false });
    const size = fs.statSync(file).size;
    console.log(JSON.stringify({ url, status: response.status(), heading, textLength: text.length, screenshotBytes: size, problems }));
    if (response.status() !== 200) fail(`${url}: HTTP ${response.status()}`);
    if (text.trim().length < 10) fail(`${url}: no text`);
    if (size < 5000) fail(`${url}: the screenshot looks blank (${size} bytes)`);
    if (problems.length) fail(`${url}: ${problems.join("; ")}`);
    await page.close();
  }
  if (!failed) console.log("ALL OK");
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
