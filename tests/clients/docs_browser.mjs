// Two headless Chromium pages (Debian's, driven by playwright-core) edit one rich-text
// document in coop-docs' editor: typing, the toolbar's bold and heading, a checklist, pasting
// HTML as a word processor puts it on the clipboard; each page sees the other's text and cursor
// with a name; a view-only page shows the text and cannot change it; history steps back and
// restores an older version for everyone. No page logs an error.
// Usage: node docs_browser.mjs EDIT_LINK VIEW_LINK SCREENSHOT.png
import { chromium } from "playwright-core";

const [link, viewLink, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--enable-unsafe-swiftshader"],
});
const failures = [];
const fail = (m) => failures.push(m);
const seen = {};
try {
  const problems = [];
  const open = async (name, url) => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    page.on("console", (m) => { if (m.type() === "error") problems.push(`${name} console: ${m.text()}`); });
    page.on("pageerror", (e) => problems.push(`${name} page error: ${e.message}`));
    page.on("response", (r) => { if (r.status() >= 400) problems.push(`${name} HTTP ${r.status()} ${r.url()}`); });
    await page.goto(url);
    await page.waitForFunction(() => window.coopDocReady === true, null, { timeout: 30000 });
    return page;
  };
  const text = (page) => page.evaluate(() => document.querySelector(".ProseMirror").innerText);
  const one = await open("one", link);
  const two = await open("two", link);
  seen.initial = await text(one);

  // Page one: a heading through the toolbar, then bold text.
  await one.click(".ProseMirror");
  await one.keyboard.press("Control+End");
  await one.keyboard.press("Enter");
  await one.keyboard.type("Decisions");
  await one.selectOption("#tb-block", "h2");
  await one.keyboard.press("End");
  await one.keyboard.press("Enter");
  await one.click("#tb-bold");
  await one.keyboard.type("Typed in page one.");
  await two.waitForFunction(() => document.querySelector(".ProseMirror").innerText.includes("Typed in page one."),
                            null, { timeout: 15000 });
  seen.twoHasHeading = await two.evaluate(() => !!Array.from(document.querySelectorAll(".ProseMirror h2"))
    .find((h) => h.textContent === "Decisions"));
  seen.twoHasBold = await two.evaluate(() => !!Array.from(document.querySelectorAll(".ProseMirror strong"))
    .find((b) => b.textContent === "Typed in page one."));
  if (!seen.twoHasHeading) fail("page two does not show the heading as a heading");
  if (!seen.twoHasBold) fail("page two does not show the bold text as bold");

  // Page two: a checklist, then a paste of word-processor HTML.
  await two.click(".ProseMirror");
  await two.keyboard.press("Control+End");
  await two.click("#tb-bold");  // bold was on at the end of page one's text: off again
  await two.keyboard.press("Enter");
  await two.click("#tb-checklist");
  await two.keyboard.type("Page two answers.");
  await two.evaluate(() => {
    const data = new DataTransfer();
    data.setData("text/html", '<html><body><!--StartFragment--><p class="MsoNormal"><b>Budget</b> and ' +
                 '<i>rota</i><o:p></o:p></p><ul><li>rent</li><li>food</li></ul><!--EndFragment--></body></html>');
    data.setData("text/plain", "Budget and rota\nrent\nfood");
    document.querySelector(".ProseMirror").dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
  });
  await one.waitForFunction(() => document.querySelector(".ProseMirror").innerText.includes("food"), null, { timeout: 15000 });
  seen.onePasted = await one.evaluate(() => ({
    bold: !!Array.from(document.querySelectorAll(".ProseMirror strong")).find((b) => b.textContent === "Budget"),
    italic: !!Array.from(document.querySelectorAll(".ProseMirror em")).find((b) => b.textContent === "rota"),
    listItems: Array.from(document.querySelectorAll(".ProseMirror ul:not([data-checklist]) li")).map((li) => li.textContent),
    checklist: Array.from(document.querySelectorAll(".ProseMirror ul[data-checklist] li")).map((li) => li.textContent),
  }));
  if (!seen.onePasted.bold || !seen.onePasted.italic) fail("the paste lost its bold or italic: " + JSON.stringify(seen.onePasted));
  if (!seen.onePasted.listItems.includes("rent")) fail("the pasted list is not a list: " + JSON.stringify(seen.onePasted));
  if (!seen.onePasted.checklist.some((t) => t.includes("Page two answers."))) fail("the checklist did not arrive");

  // Both pages show the other's cursor, named ("guest": nobody signed in).
  await one.click(".ProseMirror h2");
  await two.waitForFunction(() => document.querySelector(".ProseMirror .coop-caret"), null, { timeout: 15000 });
  await one.waitForFunction(() => document.querySelector(".ProseMirror .coop-caret"), null, { timeout: 15000 });
  seen.people = await one.evaluate(() => window.coopPeople);
  seen.caretName = await two.evaluate(() => document.querySelector(".ProseMirror .coop-caret").getAttribute("data-person"));
  if (seen.caretName !== "guest") fail("the other cursor is not named: " + seen.caretName);

  const a = await one.evaluate(() => window.coopDoc.content());
  const b = await two.evaluate(() => window.coopDoc.content());
  if (a !== b) fail("the pages' documents differ");
  seen.markdown = await one.evaluate(() => window.coopDoc.markdown());
  seen.content = a;

  // A view-only page shows the document and refuses typing.
  const viewer = await open("viewer", viewLink);
  await viewer.waitForFunction(() => document.querySelector(".ProseMirror").innerText.includes("food"), null, { timeout: 15000 });
  seen.viewerEditable = await viewer.evaluate(() => document.querySelector(".ProseMirror").getAttribute("contenteditable"));
  seen.viewerToolbarHidden = await viewer.evaluate(() => document.getElementById("toolbar").hidden);
  await viewer.click(".ProseMirror");
  await viewer.keyboard.type("VIEWER WAS HERE");
  await one.waitForTimeout(500);
  if (seen.viewerEditable !== "false") fail("the view-only page is editable");
  if ((await text(one)).includes("VIEWER WAS HERE")) fail("the view-only page changed the document");
  await viewer.click("#share");
  seen.viewerShare = await viewer.evaluate(() => ({ edit: document.getElementById("share-edit").value,
                                                   view: document.getElementById("share-view").value }));
  if (seen.viewerShare.edit || !seen.viewerShare.view.includes("/view/")) fail("the view-only page offers an edit link");
  await one.click("#share");
  seen.share = await one.evaluate(() => ({ edit: document.getElementById("share-edit").value,
                                          view: document.getElementById("share-view").value }));
  await one.keyboard.press("Escape");

  // History: step back to the first version, restore it; page two sees the restored text.
  await one.click("#history-button");
  await one.waitForSelector("#history-bar:not([hidden])");
  const versions = await one.evaluate(() => window.coopHistoryShown.of);
  seen.versions = versions;
  await one.fill("#history-range", "1");
  await one.dispatchEvent("#history-range", "input");
  seen.historyFirst = await text(one);
  await one.click("#history-restore");
  await two.waitForFunction(() => !document.querySelector(".ProseMirror").innerText.includes("food"), null, { timeout: 15000 });
  seen.afterRestore = await text(two);
  if (versions < 3) fail("history has too few versions: " + versions);
  if (seen.afterRestore.includes("Typed in page one.")) fail("restoring the first version did not reach page two");

  await two.screenshot({ path: screenshot });
  console.log(JSON.stringify(seen));
  if (problems.length) fail("problems: " + problems.join("; "));
} catch (e) {
  fail("exception: " + e.message);
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
for (const f of failures) console.log("FAIL " + f);
if (!failures.length) console.log("ALL OK");
process.exit(failures.length ? 1 : 0);
