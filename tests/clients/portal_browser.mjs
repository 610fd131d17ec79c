// The member portal in headless Chromium (Debian's, driven by playwright-core), as a member
// uses it, in phases that share the browser's cookies through a storage-state file:
//   signin-and-make   sign in, change the password, make an app password (mail, calendars)
//   revoke-and-takeout  revoke it, download the takeout
//   reload            open the portal again (after a suspension: the sign-in form)
//   admin             an admin suspends and reinstates a member from the members page
// Every page must load without console errors or failed requests; a screenshot of each is
// kept. Prints one JSON object per line; exits 1 on any failure.
// Usage: node portal_browser.mjs PHASE BASE_URL STATE_FILE SHOT_PREFIX [ARGS...]
import fs from "node:fs";
import { chromium } from "playwright-core";

const [phase, base, stateFile, shots, ...args] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
const context = await browser.newContext(fs.existsSync(stateFile) ? { storageState: stateFile, acceptDownloads: true } : { acceptDownloads: true });
const page = await context.newPage();
const problems = [];
page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
page.on("pageerror", (e) => problems.push("page error: " + e.message));
page.on("requestfailed", (r) => problems.push("request failed: " + r.url()));
let shot = 0;
const snap = async (name) => {
  const file = `${shots}-${phase}-${++shot}-${name}.png`;
  await page.screenshot({ path: file, fullPage: true });
  if (fs.statSync(file).size < 3000) throw new Error(`screenshot ${file} looks blank`);
};
const say = (o) => console.log(JSON.stringify(o));
const text = async () => page.evaluate(() => document.body.innerText);

try {
  if (phase === "signin-and-make") {
    const [user, password, newPassword] = args;
    await page.goto(base + "/portal/");
    await snap("signin");
    await page.fill("#user", user);
    await page.fill("#password", "not the password");
    await page.click("button[type=submit]");
    if (!(await text()).includes("Wrong name or password")) throw new Error("a wrong password was not refused");
    problems.length = 0;  // that refusal was a 401 on purpose: Chromium logs it as an error
    await page.fill("#user", user);
    await page.fill("#password", password);
    await page.click("button[type=submit]");
    await page.waitForSelector("text=Your account");
    await snap("account");
    await page.click("a[href='/portal/password']");
    await page.fill("#current", password);
    await page.fill("#new", newPassword);
    await page.fill("#confirm", newPassword);
    await page.click("main button[type=submit]");
    await page.waitForSelector(".done");
    await snap("password");
    await page.click("a[href='/portal/app-passwords']");
    await page.fill("#label", "phone");
    await page.check("input[name=scope][value=mail]");
    await page.check("input[name=scope][value=calendars]");
    await page.click("main button[type=submit]");
    const secret = (await page.textContent("#secret")).trim();
    if (!(await page.$("svg[aria-label='QR code']"))) throw new Error("no QR code beside the new app password");
    await snap("app-password");
    await page.click("a[href='/portal/settings']");
    await page.waitForSelector("text=Calendars and contacts");
    await snap("settings");
    await page.click("a[href='/portal/logins']");
    await page.waitForSelector("text=Recent logins");
    const logins = await text();
    await snap("logins");
    say({ secret, loginsShowPortal: logins.includes("portal") });
  } else if (phase === "revoke-and-takeout") {
    const [downloadTo] = args;
    await page.goto(base + "/portal/app-passwords");
    await page.click("form[action='/portal/app-passwords/revoke'] button");
    await page.waitForSelector("text=none yet");
    await snap("revoked");
    await page.click("a[href='/portal/takeout']");
    await snap("takeout");
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: 120000 }), page.click("main button[type=submit]")]);
    await download.saveAs(downloadTo);
    // A download ends the navigation that asked for it: Chromium reports that request as aborted.
    for (let i = problems.length - 1; i >= 0; --i) if (problems[i] === "request failed: " + base + "/portal/takeout") problems.splice(i, 1);
    say({ downloaded: downloadTo, name: download.suggestedFilename() });
  } else if (phase === "reload") {
    await page.goto(base + "/portal/");
    await snap("reloaded");
    say({ signinShown: (await page.$("#password")) !== null, text: (await text()).slice(0, 200) });
  } else if (phase === "admin") {
    const [user, password, target] = args;
    await page.goto(base + "/portal/");
    await page.fill("#user", user);
    await page.fill("#password", password);
    await page.click("button[type=submit]");
    await page.click("a[href='/portal/members']");
    await snap("members");
    const row = page.locator("tr", { hasText: target });
    await row.locator("form[action='/portal/members/suspend'] button").click();
    await page.waitForSelector(`tr:has-text("${target}") form[action='/portal/members/reinstate']`);
    const suspended = await row.innerText();
    await snap("suspended");
    await row.locator("form[action='/portal/members/reinstate'] button").click();
    await page.waitForSelector(`tr:has-text("${target}") form[action='/portal/members/suspend']`);
    say({ suspended: suspended.includes("suspended"), reinstated: (await row.innerText()).includes("active") });
  } else if (phase === "publish") {
    // A member of the web group publishes two versions of a site from zips, previews it,
    // rolls back, adds an event and downloads the Akash file.
    const [user, password, zip1, zip2, akashTo] = args;
    await page.goto(base + "/portal/");
    await page.fill("#user", user);
    await page.fill("#password", password);
    await page.click("button[type=submit]");
    await page.click("a[href='/portal/sites']");
    await snap("sites");
    const publish = async (zip) => {
      await page.fill("#site", "bakery");
      await page.setInputFiles("#zip", zip);
      await page.click("main form[action='/portal/sites/publish'] button[type=submit]");
      await page.waitForSelector(".done");
      return (await page.textContent(".done")).trim();
    };
    const first = await publish(zip1);
    const second = await publish(zip2);
    await snap("published");
    const preview = await page.getAttribute("td a[href*='/sites/bakery/']", "href");
    const viewer = await context.newPage();
    await viewer.goto(preview);
    const v2 = await viewer.evaluate(() => document.body.innerText);
    await page.click("a[href='/portal/sites/bakery']");
    await page.click("form[action='/portal/sites/bakery/rollback'] button");
    await page.waitForSelector(".done");
    await snap("rolled-back");
    await viewer.reload();
    const v1 = await viewer.evaluate(() => document.body.innerText);
    await page.fill("#title", "Bread course");
    await page.fill("#when", "2027-03-01T18:00");
    await page.fill("#where", "The bakery");
    await page.fill("#lat", "43.7384");
    await page.fill("#lon", "7.4246");
    await page.click("form[action='/portal/sites/bakery/events'] button[type=submit]");
    await page.waitForSelector(".done");
    const event = (await page.textContent(".done")).trim();
    await snap("event");
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("a[href='/portal/sites/bakery/akash.yaml']")]);
    await download.saveAs(akashTo);
    for (let i = problems.length - 1; i >= 0; --i) if (problems[i].includes("/akash.yaml")) problems.splice(i, 1);
    say({ first, second, v1, v2, event });
  } else {
    throw new Error("unknown phase " + phase);
  }
  await context.storageState({ path: stateFile });
  if (problems.length) throw new Error(problems.join("; "));
} catch (e) {
  console.log("FAIL " + e.message);
  await browser.close();
  process.exit(1);
}
await browser.close();
