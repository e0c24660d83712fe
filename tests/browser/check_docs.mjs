// Opens the service's /docs and /redoc in headless Chromium and prints what it saw as JSON.
// Run by tests/api/test_docs_browser.py, which makes the assertions:
//   node check_docs.mjs BASE_URL ARTIFACTS_DIR
// Environment: CHROMIUM (default /usr/bin/chromium).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, artifacts] = process.argv.slice(2);
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);
const LOCAL_SCHEMES = new Set(["data:", "blob:", "about:"]);

function isLocal(url) {
  const u = new URL(url);
  return LOCAL_SCHEMES.has(u.protocol) || LOOPBACK.has(u.hostname);
}

const userDataDir = mkdtempSync(join(tmpdir(), "docs-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 900 },
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

const result = { requests: [], outside: [], console_errors: [], page_errors: [] };
// Every request the pages make is recorded; one that leaves loopback is also refused, so a
// regression shows up as a failed test here and not as a hang on a machine without internet.
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
page.on("websocket", (ws) => {
  result.requests.push(ws.url());
  if (!isLocal(ws.url())) result.outside.push(ws.url());
});

try {
  // --- Swagger UI --------------------------------------------------------------------------
  await page.goto(`${base}/docs`, { waitUntil: "networkidle" });
  await page.waitForSelector(".swagger-ui .opblock", { timeout: 30000 });
  result.docs_title = await page.title();
  result.docs_operations = await page.$$eval(".opblock", (blocks) =>
    blocks.map((b) => ({
      method: b.querySelector(".opblock-summary-method")?.textContent.trim().toLowerCase(),
      path: b.querySelector(".opblock-summary-path")?.getAttribute("data-path"),
    })),
  );
  result.docs_version = await page.evaluate(() => window.versions?.swaggerUi?.version ?? null);
  await page.screenshot({ path: join(artifacts, "docs.png"), fullPage: true });

  // "Try it out" -> Execute, with the shipped examples: POST /train, then POST /predict.
  result.try_it_out = {};
  for (const path of ["/train", "/predict"]) {
    const block = page.locator(".opblock-post", {
      has: page.locator(`.opblock-summary-path[data-path="${path}"]`),
    });
    await block.locator(".opblock-summary").click();
    await block.locator("button.try-out__btn").click();
    await block.locator("button.execute").click();
    const status = block.locator(".live-responses-table .response .response-col_status");
    await status.first().waitFor({ timeout: 30000 });
    const body = block.locator(".live-responses-table .response-col_description pre");
    result.try_it_out[path] = {
      status: (await status.first().textContent()).trim(),
      body: (await body.first().textContent()).trim(),
    };
  }
  await page.screenshot({ path: join(artifacts, "docs-try-it-out.png"), fullPage: true });

  // --- ReDoc -------------------------------------------------------------------------------
  await page.goto(`${base}/redoc`, { waitUntil: "networkidle" });
  await page.waitForSelector("[data-section-id^='operation/']", { timeout: 30000 });
  result.redoc_title = await page.title();
  result.redoc_operations = await page.$$eval("[data-section-id^='operation/']", (els) => [
    ...new Set(els.map((e) => e.getAttribute("data-section-id").slice("operation/".length))),
  ]);
  await page.screenshot({ path: join(artifacts, "redoc.png") });
} catch (err) {
  result.error = String(err && err.stack ? err.stack : err);
  await page.screenshot({ path: join(artifacts, "failure.png"), fullPage: true }).catch(() => {});
} finally {
  result.user_agent = await page.evaluate(() => navigator.userAgent).catch(() => null);
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result));
