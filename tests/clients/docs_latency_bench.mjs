// make bench: the time from a keypress in coop-docs' editor to the text on the other editors'
// screens. N pages (headless Chromium, Debian's, via playwright-core) open one document; one
// types a word at a time; every other page notes, at the frame after its editor's DOM changed,
// when the word is there. Clocks are the machine's own (Date.now in every page).
// Usage: node docs_latency_bench.mjs DOC_LINK EDITORS ROUNDS
// Prints one JSON line: {editors, rounds, samples, p50_ms, p95_ms, max_ms}.
import { chromium } from "playwright-core";

const [link, editorsText, roundsText] = process.argv.slice(2);
const editors = Number(editorsText), rounds = Number(roundsText);
// Each editor stands for a member at their own screen: no page is a background tab whose
// timers and frames Chromium would slow down.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
         "--disable-backgrounding-occluded-windows"],
});
try {
  const pages = [];
  for (let i = 0; i < editors; i++) {
    const page = await browser.newPage({ viewport: { width: 800, height: 500 } });
    await page.goto(link);
    await page.waitForFunction(() => window.coopDocReady === true, null, { timeout: 60000 });
    pages.push(page);
  }
  // Watchers: when the editor's DOM changes, note each new word at the next frame (when it is
  // on the screen). A MutationObserver, not polling: the watching must not load the machine.
  for (const page of pages.slice(1)) {
    await page.evaluate(() => {
      window.__seen = {};
      const editor = document.querySelector(".ProseMirror");
      new MutationObserver(() => {
        const fresh = [];
        for (const m of editor.textContent.matchAll(/w(\d+)z/g)) if (!window.__seen[m[1]]) { window.__seen[m[1]] = -1; fresh.push(m[1]); }
        if (fresh.length) requestAnimationFrame(() => { const t = Date.now(); for (const f of fresh) window.__seen[f] = t; });
      }).observe(editor, { subtree: true, childList: true, characterData: true });
    });
  }
  const typist = pages[0];
  await typist.click(".ProseMirror");
  await typist.keyboard.press("Control+End");
  const sent = {};
  for (let r = 1; r <= rounds; r++) {
    await typist.keyboard.type(` w${r}`);
    sent[r] = Date.now();
    await typist.keyboard.press("z");
    await typist.waitForTimeout(300);
  }
  await typist.waitForTimeout(2000);
  const samples = [];
  for (const page of pages.slice(1)) {
    const seen = await page.evaluate(() => window.__seen);
    for (let r = 1; r <= rounds; r++) if (seen[r] > 0) samples.push(seen[r] - sent[r]);
  }
  samples.sort((a, b) => a - b);
  const at = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
  console.log(JSON.stringify({ editors, rounds, samples: samples.length, expected: rounds * (editors - 1),
                               p50_ms: at(0.5), p95_ms: at(0.95), max_ms: samples[samples.length - 1] }));
} finally {
  await browser.close();
}
