// The demo page (www/) in headless Chromium, driven like two people would use it: two browser
// contexts, two users. Needs RELAY_URL (a relay serving www/, started by scripts/test-browser.sh).
// Screenshots go to tests/artifacts/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const RELAY = process.env.RELAY_URL;
const ARTIFACTS = new URL("../artifacts/", import.meta.url).pathname;
const stamp = Date.now();
const alice = `alice-${stamp}@example.net`;
const bob = `bob-${stamp}@example.net`;
let browser;

before(async () => {
  assert.ok(RELAY, "RELAY_URL must point at a relay serving www/");
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
      "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"],
  });
});
after(async () => { await browser?.close(); });

async function signUp(email) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(RELAY);
  await page.getByTestId("email").fill(email);
  await page.getByTestId("password").fill("secret");
  await page.getByTestId("signup").click();
  await page.getByTestId("me").filter({ hasText: email }).waitFor();
  return { page, errors };
}

test("two people log in, see each other online, message, invite and accept", async () => {
  const a = await signUp(alice);
  const b = await signUp(bob);

  // Each watches the other and sees them online.
  for (const [me, other] of [[a, bob], [b, alice]]) {
    await me.page.getByTestId("buddy").fill(other);
    await me.page.getByTestId("watch").click();
    await me.page.getByTestId("buddy-state").filter({ hasText: "online" }).waitFor();
  }

  // Alice messages Bob; Bob's page shows it with Alice as the sender.
  await a.page.getByTestId("to").fill(bob);
  await a.page.getByTestId("text").fill("hello Bob");
  await a.page.getByTestId("send").click();
  const received = b.page.getByTestId("message");
  await received.filter({ hasText: "hello Bob" }).waitFor();
  assert.match(await received.first().innerText(), new RegExp(alice.replace(/[.]/g, "\\.")));

  // Alice creates a call and invites Bob; Bob accepts; both see two members.
  await a.page.getByTestId("create-call").click();
  await a.page.getByTestId("member").first().waitFor();
  await a.page.getByTestId("invitee").fill(bob);
  await a.page.getByTestId("invite").click();
  await b.page.getByTestId("incoming-invite").waitFor();
  await a.page.screenshot({ path: `${ARTIFACTS}/page-alice-inviting.png`, fullPage: true });
  await b.page.screenshot({ path: `${ARTIFACTS}/page-bob-invited.png`, fullPage: true });
  await b.page.getByTestId("accept").click();
  await a.page.getByTestId("invitation-state").filter({ hasText: "accepted" }).waitFor();
  for (const p of [a.page, b.page]) {
    await p.waitForFunction(() => document.querySelectorAll("[data-testid=member]").length === 2);
  }
  const members = await a.page.getByTestId("members").innerText();
  assert.ok(members.includes(alice) && members.includes(bob), members);
  await a.page.screenshot({ path: `${ARTIFACTS}/page-alice-in-call.png`, fullPage: true });
  await b.page.screenshot({ path: `${ARTIFACTS}/page-bob-in-call.png`, fullPage: true });

  // Bob leaves: Alice sees the members change live.
  await b.page.getByTestId("leave-call").click();
  await a.page.waitForFunction(() => document.querySelectorAll("[data-testid=member]").length === 1);

  // A second invitation, rejected this time, shows as rejected on Alice's page.
  await a.page.getByTestId("invitee").fill(bob);
  await a.page.getByTestId("invite").click();
  await b.page.getByTestId("reject").last().waitFor();
  await b.page.getByTestId("reject").last().click();
  await a.page.getByTestId("invitation-state").filter({ hasText: "rejected" }).waitFor();

  // Bob logs out: Alice sees him go offline.
  await b.page.getByTestId("logout").click();
  await a.page.getByTestId("buddy-state").filter({ hasText: "offline" }).waitFor();
  await a.page.screenshot({ path: `${ARTIFACTS}/page-alice-bob-offline.png`, fullPage: true });
  assert.deepEqual([...a.errors, ...b.errors], [], "no uncaught errors in either page");
});

test("a wrong password is shown as an error, not a crash", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(RELAY);
  await page.getByTestId("email").fill(alice);
  await page.getByTestId("password").fill("wrong");
  await page.getByTestId("login").click();
  await page.getByTestId("auth-error").filter({ hasText: "unauthorized" }).waitFor();
  await page.screenshot({ path: `${ARTIFACTS}/page-wrong-password.png` });
});
