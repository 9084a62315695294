// Drives Debian's chromium (headless) through the results pages of a running sipas.
// Usage: node results.mjs BASE_URL SCREENSHOT_DIR ANALYST_KEY
// Expects the demo campaigns, with `demo-2022` not public. Prints one JSON line with what it
// measured (including every chart's table as rendered); exits 1 on the first failed expectation.
import { mkdirSync } from "node:fs";
import { axe, expect, launch } from "./common.mjs";

const [base, shots, analystKey] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });

// The charts of a page: each a figure with a captioned, named SVG and a table of its numbers.
async function charts(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll("figure.chart")].map((figure) => {
      const svg = figure.querySelector("svg[role=img]");
      const labelled = (svg?.getAttribute("aria-labelledby") || "").split(" ").map((id) => document.getElementById(id)?.textContent || "");
      const table = figure.querySelector("details table");
      const rows = {};
      for (const row of table ? table.querySelectorAll("tbody tr") : []) {
        rows[row.dataset.key] = [...row.querySelectorAll("td")].map((cell) => cell.textContent);
      }
      const box = svg?.getBoundingClientRect();
      return {
        id: figure.id,
        caption: figure.querySelector("figcaption h2")?.textContent || "",
        title: labelled[0] || "",
        description: labelled[1] || "",
        marks: svg ? svg.querySelectorAll("circle, rect, polyline").length : 0,
        width: box ? box.width : 0,
        height: box ? box.height : 0,
        rows,
      };
    }),
  );
}

const browser = await launch();
const summary = { axe: {}, tables: {}, charts: {}, screenshots: [] };
try {
  const views = [
    { name: "national", path: "/results/demo-2024?agency=VN&lang=vi" },
    { name: "province", path: "/results/demo-2024?agency=01&lang=en" },
  ];
  for (const width of [1280, 360]) {
    // JavaScript on only to run axe (the pages have none: checked below without it).
    const context = await browser.newContext({ bypassCSP: true, viewport: { width, height: 900 } });
    const page = await context.newPage();
    for (const view of views) {
      const response = await page.goto(`${base}${view.path}`);
      expect(response.status() === 200, `${view.name} at ${width}px: status ${response.status()}`);
      const found = await charts(page);
      const ids = found.map((c) => c.id).join(",");
      expect(ids === "ranking,profile,scale,trend,expectations", `${view.name} at ${width}px has the charts (${ids})`);
      for (const chart of found) {
        expect(chart.title && chart.description, `${view.name} ${chart.id}: the SVG has a title and a description`);
        expect(chart.marks > 0, `${view.name} ${chart.id}: something is drawn`);
        expect(chart.width > 300 && chart.height > 50, `${view.name} ${chart.id} at ${width}px is ${chart.width}×${chart.height}`);
        expect(Object.keys(chart.rows).length > 0, `${view.name} ${chart.id}: its table has rows`);
      }
      // Nothing but the charts themselves scrolls sideways on a phone.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow <= 1, `${view.name} at ${width}px overflows by ${overflow}px`);
      summary.axe[`${view.name}_${width}`] = await axe(page, `${view.name} at ${width}px`);
      const shot = `${shots}/results-${view.name}-${width}.png`;
      await page.screenshot({ path: shot, fullPage: true });
      summary.screenshots.push(shot);
      if (width === 1280) {
        summary.tables[view.name] = Object.fromEntries(found.map((c) => [c.id, c.rows]));
        summary.charts[view.name] = found.map((c) => ({ id: c.id, description: c.description }));
      }
    }
    await context.close();
  }

  // Without JavaScript the page is the same.
  const noJs = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 360, height: 740 } });
  const plain = await noJs.newPage();
  await plain.goto(`${base}/results/demo-2024?agency=01&lang=vi`);
  expect((await plain.locator("figure.chart svg[role=img]").count()) === 5, "five charts without JavaScript");
  await noJs.close();

  // An unpublished round: refused to anonymous visitors, shown after signing in, refused again
  // after signing out; a forged session cookie is refused.
  const context = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const privatePath = "/results/demo-2022?agency=VN&lang=en";
  let response = await page.goto(`${base}${privatePath}`);
  expect(response.status() === 401, `anonymous visitors are refused (${response.status()})`);
  summary.axe.refused = await axe(page, "the refusal");
  await Promise.all([page.waitForNavigation(), page.click("main a")]);
  expect(new URL(page.url()).pathname === "/login", `the refusal links to the sign-in page (${page.url()})`);
  summary.axe.login = await axe(page, "the sign-in page");
  await page.screenshot({ path: `${shots}/results-login-1280.png`, fullPage: true });
  await page.fill("#key", "sipas_1_not-a-key");
  response = (await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]))[0];
  expect(response.status() === 401, `a wrong key is refused (${response.status()})`);
  expect((await page.textContent("[role=alert]")).length > 0, "and says so");
  await page.fill("#key", analystKey);
  response = (await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]))[0];
  expect(response.status() === 200, `signed in, the page shows (${response.status()})`);
  expect(page.url() === `${base}${privatePath}`, `back on the page asked for (${page.url()})`);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "sipas_session");
  expect(session && session.httpOnly && session.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");
  expect((await charts(page)).length === 5, "the unpublished round's charts");
  summary.axe.signed_in = await axe(page, "the page signed in");
  await Promise.all([page.waitForNavigation(), page.click("form.session button")]);
  response = await page.goto(`${base}${privatePath}`);
  expect(response.status() === 401, `signed out, refused again (${response.status()})`);
  await context.addCookies([{ name: "sipas_session", value: `${session.value.split(".")[0]}.9999999999.${"0".repeat(64)}`, url: base }]);
  response = await page.goto(`${base}${privatePath}`);
  expect(response.status() === 401, `a forged session cookie is refused (${response.status()})`);
  await context.close();
} finally {
  await browser.close();
}
console.log(JSON.stringify(summary));
