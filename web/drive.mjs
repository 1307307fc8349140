// Drive the page in headless Chromium (Debian's /usr/bin/chromium, no browser download) with playwright-core:
//   node drive.mjs URL SCREENSHOT.png [TR] [PICK]
// PICK: comma-separated files to give the page's file input after the first run (a video and its .words.json);
// the state of that second run comes back as `picked` (status, T, prediction).
// Prints one JSON line: the page's state (status, sizes, timings) and its full prediction; in clip mode also the
// features it computed (text, audio, video on the 2 Hz grid) and its token ids. A page that ends in an error or its
// help text gives what it shows instead (statusText, helpText); warnings shown above the brain: warningsText.
import { chromium } from 'playwright-core';

const [url, shot, tr, pick] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist', '--no-sandbox'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1240, height: 640 } });
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e}`));
  await page.goto(url);
  await page.waitForFunction(() => window.tinytribe && window.tinytribe.status !== 'loading', null, { timeout: 240000 });
  const st = await page.evaluate(() => ({ ...window.tinytribe, pred: undefined, show: undefined, features: undefined }));
  if (st.status === 'done') {
    if (tr !== undefined) await page.evaluate((k) => window.tinytribe.show(k), Number(tr));
    await page.waitForFunction(() => !document.getElementById('video').seeking, null, { timeout: 10000 });
    await page.waitForTimeout(300);
    await page.screenshot({ path: shot });
    st.pred = await page.evaluate(() => window.tinytribe.pred());
    if (url.includes('debug=frames')) st.frames = await page.evaluate(() => window.tinytribe.frames);
    if (st.mode === 'clip') st.features = await page.evaluate(() => window.tinytribe.features());
    if (pick) {
      await page.setInputFiles('#pick', pick.split(','));
      await page.waitForFunction(() => window.tinytribe.runs >= 2, null, { timeout: 240000 });
      st.picked = await page.evaluate(() => ({ status: window.tinytribe.status, error: window.tinytribe.error,
        T: window.tinytribe.clip && window.tinytribe.clip.T, nTr: window.tinytribe.nTr, pred: window.tinytribe.pred(),
        features: window.tinytribe.features(), timings: window.tinytribe.clip.timings }));
    }
  }
  else {                      // an error or the help page: what it shows, and a screenshot of it
    Object.assign(st, await page.evaluate(() => {
      const shown = (id) => { const e = document.getElementById(id); return e && !e.hidden ? e.innerText : null; };
      return { statusText: document.getElementById('status').textContent, helpText: shown('help') };
    }));
    await page.screenshot({ path: shot });
  }
  st.warningsText = await page.evaluate(() => { const e = document.getElementById('warnings'); return e && !e.hidden ? e.innerText : null; });
  st.logs = logs;
  console.log(JSON.stringify(st));
} finally {
  await browser.close();
}
