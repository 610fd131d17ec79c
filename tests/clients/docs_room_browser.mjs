// A member posts the document open in coop-docs' editor into one of their Matrix rooms, with
// the editor's own "Post to a room" dialog (headless Chromium, Debian's, via playwright-core).
// Usage: node docs_room_browser.mjs EDITOR_URL DOC_LINK HANDLE PASSWORD EDIT(yes|no)
// Prints one JSON line (the rooms offered, what was posted), then ALL OK or FAIL lines.
import { chromium } from "playwright-core";

const [editor, link, handle, password, edit] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
const failures = [];
const seen = {};
try {
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("dialog", (d) => { problems.push("a browser dialog: " + d.type()); d.dismiss(); });
  await page.goto(editor);
  await page.click("#signin");
  await page.fill("#handle", handle);
  await page.fill("#password", password);
  await page.click("#signin-form button[type=submit]");
  await page.waitForFunction((h) => document.getElementById("who").textContent === h, handle, { timeout: 30000 });
  await page.goto(link);
  await page.reload();
  await page.waitForFunction(() => window.coopDocReady === true, null, { timeout: 30000 });
  await page.click("#room-button");
  await page.waitForSelector("#room-dialog[open]", { timeout: 15000 });
  seen.offered = await page.$$eval("#room-select option", (os) => os.map((o) => o.textContent));
  if (edit === "yes") await page.check("#room-edit");
  seen.warning = await page.textContent("#room-warning");
  await page.click("#room-form button[type=submit]");
  await page.waitForFunction(() => window.coopPosted !== undefined, null, { timeout: 30000 });
  seen.posted = await page.evaluate(() => window.coopPosted);
  seen.status = await page.textContent("#status");
  if (!seen.posted) failures.push("nothing was posted: " + seen.status);
  if (problems.length) failures.push("problems: " + problems.join("; "));
} catch (e) {
  failures.push("exception: " + e.message);
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
for (const f of failures) console.log("FAIL " + f);
if (!failures.length) console.log("ALL OK");
process.exit(failures.length ? 1 : 0);
