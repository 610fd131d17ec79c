// A member in headless Chromium (Debian's, driven by playwright-core) uses coop-docs' editor:
// signs in, makes a new document (owned, with a title sealed in the page), writes Markdown,
// attaches a file (encrypted in the page); a second, anonymous browser opens the link, sees
// the Markdown rendered without running the HTML in it, and downloads and decrypts the
// attachment; then the owner makes a second document, deletes it, and signs out.
// Usage: node docs_browser_member.mjs EDITOR_URL HANDLE PASSWORD ATTACHMENT SCREENSHOT.png
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";

const [editor, handle, password, attachment, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--enable-unsafe-swiftshader"],
});
let failed = false;
const fail = (m) => { console.log("FAIL " + m); failed = true; };
const problems = [];
const watch = (page, name) => {
  page.on("console", (m) => { if (m.type() === "error") problems.push(`${name} console: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`${name} page error: ${e.message}`));
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`${name} HTTP ${r.status()} ${r.url()}`); });
};
const statusIs = (page, text) => page.waitForFunction((t) => document.getElementById("status").textContent.includes(t), text, { timeout: 30000 });
try {
  const owner = await (await browser.newContext({ viewport: { width: 900, height: 500 } })).newPage();
  watch(owner, "owner");
  await owner.goto(editor);
  await owner.click("#signin");
  await owner.fill("#handle", handle);
  await owner.fill("#password", password);
  await owner.click("#signin-form button[type=submit]");
  await owner.waitForFunction((h) => document.getElementById("who").textContent === h, handle, { timeout: 30000 });

  owner.once("dialog", (d) => d.accept("Kitchen rota"));
  await owner.click("#newdoc");
  await owner.waitForFunction(() => window.coopDocReady === true && window.coopDocOwned === true, null, { timeout: 30000 });
  const link = owner.url();
  await owner.click("#text");
  await owner.keyboard.type("# Rota\n\n**Monday**: soup <script>window.pwned = 1</script>\n\n");
  await owner.setInputFiles("#attach", attachment);
  await owner.waitForFunction(() => document.getElementById("text").value.includes("(/docs/blob/"), null, { timeout: 30000 });
  const ownerText = await owner.inputValue("#text");

  const reader = await (await browser.newContext({ viewport: { width: 900, height: 500 }, acceptDownloads: true })).newPage();
  watch(reader, "reader");
  await reader.goto(link);
  await reader.waitForFunction(() => window.coopDocReady === true, null, { timeout: 30000 });
  await reader.waitForFunction(() => document.getElementById("text").value.includes("(/docs/blob/"), null, { timeout: 30000 });
  if (await reader.isVisible("#signout")) fail("the anonymous reader looks signed in");
  await reader.click("#mode");
  const heading = await reader.textContent("#preview h1");
  const bold = await reader.textContent("#preview strong");
  const scripts = await reader.evaluate(() => document.querySelectorAll("#preview script").length);
  const pwned = await reader.evaluate(() => window.pwned === 1);
  const shownLiterally = (await reader.textContent("#preview")).includes("<script>");
  await reader.screenshot({ path: screenshot });
  const [download] = await Promise.all([reader.waitForEvent("download"), reader.click("#preview a[href^='/docs/blob/']")]);
  const downloaded = readFileSync(await download.path());
  const sameBytes = Buffer.compare(downloaded, readFileSync(attachment)) === 0;

  // A second document, deleted by its owner from the page.
  owner.once("dialog", (d) => d.accept("Scratch"));
  await owner.click("#newdoc");
  await owner.waitForFunction(() => window.coopDocReady === true && window.coopDocOwned === true, null, { timeout: 30000 });
  const scratch = owner.url();
  owner.once("dialog", (d) => d.accept());
  await owner.click("#delete");
  await statusIs(owner, "Deleted.");
  await owner.click("#signout");
  await statusIs(owner, "Signed out");
  const signedOut = await owner.evaluate(() => localStorage.getItem("coop-docs-session") === null);

  console.log(JSON.stringify({ link, scratch, ownerText, heading, bold, scripts, pwned, shownLiterally, sameBytes, signedOut, problems }));
  if (heading !== "Rota" || bold !== "Monday") fail("the Markdown is not rendered");
  if (scripts !== 0 || pwned || !shownLiterally) fail("HTML in the document was not kept as text");
  if (!sameBytes) fail("the attachment did not come back as it was");
  if (!signedOut) fail("signing out left the session in the browser");
  if (problems.length) fail("problems: " + problems.join("; "));
  if (!failed) console.log("ALL OK");
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
