// Opens coop's map of a coastal extract in headless Chromium (Debian's, through playwright-core)
// at several zooms and checks what a member would look at: the sea is sea-coloured where the sea
// is and land is not; tunnels are drawn only by the tunnel layers (dimmed), never as surface
// roads; POI icons come from the shard's sprite; the search box finds a place and flies there.
// Usage: node tiles_sea_browser.mjs MAP_URL SEA_LON SEA_LAT LAND_LON LAND_LAT SEARCH OUT_DIR ZOOM...
// Prints one JSON line of what it saw, then "ALL OK" or FAIL lines.
import path from "node:path";
import { chromium } from "playwright-core";

const [mapUrl, seaLon, seaLat, landLon, landLat, searchText, outDir, ...zooms] = process.argv.slice(2);
const sea = [Number(seaLon), Number(seaLat)];
const land = [Number(landLon), Number(landLat)];
const failures = [];
const fail = (message) => failures.push(message);
const SEA = [0xaa, 0xd3, 0xdf];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--ignore-gpu-blocklist"],
});
const seen = { zooms: {}, problems: [] };
try {
  const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
  page.on("console", (m) => { if (m.type() === "error") seen.problems.push("console: " + m.text()); });
  page.on("pageerror", (e) => seen.problems.push("page error: " + e.message));
  page.on("response", (r) => { if (r.status() >= 400) seen.problems.push(`HTTP ${r.status()}: ${r.url()}`); });

  const settle = async () => {
    await page.waitForFunction(() => window.coopMap && window.coopMap.loaded() && window.coopMap.areTilesLoaded(),
                               null, { timeout: 60000, polling: 100 });
    await page.waitForTimeout(700);  // symbols fade in
  };
  // The colour of the screenshot's pixel at a map position, read back through a 2D canvas.
  const pixelAt = async (png, lngLat) => {
    const point = await page.evaluate((ll) => window.coopMap.project(ll), lngLat);
    return page.evaluate(async ({ b64, x, y }) => {
      const img = new Image();
      img.src = "data:image/png;base64," + b64;
      await img.decode();
      const canvas = document.createElement("canvas");
      canvas.width = img.width; canvas.height = img.height;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0);
      return Array.from(ctx.getImageData(Math.round(x), Math.round(y), 1, 1).data.slice(0, 3));
    }, { b64: png.toString("base64"), x: point.x, y: point.y });
  };
  const near = (a, b, tolerance) => a.every((v, i) => Math.abs(v - b[i]) <= tolerance);

  // What the map draws in view: rendered features by layer, tunnels and where they are drawn.
  const look = () => page.evaluate(() => {
    const map = window.coopMap;
    const layers = {};
    let tunnels = 0;
    const surfaceTunnels = [];
    for (const f of map.queryRenderedFeatures()) {
      layers[f.layer.id] = (layers[f.layer.id] || 0) + 1;
      if (f.sourceLayer === "streets" && f.properties.tunnel === true && f.layer.type === "line") {
        tunnels += 1;  // names and arrows follow any street; lines must be the tunnel layers'
        if (!f.layer.id.startsWith("tunnel-")) surfaceTunnels.push(f.layer.id + ":" + (f.properties.name || f.id));
      }
    }
    const centre = map.project(map.getCenter());
    const ocean = map.queryRenderedFeatures(centre, { layers: ["ocean"] }).length;
    return { layers, tunnels, surfaceTunnels: surfaceTunnels.slice(0, 5), sprite: map.listImages().length, ocean };
  });

  for (const zoom of zooms.map(Number)) {
    const here = {};
    // One view centred on the sea point, one on the land point: the pixel at the centre of each.
    for (const [what, lngLat] of [["sea", sea], ["land", land]]) {
      await page.goto(`${mapUrl}?lat=${lngLat[1]}&lon=${lngLat[0]}&zoom=${zoom}`, { waitUntil: "load" });
      await settle();
      const shot = path.join(outDir, `map-z${zoom}-${what}.png`);
      const png = await page.screenshot({ path: shot });
      const report = await look();
      here[what] = { pixel: await pixelAt(png, lngLat), ocean: report.ocean, shot };
      here.tunnels = (here.tunnels || 0) + report.tunnels;
      here.icons = (here.icons || 0) + (report.layers["pois"] || 0) + (report.layers["transport-major"] || 0) +
                   (report.layers["transport-minor"] || 0);
      here.sprite = report.sprite;
      if (report.surfaceTunnels.length) fail(`z${zoom}: tunnels drawn as surface roads: ${report.surfaceTunnels}`);
    }
    seen.zooms[zoom] = here;
    if (!here.sea.ocean) fail(`z${zoom}: no ocean polygon under the sea point`);
    if (!near(here.sea.pixel, SEA, 10)) fail(`z${zoom}: the sea point is ${here.sea.pixel}, not sea blue`);
    if (here.land.ocean) fail(`z${zoom}: the ocean polygon covers the land point`);
    if (near(here.land.pixel, SEA, 10)) fail(`z${zoom}: the land point is sea blue`);
    if (here.sprite < 20) fail(`z${zoom}: the sprite did not load (${here.sprite} images)`);
  }
  const atMost = Math.max(...zooms.map(Number));
  if (!Object.values(seen.zooms).some((z) => z.tunnels > 0)) fail("no tunnel was drawn at any zoom");
  if (!seen.zooms[atMost].icons) fail(`z${atMost}: no POI or station icon was drawn`);

  // Search: type, see the results, take the first, and the map flies there.
  await page.fill("#coop-search-input", searchText);
  await page.waitForSelector("#coop-search-results li button", { timeout: 10000 });
  const offered = await page.$$eval("#coop-search-results li button", (bs) => bs.map((b) => b.textContent));
  await page.click("#coop-search-results li:first-child button");
  await page.waitForFunction(() => window.coopSearchTarget && !window.coopMap.isMoving(), null, { timeout: 20000 });
  const arrived = await page.evaluate(() => {
    const c = window.coopMap.getCenter();
    const t = window.coopSearchTarget.geometry.coordinates;
    return { name: window.coopSearchTarget.properties.name, zoom: window.coopMap.getZoom(),
             offBy: Math.hypot(c.lng - t[0], c.lat - t[1]) };
  });
  seen.search = { offered, arrived };
  if (!offered.length || !offered[0].toLowerCase().includes(searchText.toLowerCase().split(" ")[0]))
    fail(`search for ${searchText} offered ${offered}`);
  if (arrived.offBy > 1e-4 || arrived.zoom < 13) fail(`search did not fly to ${arrived.name}: ${JSON.stringify(arrived)}`);
  if (seen.problems.length) fail("problems: " + seen.problems.join("; "));
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
for (const f of failures) console.log("FAIL " + f);
if (!failures.length) console.log("ALL OK");
process.exitCode = failures.length ? 1 : 0;
