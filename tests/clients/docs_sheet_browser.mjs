// Two headless Chromium pages (Debian's, driven by playwright-core) edit one spreadsheet in
// coop-docs' editor: formulas worked out in both, a cell typed in one page changes the other's
// cell and the totals that depend on it, a second sheet added in one page shows in the other,
// a column sorted, CSV and XLSX exported (written to OUT_DIR) and imported as new sheets.
// Usage: node docs_sheet_browser.mjs EDIT_LINK IMPORT.csv OUT_DIR
// Prints one JSON line of what it saw, then ALL OK or FAIL lines.
import path from "node:path";
import { chromium } from "playwright-core";

const [link, importCsv, outDir] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-background-timer-throttling", "--disable-renderer-backgrounding"],
});
const failures = [];
const fail = (m) => failures.push(m);
const seen = {};
try {
  const problems = [];
  const open = async (name) => {
    const context = await browser.newContext({ viewport: { width: 1100, height: 650 }, acceptDownloads: true });
    const page = await context.newPage();
    page.on("console", (m) => { if (m.type() === "error") problems.push(`${name} console: ${m.text()}`); });
    page.on("pageerror", (e) => problems.push(`${name} page error: ${e.message}`));
    page.on("response", (r) => { if (r.status() >= 400) problems.push(`${name} HTTP ${r.status()} ${r.url()}`); });
    page.on("dialog", (d) => { problems.push(`${name} used a browser dialog: ${d.type()}`); d.dismiss(); });
    await page.goto(link);
    await page.waitForFunction(() => window.coopDocReady === true && window.coopDoc.sheet, null, { timeout: 30000 });
    return page;
  };
  const shown = (page, sheet, ref) => page.evaluate(([s, r]) => window.coopDoc.sheet.shown(s, r), [sheet, ref]);
  const one = await open("one");
  const two = await open("two");
  seen.totalBefore = [await shown(one, 0, "B4"), await shown(two, 0, "B4")];
  if (seen.totalBefore.some((v) => Number(v) !== 700)) fail("the SUM formula is not worked out: " + seen.totalBefore);

  // Page one types a new rent into B2: page two's B2 and total follow.
  await one.dblclick('#sheet td[data-x="1"][data-y="1"]');
  await one.keyboard.press("Control+A");
  await one.keyboard.type("550");
  await one.keyboard.press("Enter");
  await two.waitForFunction(() => window.coopDoc.sheet.shown(0, "B2") === "550", null, { timeout: 15000 });
  await two.waitForFunction(() => Number(window.coopDoc.sheet.shown(0, "B4")) === 750, null, { timeout: 15000 })
    .catch(() => fail("page two's total did not follow the new rent"));
  seen.totalAfter = await shown(two, 0, "B4");

  // A formula is data: one written to run code shows an error and runs nothing, anywhere.
  await one.dblclick('#sheet td[data-x="3"][data-y="0"]');
  await one.keyboard.type('=constructor.constructor("window.pwned=1")()');
  await one.keyboard.press("Enter");
  await two.waitForFunction(() => window.coopDoc.sheet.model().sheets[0].cells.D1, null, { timeout: 15000 });
  seen.hostile = { one: await shown(one, 0, "D1"), two: await shown(two, 0, "D1"),
                   pwned: (await one.evaluate(() => window.pwned)) || (await two.evaluate(() => window.pwned)) || null };
  if (seen.hostile.pwned || !seen.hostile.two.startsWith("#")) fail("a formula ran as code: " + JSON.stringify(seen.hostile));
  await one.click('#sheet td[data-x="3"][data-y="0"]');
  await one.keyboard.press("Delete");
  await two.waitForFunction(() => !window.coopDoc.sheet.model().sheets[0].cells.D1, null, { timeout: 15000 });

  // Page two adds a sheet with the grid's own button and types in it; page one sees it.
  await two.click("#sheet .coop-tab-add");
  await two.dblclick('#sheet td[data-x="0"][data-y="0"]');
  await two.keyboard.type("Costs of the second sheet");
  await two.keyboard.press("Enter");
  await two.waitForFunction(() => window.coopDoc.sheet.model().sheets.length === 2, null, { timeout: 15000 });
  await one.waitForFunction(() => window.coopDoc.sheet.model().sheets.length === 2 &&
                             window.coopDoc.sheet.model().sheets[1].cells.A1 === "Costs of the second sheet", null, { timeout: 15000 })
    .catch(() => fail("the second sheet did not reach page one"));
  seen.sheetsInOne = await one.evaluate(() => window.coopDoc.sheet.model().sheets.map((s) => s.name));

  // Page one sorts the first sheet's rows (below the header row) by their first column, with the
  // grid's own button; page two sees the rows in the new order, the total still right.
  await one.click("#sheet .coop-tab:first-child");
  await one.click('#sheet td[data-x="0"][data-y="1"]');
  await one.click("#sheet .coop-sort-asc");
  const columnA = (page) => page.evaluate(() => {
    const cells = window.coopDoc.sheet.model().sheets[0].cells;
    return [1, 2, 3, 4].map((r) => cells["A" + r] || "");
  });
  seen.sortedInOne = await columnA(one);
  if (JSON.stringify(seen.sortedInOne) !== JSON.stringify(["Item", "Food", "Rent", "Total"]))
    fail("the rows are not sorted by their first column: " + seen.sortedInOne);
  seen.totalSorted = await shown(one, 0, "B4");
  if (Number(seen.totalSorted) !== 750) fail("sorting broke the total: " + seen.totalSorted);
  await two.waitForFunction((want) => {
    const cells = window.coopDoc.sheet.model().sheets[0].cells;
    return JSON.stringify([1, 2, 3, 4].map((r) => cells["A" + r] || "")) === want;
  }, JSON.stringify(seen.sortedInOne), { timeout: 15000 }).catch(() => fail("the sorted order did not reach page two"));

  // Exports from page one.
  const [csv] = await Promise.all([one.waitForEvent("download"), one.click("#export-csv")]);
  seen.csvFile = path.join(outDir, "export.csv");
  await csv.saveAs(seen.csvFile);
  const [xlsx] = await Promise.all([one.waitForEvent("download", { timeout: 60000 }), one.click("#export-xlsx")]);
  seen.xlsxFile = path.join(outDir, "export.xlsx");
  await xlsx.saveAs(seen.xlsxFile);

  // Imports in page two: the CSV, then the XLSX page one made; each a new sheet, seen in page one.
  await two.setInputFiles("#import-sheet", importCsv);
  await two.waitForFunction(() => window.coopImported, null, { timeout: 15000 });
  await two.evaluate(() => { window.coopImported = null; });
  await two.setInputFiles("#import-sheet", seen.xlsxFile);
  await two.waitForFunction(() => window.coopImported, null, { timeout: 60000 });
  // The CSV is one sheet; the XLSX brings back both of page one's sheets, formulas included.
  await one.waitForFunction(() => window.coopDoc.sheet.model().sheets.length === 5, null, { timeout: 15000 })
    .catch(() => fail("the imported sheets did not reach page one"));
  seen.sheetNames = await one.evaluate(() => window.coopDoc.sheet.model().sheets.map((s) => s.name));
  seen.importedFormula = await one.evaluate(() => window.coopDoc.sheet.model().sheets[3].cells.B4);
  seen.importedTotal = await shown(one, 3, "B4");
  seen.importedShares = await shown(one, 2, "B2");
  if (seen.importedFormula !== "=SUM(B2:B3)" || Number(seen.importedTotal) !== 750)
    fail("the XLSX came back without its formula: " + seen.importedFormula + " = " + seen.importedTotal);
  const a = await one.evaluate(() => window.coopDoc.content());
  const b = await two.evaluate(() => window.coopDoc.content());
  if (a !== b) fail("the pages' documents differ");
  seen.content = a;
  await one.screenshot({ path: path.join(outDir, "sheet.png") });
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
