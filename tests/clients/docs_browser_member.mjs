// Members in headless Chromium (Debian's, driven by playwright-core) use coop-docs' editor:
// the owner signs in, makes a new document in the page's own dialog (owned, its title sealed in
// the page; the page's title follows), writes a heading, bold text and HTML that must stay text,
// attaches a file and inserts an image (both encrypted in the page). A second member opens the
// link: sees the formatting, the image decrypted, downloads the attachment, and is offered no
// Delete for a document that is not theirs. The owner renames the document in their drive,
// makes a second one and deletes it from the drive, opens the first from the drive, signs out.
// Usage: node docs_browser_member.mjs EDITOR_URL HANDLE PASSWORD OTHER OTHER_PASSWORD ATTACHMENT IMAGE SCREENSHOT.png
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";

const [editor, handle, password, other, otherPassword, attachment, image, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--enable-unsafe-swiftshader"],
});
const failures = [];
const fail = (m) => failures.push(m);
const problems = [];
const seen = {};
const watch = (page, name) => {
  page.on("console", (m) => { if (m.type() === "error") problems.push(`${name} console: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`${name} page error: ${e.message}`));
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`${name} HTTP ${r.status()} ${r.url()}`); });
  page.on("dialog", (d) => { problems.push(`${name} used a browser dialog: ${d.type()}`); d.dismiss(); });
};
const statusIs = (page, text) => page.waitForFunction((t) => document.getElementById("status").textContent.includes(t), text, { timeout: 30000 });
const signIn = async (page, who, secret) => {
  await page.click("#signin");
  await page.fill("#handle", who);
  await page.fill("#password", secret);
  await page.click("#signin-form button[type=submit]");
  await page.waitForFunction((h) => document.getElementById("who").textContent === h, who, { timeout: 30000 });
};
const newDocument = async (page, title) => {
  await page.click("#newdoc");
  await page.fill("#new-title", title);
  await page.click("#new-form button[type=submit]");
  await page.waitForFunction(() => window.coopDocReady === true && window.coopDocOwned === true, null, { timeout: 30000 });
};
const driveRow = (title) => `#drive-list li:has(.name:text-is("${title}"))`;
try {
  const owner = await (await browser.newContext({ viewport: { width: 1000, height: 600 } })).newPage();
  watch(owner, "owner");
  await owner.goto(editor);
  await signIn(owner, handle, password);
  await newDocument(owner, "Kitchen rota");
  const link = owner.url();
  seen.pageTitle = await owner.title();
  if (!seen.pageTitle.startsWith("Kitchen rota")) fail("the page's title is not the document's: " + seen.pageTitle);

  await owner.click(".ProseMirror");
  await owner.keyboard.type("# Rota");
  await owner.keyboard.press("Enter");
  await owner.click("#tb-bold");
  await owner.keyboard.type("Monday");
  await owner.click("#tb-bold");
  await owner.keyboard.type(": soup <script>window.pwned = 1</script> <img src=x onerror=\"window.pwned = 1\">");
  await owner.keyboard.press("Enter");
  await owner.setInputFiles("#attach", attachment);
  await owner.waitForFunction(() => document.querySelector(".ProseMirror a[href^='/docs/blob/']"), null, { timeout: 30000 });
  await owner.keyboard.press("Enter");
  await owner.setInputFiles("#image-input", image);
  await owner.waitForFunction(() => { const i = document.querySelector(".ProseMirror img"); return i && i.naturalWidth > 0; },
                              null, { timeout: 30000 });
  seen.ownerMarkdown = await owner.evaluate(() => window.coopDoc.markdown());
  seen.ownerDeleteShown = await owner.isVisible("#delete");
  if (!seen.ownerDeleteShown) fail("the owner is not offered Delete");

  // Another member reads it.
  const reader = await (await browser.newContext({ viewport: { width: 1000, height: 600 }, acceptDownloads: true })).newPage();
  watch(reader, "reader");
  await reader.goto(editor);
  await signIn(reader, other, otherPassword);
  await reader.goto(link);
  await reader.reload();
  await reader.waitForFunction(() => window.coopDocReady === true, null, { timeout: 30000 });
  await reader.waitForFunction(() => { const i = document.querySelector(".ProseMirror img"); return i && i.naturalWidth > 0; },
                               null, { timeout: 30000 });
  seen.reader = await reader.evaluate(() => ({
    heading: (document.querySelector(".ProseMirror h1") || {}).textContent,
    bold: (document.querySelector(".ProseMirror strong") || {}).textContent,
    scripts: document.querySelectorAll(".ProseMirror script").length,
    pwned: window.pwned === 1,
    literal: document.querySelector(".ProseMirror").innerText.includes("<script>"),
    image: document.querySelector(".ProseMirror img").src.startsWith("blob:"),
    deleteShown: !document.getElementById("delete").hidden,
  }));
  await reader.screenshot({ path: screenshot });
  const [download] = await Promise.all([reader.waitForEvent("download"),
                                        reader.click(".ProseMirror a[href^='/docs/blob/']")]);
  seen.sameBytes = Buffer.compare(readFileSync(await download.path()), readFileSync(attachment)) === 0;
  if (seen.reader.heading !== "Rota" || seen.reader.bold !== "Monday") fail("the formatting did not arrive: " + JSON.stringify(seen.reader));
  if (seen.reader.scripts || seen.reader.pwned || !seen.reader.literal) fail("HTML typed in the document ran or vanished");
  if (!seen.reader.image) fail("the image is not shown decrypted");
  if (seen.reader.deleteShown) fail("another member is offered Delete on a document they do not own");
  if (!seen.sameBytes) fail("the attachment did not come back as it was");

  // The owner's drive: rename, a second document deleted from the drive, open the first.
  await owner.click("#drive-button");
  await owner.waitForSelector(driveRow("Kitchen rota"), { timeout: 30000 });
  await owner.click(`${driveRow("Kitchen rota")} button:text-is("Rename")`);
  await owner.fill("#drive-list input", "Kitchen rota 2026");
  await owner.click('#drive-list button:text-is("Save")');
  await owner.waitForSelector(driveRow("Kitchen rota 2026"), { timeout: 30000 });
  await owner.keyboard.press("Escape");
  await newDocument(owner, "Scratch");
  seen.scratch = owner.url();
  await owner.click("#drive-button");
  await owner.waitForSelector(driveRow("Scratch"), { timeout: 30000 });
  await owner.click(`${driveRow("Scratch")} button:text-is("Delete")`);
  await owner.click("#confirm-yes");
  await statusIs(owner, "Deleted.");
  await owner.waitForFunction(() => {
    const names = Array.from(document.querySelectorAll("#drive-list .name")).map((n) => n.textContent);
    return names.includes("Kitchen rota 2026") && !names.includes("Scratch");
  }, null, { timeout: 30000 });
  seen.drive = await owner.evaluate(() => window.coopDrive.map((d) => d.title));
  await owner.click(`${driveRow("Kitchen rota 2026")} button:text-is("Open")`);
  await owner.waitForFunction(() => window.coopDocReady === true, null, { timeout: 30000 });
  await owner.waitForFunction(() => (document.querySelector(".ProseMirror h1") || {}).textContent === "Rota", null, { timeout: 30000 });
  seen.reopened = owner.url() === link;
  if (!seen.reopened) fail("the drive did not open the document");
  await owner.click("#signout");
  await statusIs(owner, "Signed out");
  seen.signedOut = await owner.evaluate(() => localStorage.getItem("coop-docs-session") === null);
  if (!seen.signedOut) fail("signing out left the session in the browser");
  seen.link = link;
  if (problems.length) fail("problems: " + problems.join("; "));
} catch (e) {
  fail("exception: " + e.message);
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
for (const f of failures) console.log("FAIL " + f);
if (!failures.length) console.log("ALL OK");
process.exit(failures.length ? 1 : 0);
