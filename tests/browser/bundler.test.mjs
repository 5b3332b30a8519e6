// The package from a bundler: builds tests/browser/vite-app with Vite, serves the output on a
// local port and checks in headless Chromium that the bundled client logs in to the relay.
// Needs RELAY_URL (scripts/test-browser.sh).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { extname, join } from "node:path";
import { chromium } from "playwright-core";

const RELAY = process.env.RELAY_URL;
const here = new URL(".", import.meta.url).pathname;
const dist = join(here, "dist");
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };

test("a Vite build of the package runs in the browser", async () => {
  assert.ok(RELAY, "RELAY_URL must be set");
  execFileSync(join(here, "../../node_modules/.bin/vite"), ["build", "--config", join(here, "vite-app/vite.config.js")], { stdio: "inherit" });
  const assets = readdirSync(join(dist, "assets"));
  assert.ok(assets.some((f) => f.endsWith(".wasm")), `the .wasm is emitted as an asset: ${assets}`);
  const server = createServer((req, res) => {
    const path = join(dist, new URL(req.url, "http://x").pathname.replace(/\/$/, "/index.html"));
    if (!path.startsWith(dist) || !existsSync(path)) { res.writeHead(404).end(); return; }
    res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" }).end(readFileSync(path));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
  });
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.address().port}/?relay=${encodeURIComponent(RELAY)}`);
    await page.locator("#status").filter({ hasText: /logged in|failed/ }).waitFor();
    const text = await page.locator("#status").innerText();
    assert.match(text, /logged in as vite-.* at \/login\/.*\/1 with 1 login/);
  } finally {
    await browser.close();
    server.close();
  }
});
