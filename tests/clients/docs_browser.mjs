// Two headless Chromium pages (Debian's, driven by playwright-core) edit one document through
// coop-docs' own editor page: each page shows what the other typed, and neither logs an error.
// Usage: node docs_browser.mjs DOC_LINK SCREENSHOT.png
import { chromium } from "playwright-core";

const [link, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--enable-unsafe-swiftshader"],
});
let failed = false;
const fail = (m) => { console.log("FAIL " + m); failed = true; };
try {
  const problems = [];
  const open = async (name) => {
    const page = await browser.newPage({ viewport: { width: 700, height: 400 } });
    page.on("console", (m) => { if (m.type() === "error") problems.push(`${name} console: ${m.text()}`); });
    page.on("pageerror", (e) => problems.push(`${name} page error: ${e.message}`));
    page.on("response", (r) => { if (r.status() >= 400) problems.push(`${name} HTTP ${r.status()} ${r.url()}`); });
    await page.goto(link);
    await page.waitForFunction(() => window.coopDocReady === true, null, { timeout: 30000 });
    return page;
  };
  const one = await open("one");
  const two = await open("two");
  const initial = await one.inputValue("#text");
  await one.click("#text");
  await one.keyboard.press("End");
  await one.keyboard.type(" Typed in page one.");
  await two.waitForFunction(() => document.getElementById("text").value.includes("Typed in page one."), null, { timeout: 15000 });
  await two.click("#text");
  await two.keyboard.press("Control+End");
  await two.keyboard.type(" Page two answers.");
  await one.waitForFunction(() => document.getElementById("text").value.includes("Page two answers."), null, { timeout: 15000 });
  const a = await one.inputValue("#text"), b = await two.inputValue("#text");
  await two.screenshot({ path: screenshot });
  console.log(JSON.stringify({ initial, one: a, two: b, problems }));
  if (a !== b) fail("the pages differ");
  if (problems.length) fail("problems: " + problems.join("; "));
  if (!failed) console.log("ALL OK");
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
