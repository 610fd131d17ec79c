// matrix-js-sdk in headless Chromium against coop-room: bundles room_browser/page.mjs with
// esbuild, serves it from an origin of its own (so every call to the homeserver is
// cross-origin and needs CORS), and opens it with playwright-core in Debian's chromium.
// Usage: node room_browser.mjs BASE_URL USER PASSWORD ROOM_ID EXPECTED_BODY SCREENSHOT.png
// Prints "joined" once the page has joined the room, then one JSON line with the outcome.
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";

const [baseUrl, user, password, roomId, expected, screenshot] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const site = fs.mkdtempSync(path.join(os.tmpdir(), "coop-room-browser-"));
await esbuild.build({
  entryPoints: [path.join(here, "room_browser", "page.mjs")], bundle: true, format: "esm", platform: "browser",
  outfile: path.join(site, "app.js"), logLevel: "error", define: { global: "globalThis" },
});
// The crypto's WebAssembly, where the bundle's import.meta.url points it.
fs.mkdirSync(path.join(site, "pkg"));
fs.copyFileSync(path.join(here, "node_modules/@matrix-org/matrix-sdk-crypto-wasm/pkg/matrix_sdk_crypto_wasm_bg.wasm"),
                path.join(site, "pkg", "matrix_sdk_crypto_wasm_bg.wasm"));
fs.writeFileSync(path.join(site, "index.html"),
  '<!doctype html><meta charset="utf-8"><title>coop room</title><pre id="log"></pre><script type="module" src="app.js"></script>');
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };
const server = http.createServer((req, res) => {
  const file = path.join(site, path.normalize(new URL(req.url, "http://x").pathname).replace(/^(\.\.[/\\])+/, ""));
  if (!file.startsWith(site) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) { res.writeHead(404); return res.end(); }
  res.writeHead(200, { "Content-Type": types[path.extname(file)] || "application/octet-stream" });
  fs.createReadStream(file).pipe(res);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const pageUrl = `http://127.0.0.1:${server.address().port}/index.html#` +
  encodeURIComponent(JSON.stringify({ baseUrl, user, password, roomId, expected }));

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
let outcome;
try {
  const page = await browser.newPage({ viewport: { width: 640, height: 400 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  await page.goto(pageUrl, { waitUntil: "load" });
  await page.waitForFunction(() => document.title === "joined" || window.coopResult, null, { timeout: 60000, polling: 100 });
  console.log("joined");
  await page.waitForFunction(() => window.coopResult, null, { timeout: 120000, polling: 100 });
  outcome = await page.evaluate(() => window.coopResult);
  await page.screenshot({ path: screenshot });
  outcome.problems = problems;
} catch (e) {
  outcome = { error: String(e) };
} finally {
  await browser.close();
  server.close();
  fs.rmSync(site, { recursive: true, force: true });
}
console.log(JSON.stringify(outcome));
process.exit(outcome.error ? 1 : 0);
