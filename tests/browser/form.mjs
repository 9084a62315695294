// Drives Debian's chromium (headless) through the citizen form of a running sipas.
// Usage: node form.mjs BASE_URL SCREENSHOT_DIR
// Expects campaigns `hn` (sipas-individual) and `ratings` (dossier-rating) over Hà Nội (01).
// Prints one JSON line with what it measured; exits 1 on the first failed expectation.
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { axe, expect, launch } from "./common.mjs";

const require = createRequire(import.meta.url);
const jsqrSource = readFileSync(require.resolve("jsqr/dist/jsQR.js"), "utf8");
const [base, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });

// Clicks (or presses a key) and waits for the page that follows.
async function andWait(page, action) {
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), action()]);
}

const browser = await launch();
const summary = { axe: {}, weight: {}, pages: 0 };
try {
  // 1. The whole sipas-individual survey with JavaScript off, on a small phone, partly by keyboard.
  const noJs = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 360, height: 740 }, locale: "vi-VN" });
  const page = await noJs.newPage();
  // Bytes on the wire (headers and bodies) of everything the first page loads.
  const sizes = [];
  const listener = (request) => sizes.push(request.sizes());
  page.on("requestfinished", listener);
  await page.goto(`${base}/s/hn/00070`);
  await page.waitForLoadState("load");
  page.off("requestfinished", listener);
  const measured = await Promise.all(sizes);
  const bytes = measured.reduce((sum, s) => sum + s.responseBodySize + s.responseHeadersSize, 0);
  summary.weight.first_page_bytes = bytes;
  summary.weight.requests = measured.length;
  expect(measured.length === 2, `the first page loads the HTML and one stylesheet (${measured.length} requests)`);
  expect(bytes > 0 && bytes < 50 * 1024, `first page weighs ${bytes} bytes`);
  expect((await page.getAttribute("html", "lang")) === "vi", "the page is in Vietnamese");
  expect((await page.textContent(".progress")).includes("Phần 1/"), "progress indicator");
  await page.screenshot({ path: `${shots}/form-360.png`, fullPage: false });
  // Keyboard: Tab to the first radio group, pick with Space, then Enter submits (moves forward).
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => document.activeElement?.getAttribute("type"));
  expect(focused === "radio", `Tab reaches the first answer (focused: ${focused})`);
  await page.keyboard.press("ArrowDown");
  await andWait(page, () => page.keyboard.press("Enter"));
  expect((await page.textContent(".progress")).includes("Phần 2/"), "Enter moves forward");
  for (let guard = 0; guard < 10; guard++) {
    const groups = await page.$$("fieldset");
    if (groups.length === 0) break;
    for (const group of groups) {
      const labels = await group.$$(".choice label");
      await labels[labels.length - 1].click();
    }
    await andWait(page, () => page.click("button.primary"));
    summary.pages++;
  }
  const thanks = await page.textContent("h1");
  expect(thanks.includes("Cảm ơn"), `thank-you page (got ${thanks})`);
  await page.screenshot({ path: `${shots}/thanks-360.png` });
  await noJs.close();

  // 2. axe-core on the form, the error state and the thank-you page (JavaScript on, to run axe).
  const withJs = await browser.newContext({ bypassCSP: true, viewport: { width: 360, height: 740 }, locale: "vi-VN" });
  const a = await withJs.newPage();
  await a.goto(`${base}/s/hn/00070`);
  summary.axe.form = await axe(a, "the form");
  await a.goto(`${base}/s/hn/00070?view=all`);
  summary.axe.form_one_page = await axe(a, "the form on one page");
  // The English switch.
  await andWait(a, () => a.click("a.lang"));
  expect((await a.getAttribute("html", "lang")) === "en", "the switch shows English");
  expect((await a.textContent("button.primary")).includes("Send"), "English buttons");
  // The per-dossier rating: submitting nothing shows the error state.
  await a.goto(`${base}/r/ratings/00070?dossier=H26-000123`);
  await andWait(a, () => a.click("button.primary"));
  expect(await a.isVisible(".error-summary"), "error summary shown");
  const firstLink = await a.getAttribute(".error-summary a", "href");
  const target = await a.$(firstLink);
  expect(target !== null, `summary link ${firstLink} points at a field`);
  await a.screenshot({ path: `${shots}/errors-360.png`, fullPage: false });
  summary.axe.errors = await axe(a, "the error state");
  for (const group of await a.$$("fieldset")) {
    const labels = await group.$$(".choice label");
    await labels[labels.length - 1].click();
  }
  await andWait(a, () => a.click("button.primary"));
  expect((await a.textContent("h1")).includes("Cảm ơn"), "rating stored");
  summary.axe.thanks = await axe(a, "the thank-you page");

  // 3. The poster's QR code decodes to the form's link.
  await a.goto(`${base}/s/hn/00070/poster`);
  summary.axe.poster = await axe(a, "the poster");
  await a.addScriptTag({ content: jsqrSource });
  const decoded = await a.evaluate(async () => {
    const img = document.querySelector("img");
    await img.decode();
    const canvas = document.createElement("canvas");
    canvas.width = 600;
    canvas.height = 600;
    const context = canvas.getContext("2d");
    context.fillStyle = "#fff";
    context.fillRect(0, 0, 600, 600);
    context.drawImage(img, 0, 0, 600, 600);
    const data = context.getImageData(0, 0, 600, 600);
    return window.jsQR(data.data, 600, 600)?.data ?? null;
  });
  summary.qr = decoded;
  expect(decoded === `${base}/s/hn/00070`, `QR decodes to the form (got ${decoded})`);

  // 4. Desktop width.
  await a.setViewportSize({ width: 1280, height: 900 });
  await a.goto(`${base}/s/hn/00070`);
  await a.screenshot({ path: `${shots}/form-1280.png` });
  await withJs.close();
} finally {
  await browser.close();
}
console.log(JSON.stringify(summary));
