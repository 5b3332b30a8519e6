// Calls with media between two pages (two users, two browser contexts) through a real relay, in
// headless Chromium with fake devices: dial, answer, audio both ways (getStats: packets and
// energy of the remote stream played in an <audio> element), hold and resume, mute, DTMF,
// hang-up; a refused getUserMedia; a rejected and a cancelled call. Only the client's public
// API is used; the pages never touch SDP. Needs RELAY_URL (a relay serving www/, started by
// scripts/test-browser.sh).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { BASE_FLAGS, direction, inboundAudio, openUser, state, waitState } from "./pages.mjs";

const RELAY = process.env.RELAY_URL;
const stamp = Date.now();
let browser; // the microphone is granted (fake UI)
let refusing; // no fake UI: getUserMedia is refused
const pages = [];

before(async () => {
  assert.ok(RELAY, "RELAY_URL must point at a relay serving www/");
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium", args: [...BASE_FLAGS, "--use-fake-ui-for-media-stream"],
  });
  refusing = await chromium.launch({ executablePath: "/usr/bin/chromium", args: BASE_FLAGS });
});
after(async () => {
  await browser?.close();
  await refusing?.close();
});

// A user of the test (`name`, stamped) on a page of `from`: see openUser.
async function user(name, from = browser, signUp = true) {
  const p = await openUser(from, RELAY, `${name}-${stamp}@example.net`, signUp);
  pages.push(p.page);
  return p;
}

test("two pages call each other: audio both ways, hold, resume, mute, DTMF, hang-up", async () => {
  const a = await user("alice");
  const b = await user("bob");

  // Alice dials Bob: placed, and ringing once Bob's page has the invitation.
  const placed = await a.page.evaluate(async (to) => follow(await client.dial(to, { audio: true })), b.email);
  assert.ok(["calling", "ringing"].includes(placed), placed);
  assert.equal(await a.page.evaluate(() => call.peer), b.email);

  // Bob's page gets the invite, a call with media, and answers it.
  await b.page.waitForFunction(() => invites.length === 1);
  assert.equal(await b.page.evaluate(() => invites[0].media), true);
  assert.equal(await b.page.evaluate(() => invites[0].from), a.email);
  const answered = await b.page.evaluate(async () => follow(await invites[0].answer({ audio: true })));
  assert.equal(answered, "active");
  assert.equal(await b.page.evaluate(() => invites[0].state), "accepted");
  await waitState(a, "active");
  assert.equal(await b.page.evaluate(() => call.peer), a.email);

  // Audio flows both ways and plays: packets and energy on each side.
  const [atA, atB] = await Promise.all([inboundAudio(a), inboundAudio(b)]);
  assert.ok(atA.packets > 0 && atA.energy > 0 && atB.packets > 0 && atB.energy > 0);
  assert.equal(await direction(a), "sendrecv");

  // Alice holds: both held, Alice sends only, Bob receives only. Then resume: both active.
  await a.page.evaluate(() => call.hold());
  assert.equal(await state(a), "held");
  await waitState(b, "held");
  assert.equal(await direction(a), "sendonly");
  assert.equal(await direction(b), "recvonly");
  await a.page.evaluate(() => call.resume());
  assert.equal(await state(a), "active");
  await waitState(b, "active");
  assert.equal(await direction(a), "sendrecv");
  assert.equal(await direction(b), "sendrecv");
  // Audio still flows after the resume.
  await inboundAudio(b, await inboundAudio(b));

  // Mute: Alice's microphone track is disabled (the call stays up), then enabled again.
  await a.page.evaluate(() => call.mute(true));
  assert.equal(await a.page.evaluate(() => call.localStream.getAudioTracks()[0].enabled), false);
  assert.equal(await state(a), "active");
  await a.page.evaluate(() => call.mute(false));
  assert.equal(await a.page.evaluate(() => call.localStream.getAudioTracks()[0].enabled), true);

  // DTMF: resolves once played; something that is not DTMF is refused.
  await a.page.evaluate(() => call.sendDtmf("1#"));
  const bad = await a.page.evaluate(() => call.sendDtmf("x").then(() => "sent", (e) => e.code));
  assert.equal(bad, "invalid-argument");

  // Bob hangs up: both ended, Alice with the reason; the tracks stop.
  await b.page.evaluate(() => call.hangUp());
  assert.equal(await state(b), "ended");
  await waitState(a, "ended");
  assert.equal(await a.page.evaluate(() => call.endReason), "remote-hangup");
  assert.equal(await b.page.evaluate(() => call.endReason), "hangup");
  assert.equal(await a.page.evaluate(() => call.localStream.getTracks().every((t) => t.readyState === "ended")), true);
  assert.deepEqual(await a.page.evaluate(() => states), [placed, "active", "held", "active", "ended"]);
  assert.deepEqual(await b.page.evaluate(() => states), ["active", "held", "active", "ended"]);
  // Hanging up again is a no-op; holding an ended call is refused.
  await b.page.evaluate(() => call.hangUp());
  assert.equal(await b.page.evaluate(() => call.hold().then(() => "held", (e) => e.code)), "conflict");
  assert.deepEqual([...a.errors, ...b.errors], [], "no uncaught errors in either page");
});

test("a refused microphone is media-denied, for dialling and for answering", async () => {
  const c = await user("carol", refusing);
  const d = await user("dave");
  const code = await c.page.evaluate((to) => client.dial(to, {}).then(() => "placed", (e) => `${e.name} ${e.code}`), d.email);
  assert.equal(code, "RestsipError media-denied");

  // Dave calls Carol: her invite is a media call, but answering it is refused too.
  await d.page.evaluate(async (to) => follow(await client.dial(to)), c.email);
  await c.page.waitForFunction(() => invites.length === 1);
  const answered = await c.page.evaluate(() => invites[0].answer().then(() => "answered", (e) => e.code));
  assert.equal(answered, "media-denied");
  // Dave gives up while it rings: Carol's invitation is cancelled.
  await d.page.evaluate(() => call.hangUp());
  assert.equal(await d.page.evaluate(() => call.endReason), "hangup");
  await c.page.waitForFunction(() => invites[0].state === "cancelled");
});

test("a rejected call ends with the reason", async () => {
  const e = await user("erin");
  const f = await user("frank");
  await e.page.evaluate(async (to) => follow(await client.dial(to)), f.email);
  await f.page.waitForFunction(() => invites.length === 1);
  await f.page.evaluate(() => invites[0].reject("busy"));
  await waitState(e, "ended");
  assert.equal(await e.page.evaluate(() => call.endReason), "rejected");
});

test("a call to a user rings every login; the first to answer wins, the others stop ringing", async () => {
  const caller = await user("ivan");
  const desk = await user("judy");
  const laptop = await user("judy", browser, false); // the same user, logged in again elsewhere
  await caller.page.evaluate(async (to) => follow(await client.dial(to)), desk.email);
  for (const p of [desk, laptop]) await p.page.waitForFunction(() => invites.length === 1);
  await laptop.page.evaluate(async () => follow(await invites[0].answer()));
  await waitState(caller, "active");
  await desk.page.waitForFunction(() => invites[0].state === "cancelled");
  // The caller talks to the login that answered only.
  await inboundAudio(caller);
  await caller.page.evaluate(() => call.hangUp());
  await waitState(laptop, "ended");
  assert.equal(await laptop.page.evaluate(() => call.endReason), "remote-hangup");
});

// The demo page's phone (www/phone.js), used as two people would: log in, call, answer, hold,
// mute, DTMF, hang up, with the timer running. Screenshots go to tests/artifacts/.
async function demoUser(name) {
  const page = await (await browser.newContext()).newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(RELAY);
  const email = `${name}-demo-${stamp}@example.net`;
  await page.getByTestId("email").fill(email);
  await page.getByTestId("password").fill("secret");
  await page.getByTestId("signup").click();
  await page.getByTestId("me").filter({ hasText: email }).waitFor();
  return { page, email, errors };
}

test("the demo's phone: dial, ring, answer, timer, hold, mute, DTMF, hang up", async () => {
  const artifacts = new URL("../artifacts/", import.meta.url).pathname;
  const a = await demoUser("gina");
  const b = await demoUser("hugo");
  await a.page.getByTestId("dial-to").fill(b.email);
  await a.page.getByTestId("dial").click();
  await b.page.getByTestId("ringing-from").filter({ hasText: a.email }).waitFor();
  await b.page.screenshot({ path: `${artifacts}/phone-hugo-ringing.png`, fullPage: true });
  await b.page.getByTestId("answer").click();
  for (const p of [a, b]) await p.page.getByTestId("call-state").filter({ hasText: /^active$/ }).waitFor();
  assert.equal(await a.page.getByTestId("call-peer").innerText(), b.email);
  // The timer runs.
  await a.page.getByTestId("call-timer").filter({ hasText: /^0:0[1-9]$/ }).waitFor();
  // The remote stream plays in the page's <audio> element.
  await a.page.waitForFunction(() => {
    const audio = document.querySelector("[data-testid=remote-audio]");
    return audio.srcObject && !audio.paused && audio.srcObject.getAudioTracks().length === 1;
  });
  await a.page.getByTestId("hold").click();
  await b.page.getByTestId("call-state").filter({ hasText: /^held$/ }).waitFor();
  await a.page.getByTestId("hold").filter({ hasText: "Resume" }).waitFor();
  await a.page.screenshot({ path: `${artifacts}/phone-gina-holding.png`, fullPage: true });
  await a.page.getByTestId("hold").click();
  await b.page.getByTestId("call-state").filter({ hasText: /^active$/ }).waitFor();
  await a.page.getByTestId("mute").click();
  await a.page.getByTestId("mute").filter({ hasText: "Unmute" }).waitFor();
  await a.page.getByTestId("dtmf-5").click();
  await a.page.getByTestId("dtmf-#").click();
  await a.page.getByTestId("dtmf-sent").filter({ hasText: "5#" }).waitFor();
  await a.page.screenshot({ path: `${artifacts}/phone-gina-in-call.png`, fullPage: true });
  await b.page.getByTestId("hangup").click();
  await a.page.getByTestId("call-ended").filter({ hasText: "remote-hangup" }).waitFor();
  await b.page.getByTestId("call-ended").filter({ hasText: "hangup" }).waitFor();
  assert.equal(await a.page.getByTestId("in-call").isHidden(), true);
  await a.page.screenshot({ path: `${artifacts}/phone-gina-ended.png`, fullPage: true });

  // A second call, declined.
  await b.page.getByTestId("dial-to").fill(a.email);
  await b.page.getByTestId("dial").click();
  await a.page.getByTestId("decline").click();
  await b.page.getByTestId("call-ended").filter({ hasText: "rejected" }).waitFor();

  // A video call: pictures both ways.
  await a.page.getByTestId("dial-to").fill(b.email);
  await a.page.getByTestId("dial-video").check();
  await a.page.getByTestId("dial").click();
  await b.page.getByTestId("answer-video").click();
  for (const p of [a, b]) {
    await p.page.waitForFunction(() => document.querySelector("[data-testid=remote-video]").videoWidth > 0);
  }
  await b.page.screenshot({ path: `${artifacts}/phone-hugo-video.png`, fullPage: true });
  await a.page.getByTestId("hangup").click();
  await b.page.getByTestId("call-ended").filter({ hasText: "remote-hangup" }).waitFor();
  assert.deepEqual([...a.errors, ...b.errors], [], "no uncaught errors in either page");
});
