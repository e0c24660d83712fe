// Opens report pages (GET /models/{ref}/report) in headless Chromium and prints what it saw as
// JSON. Run by tests/api/test_report_browser.py, which makes the assertions:
//   node check_report.mjs ARTIFACTS_DIR URL NAME [URL NAME ...]
// Environment: CHROMIUM (default /usr/bin/chromium); REPORT_CREDENTIALS=user:password, HTTP
// Basic credentials the browser gives when a page asks for them (a server with API keys).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [artifacts, ...pages] = process.argv.slice(2);
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);
const LOCAL_SCHEMES = new Set(["data:", "blob:", "about:"]);

function isLocal(url) {
  const u = new URL(url);
  return LOCAL_SCHEMES.has(u.protocol) || LOOPBACK.has(u.hostname);
}

const userDataDir = mkdtempSync(join(tmpdir(), "report-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 900 },
  ...(process.env.REPORT_CREDENTIALS
    ? {
        httpCredentials: {
          username: process.env.REPORT_CREDENTIALS.split(":")[0],
          password: process.env.REPORT_CREDENTIALS.split(":").slice(1).join(":"),
        },
      }
    : {}),
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});

const result = { requests: [], outside: [], console_errors: [], page_errors: [], pages: {} };
// Every request is recorded; one that leaves loopback is refused (and fails the test).
await context.route("**/*", (route) => {
  const url = route.request().url();
  if (isLocal(url)) return route.continue();
  result.outside.push(url);
  return route.abort("blockedbyclient");
});
context.on("request", (request) => result.requests.push(request.url()));

const page = await context.newPage();
page.on("console", (msg) => {
  if (msg.type() === "error") result.console_errors.push(msg.text());
});
page.on("pageerror", (err) => result.page_errors.push(String(err)));

try {
  for (let i = 0; i < pages.length; i += 2) {
    const [url, name] = [pages[i], pages[i + 1]];
    await page.goto(url, { waitUntil: "networkidle" });
    await page.evaluate(() => window.reportDone.then(() => true));
    // marks drawn per chart: the SVG items vega puts in each mark group
    const marks = await page.$$eval("div[id^=chart-]", (divs) =>
      Object.fromEntries(
        divs.map((d) => [
          d.id.slice("chart-".length),
          Object.fromEntries(
            [...d.querySelectorAll("g.role-mark")].map((g, k) => [
              `${k}:${[...g.classList].find((c) => c.startsWith("mark-"))}`,
              g.children.length,
            ]),
          ),
        ]),
      ),
    );
    result.pages[name] = {
      title: await page.title(),
      marks,
      notes: await page.$$eval("p.note", (ps) => ps.map((p) => p.textContent)),
    };
    await page.screenshot({ path: join(artifacts, `report-${name}.png`), fullPage: true });
  }
  result.user_agent = await page.evaluate(() => navigator.userAgent);
} catch (err) {
  result.error = String(err && err.stack ? err.stack : err);
  await page.screenshot({ path: join(artifacts, "report-failure.png"), fullPage: true }).catch(() => {});
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result));
