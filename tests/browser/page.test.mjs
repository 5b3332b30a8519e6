// The demo page (www/) in headless Chromium, driven like two people would use it: two browser
// contexts, two users. Needs RELAY_URL (a relay serving www/, started by scripts/test-browser.sh).
// Screenshots go to tests/artifacts/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";
import { BASE_FLAGS } from "./pages.mjs";

const RELAY = process.env.RELAY_URL;
const ARTIFACTS = new URL("../artifacts/", import.meta.url).pathname;
const stamp = Date.now();
const alice = `alice-${stamp}@example.net`;
const bob = `bob-${stamp}@example.net`;
let browser;

before(async () => {
  assert.ok(RELAY, "RELAY_URL must point at a relay serving www/");
  mkdirSync(ARTIFACTS, { recursive: true });
  // Fake microphone and camera, granted: the phone's calls get real media.
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [...BASE_FLAGS, "--use-fake-ui-for-media-stream"],
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

test("the phone: dial, ring, answer, members, timer, mute, hold and resume, the DTMF pad, hang up", async () => {
  const carla = `carla-${stamp}@example.net`;
  const dan = `dan-${stamp}@example.net`;
  const a = await signUp(carla);
  const b = await signUp(dan);

  // Carla dials Dan by email; Dan's phone rings with her name; he answers.
  await a.page.getByTestId("dial-to").fill(dan);
  await a.page.getByTestId("dial").click();
  await b.page.getByTestId("ringing").waitFor();
  assert.equal(await b.page.getByTestId("ringing-from").innerText(), carla);
  await b.page.screenshot({ path: `${ARTIFACTS}/page-phone-ringing.png`, fullPage: true });
  await b.page.getByTestId("answer").click();
  for (const p of [a.page, b.page]) await p.getByTestId("call-state").filter({ hasText: "active" }).waitFor();
  assert.equal(await a.page.getByTestId("call-peer").innerText(), dan);
  assert.equal(await b.page.getByTestId("call-peer").innerText(), carla);

  // Both see the call's two members, live; the timer runs.
  for (const p of [a.page, b.page]) {
    await p.waitForFunction(() => document.querySelectorAll("[data-testid=call-member]").length === 2);
    const members = await p.getByTestId("call-members").innerText();
    assert.ok(members.includes(carla) && members.includes(dan), members);
  }
  await a.page.getByTestId("call-timer").filter({ hasText: /^0:0[1-9]$/ }).waitFor();

  // The other side's stream plays in Dan's <audio> element.
  await b.page.waitForFunction(() => document.querySelector("[data-testid=remote-audio]").srcObject?.getAudioTracks().length > 0);

  // Mute and unmute.
  await a.page.getByTestId("mute").click();
  assert.equal(await a.page.getByTestId("mute").innerText(), "Unmute");
  await a.page.getByTestId("mute").click();
  assert.equal(await a.page.getByTestId("mute").innerText(), "Mute");

  // Carla holds: both are held; she resumes: both active again.
  await a.page.getByTestId("hold").click();
  for (const p of [a.page, b.page]) await p.getByTestId("call-state").filter({ hasText: "held" }).waitFor();
  await a.page.getByTestId("hold").filter({ hasText: "Resume" }).waitFor();
  await a.page.getByTestId("hold").click();
  for (const p of [a.page, b.page]) await p.getByTestId("call-state").filter({ hasText: "active" }).waitFor();
  await a.page.getByTestId("hold").filter({ hasText: "Hold" }).waitFor();

  // The DTMF pad plays tones in the call; the keys sent are listed.
  await a.page.getByTestId("dtmf-1").click();
  await a.page.getByTestId("dtmf-sent").filter({ hasText: "1" }).waitFor();
  await a.page.getByTestId("dtmf-#").click();
  await a.page.getByTestId("dtmf-sent").filter({ hasText: "1#" }).waitFor();
  await a.page.screenshot({ path: `${ARTIFACTS}/page-phone-in-call.png`, fullPage: true });

  // Dan hangs up: both calls end, with who ended it and how long it lasted.
  await b.page.getByTestId("hangup").click();
  await b.page.getByTestId("call-ended").filter({ hasText: "ended: hangup" }).waitFor();
  await a.page.getByTestId("call-ended").filter({ hasText: "ended: remote-hangup" }).waitFor();
  assert.equal(await a.page.getByTestId("in-call").isHidden(), true);
  assert.deepEqual([...a.errors, ...b.errors], [], "no uncaught errors in either page");
});
