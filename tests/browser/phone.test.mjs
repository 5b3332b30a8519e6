// A real browser calls a real SIP phone and back, through the relay and a real rtpengine: a page
// in headless Chromium (fake devices; its microphone a steady 440 Hz tone from a WAV file) and
// baresip (G.711 only; its microphone a 1 kHz tone; what it decodes written to a WAV file),
// registered at the relay as a user. Audio both ways (the phone decodes the page's 440 Hz tone,
// by its RMS and pitch; the page's getStats shows inbound packets and energy of the phone's
// tone playing in an <audio> element), the codecs each side negotiated, hold and resume from
// the page (the directions of the page's transceiver and of the re-INVITEs in the phone's SIP
// trace) and from the phone (the page's state and direction), DTMF as RFC 4733
// telephone-event (baresip's DTMF events, and no SIP INFO) and the phone's keys reaching the
// page's onDtmf (RFC 4733 through rtpengine's DTMF log, --rtpengine-dtmf), hang-up from each side (page
// `ended`, the phone's call closed, rtpengine holding no call), and a phone that vanishes
// (killed: its TCP connection closes) ending the page's call. Only the client's public API is
// used. Starts its own rtpengine and relay (--rtpengine); run by scripts/test-browser.sh in a
// network namespace with only loopback, so every ICE candidate is 127.0.0.1. On failure the
// ends of every process's log are printed and the files are kept.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import { chromium } from "playwright-core";
import { Baresip } from "./baresip.mjs";
import { BASE_FLAGS, direction, inboundAudio, openUser, state, waitState } from "./pages.mjs";
import { freeUdpPort, startRelay, until } from "./processes.mjs";
import { Rtpengine } from "./rtpengine.mjs";

const stamp = Date.now();
const dir = fs.mkdtempSync(`${os.tmpdir()}/restsip-phone-`);
let engine;
let relay;
let browser;
const phones = [];
let failed = false;

// One second of a 440 Hz tone, 48 kHz mono 16-bit: the page's microphone (looped by Chromium).
const TONE = 440;
function toneWav(path, hz = TONE, rate = 48_000) {
  const data = Buffer.alloc(rate * 2);
  for (let i = 0; i < rate; i++) data.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * hz * i) / rate)), i * 2);
  const header = Buffer.alloc(44);
  header.write("RIFF", 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write("WAVEfmt ", 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36);
  header.writeUInt32LE(data.length, 40);
  fs.writeFileSync(path, Buffer.concat([header, data]));
}

before(async () => {
  // rtpengine logs the DTMF events it sees to the relay, which tells the page.
  const dtmf = `127.0.0.1:${await freeUdpPort()}`;
  engine = await Rtpengine.start(dir, { dtmf });
  relay = await startRelay(dir, ["--rtpengine", engine.addr, "--rtpengine-dtmf", dtmf]);
  toneWav(`${dir}/tone.wav`);
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [...BASE_FLAGS, "--use-fake-ui-for-media-stream", `--use-file-for-fake-audio-capture=${dir}/tone.wav`],
  });
});
after(async () => {
  await browser?.close();
  for (const p of phones) p.stop();
  relay?.stop();
  engine?.stop();
  // The logs, configurations and recordings stay for a failure.
  if (!failed) fs.rmSync(dir, { recursive: true, force: true });
  else console.error(`the logs are in ${dir}`);
});
// On failure, the ends of the logs of every process.
afterEach((t) => {
  if (t.passed !== false) return;
  failed = true;
  for (const log of [relay?.log, engine?.log, ...phones.map((p) => p.log)]) if (log) console.error(log.tail());
  for (const p of phones) console.error(`phone events: ${JSON.stringify(p.seen())}`);
});

// A SIP phone of user `name` (signed up at the relay), registered over `transport`.
async function phone(name, transport = "udp") {
  const email = `${name}-${stamp}@example.net`;
  const res = await fetch(`${relay.url}/user`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password: "phone-secret" }),
  });
  assert.equal(res.status, 201, await res.text());
  const home = fs.mkdtempSync(`${dir}/${name}-`);
  const p = await Baresip.start(home, { relay: relay.sip, email, password: "phone-secret", transport });
  phones.push(p);
  await p.registered();
  return Object.assign(p, { email });
}

const page = (name) => openUser(browser, relay.url, `${name}-${stamp}@example.net`);

// Waits until rtpengine holds no call (every session deleted).
const noCalls = () => until("rtpengine holds no call", async () => (await engine.calls()).length === 0,
  { detail: async () => JSON.stringify(await engine.calls()) });

// Waits until the phone has heard the page: half a second of sound at the page's tone (the
// pitch within 10%: G.711 at 8 kHz, resampled, keeps a 440 Hz tone recognisable).
const phoneHears = (p) => until("the phone receives the page's tone", () => {
  const got = p.received();
  return got.seconds >= 0.5 && Math.abs(got.hz - TONE) < TONE / 10;
}, { detail: async () => JSON.stringify(p.received()) });

// The SDP body of a SIP message of the trace.
const body = (m) => m.text.split("\n\n").slice(1).join("\n\n");

// The page holds and resumes; the directions each side sees: the page's transceiver, and the
// re-INVITEs the phone received from then on and the 200s it answered them with.
async function holdAndResume(p, ph) {
  const before = ph.messages({ received: true, start: "INVITE " }).length;
  await p.page.evaluate(() => call.hold());
  assert.equal(await state(p), "held");
  assert.equal(await direction(p), "sendonly");
  const reinvite = () => ph.messages({ received: true, start: "INVITE " }).slice(before);
  const ok = () => ph.messages({ received: false, start: "SIP/2.0 200", method: "INVITE" });
  await until("the phone receives the hold re-INVITE", () => reinvite().length === 1);
  assert.match(body(reinvite()[0]), /^a=sendonly$/m, reinvite()[0].text);
  await until("the phone answers the hold with recvonly", () => ok().some((m) => /^a=recvonly$/m.test(body(m))),
    { detail: async () => JSON.stringify(ok().map(body)) });

  await p.page.evaluate(() => call.resume());
  assert.equal(await state(p), "active");
  assert.equal(await direction(p), "sendrecv");
  await until("the phone receives the resume re-INVITE", () => reinvite().length === 2);
  assert.match(body(reinvite()[1]), /^a=sendrecv$/m, reinvite()[1].text);
  // Audio flows again to the page after the resume. (Whether the phone hears the page again
  // is not asked of baresip 1.0: its recording of what it decodes stops at a re-INVITE that
  // restarts its player, though RTP keeps reaching it.)
  await inboundAudio(p, await inboundAudio(p));
}

test("a page calls a SIP phone through rtpengine: audio both ways, codecs, hold, DTMF, the page hangs up", async () => {
  const carol = await phone("carol");
  const alice = await page("alice");
  const placed = await alice.page.evaluate(async (to) => follow(await client.dial(to, { audio: true })), carol.email);
  assert.ok(["calling", "ringing"].includes(placed), placed);

  // The phone rings with a plain RTP offer; it answers.
  await carol.event("CALL_INCOMING");
  const [invite] = carol.messages({ received: true, start: "INVITE " });
  const offer = body(invite);
  assert.match(offer, /^m=audio \d+ RTP\/AVP /m, offer);
  assert.doesNotMatch(offer, /a=(ice-ufrag|candidate|fingerprint|rtcp-mux)/, offer);
  await carol.command("accept");
  await carol.event("CALL_ESTABLISHED");
  await waitState(alice, "active");

  // Audio both ways: the phone's tone plays in the page, the page's tone reaches the phone.
  const heard = await inboundAudio(alice);
  assert.ok(heard.packets > 0 && heard.energy > 0, JSON.stringify(heard));
  await phoneHears(carol);
  // The phone answered G.711 only (all it has). The page speaks the phone's codec end to end,
  // or Opus with rtpengine transcoding.
  const [answer] = carol.messages({ received: false, start: "SIP/2.0 200" });
  const phoneCodecs = [...body(answer).matchAll(/^a=rtpmap:\d+ ([^/]+)\//gm)].map((m) => m[1]);
  assert.ok(phoneCodecs.length > 0 && phoneCodecs.every((c) => ["PCMU", "PCMA", "telephone-event"].includes(c)),
    JSON.stringify(phoneCodecs));
  const pageCodec = heard.codec?.replace("audio/", "");
  assert.ok(pageCodec === "opus" || phoneCodecs.includes(pageCodec), `${heard.codec} vs ${phoneCodecs}`);
  console.log(`page ⇄ phone: page ${heard.codec}, phone ${phoneCodecs.join(" ")}; the phone heard ${JSON.stringify(carol.received())}`);

  await holdAndResume(alice, carol);

  // DTMF from the page reaches the phone as RFC 4733 telephone-event, not as SIP INFO.
  await alice.page.evaluate(() => call.sendDtmf("1#"));
  await carol.event("CALL_DTMF_START", "1");
  await carol.event("CALL_DTMF_START", "#");
  assert.deepEqual(carol.messages({ received: true, start: "INFO ", method: "INFO" }), []);

  // The page hangs up: the phone's call closes, rtpengine forgets it.
  await alice.page.evaluate(() => call.hangUp());
  assert.equal(await state(alice), "ended");
  await carol.event("CALL_CLOSED");
  await noCalls();
  assert.deepEqual(await alice.page.evaluate(() => states), [placed, "active", "held", "active", "ended"]);
  assert.deepEqual(alice.errors, [], "no uncaught errors in the page");
});

test("a SIP phone calls a page through rtpengine: audio both ways, hold from each side, its keys reach onDtmf, the phone hangs up", async () => {
  const dave = await phone("dave");
  const bob = await page("bob");
  await dave.command("dial", `sip:${bob.email}`);

  // The page gets a media invitation and answers it.
  await bob.page.waitForFunction(() => invites.length === 1, null, { timeout: 10_000 });
  assert.equal(await bob.page.evaluate(() => invites[0].media), true);
  assert.equal(await bob.page.evaluate(() => invites[0].from), dave.email);
  assert.equal(await bob.page.evaluate(async () => follow(await invites[0].answer({ audio: true }))), "active");
  await dave.event("CALL_ESTABLISHED");

  // Audio both ways.
  const heard = await inboundAudio(bob);
  assert.ok(heard.packets > 0 && heard.energy > 0, JSON.stringify(heard));
  await phoneHears(dave);

  await holdAndResume(bob, dave);

  // The phone's keys (RFC 4733 telephone-events, seen by rtpengine) reach the page's onDtmf.
  await bob.page.evaluate(() => { window.keys = []; call.onDtmf((d) => keys.push(d)); });
  await dave.command("sndcode", "7");
  await bob.page.waitForFunction(() => keys.includes("7"), null, { timeout: 10_000 });
  await dave.command("sndcode", "#");
  await bob.page.waitForFunction(() => keys.includes("#"), null, { timeout: 10_000 });
  assert.deepEqual(await bob.page.evaluate(() => keys), ["7", "#"]);

  // The phone holds (a re-INVITE with a=sendonly): the page is held, receiving only; then it
  // resumes.
  await dave.command("hold");
  await waitState(bob, "held");
  assert.equal(await direction(bob), "recvonly");
  await dave.command("resume");
  await waitState(bob, "active");
  assert.equal(await direction(bob), "sendrecv");
  await inboundAudio(bob, await inboundAudio(bob));

  // The phone hangs up: the page's call ends, rtpengine forgets it.
  await dave.command("hangup");
  await dave.event("CALL_CLOSED");
  await waitState(bob, "ended");
  assert.equal(await bob.page.evaluate(() => call.endReason), "remote-hangup");
  await noCalls();
  assert.deepEqual(bob.errors, [], "no uncaught errors in the page");
});

test("a SIP phone that vanishes mid-call ends the page's call and frees its rtpengine session", async () => {
  const erin = await phone("erin", "tcp");
  const frank = await page("frank");
  await frank.page.evaluate(async (to) => follow(await client.dial(to, { audio: true })), erin.email);
  await erin.event("CALL_INCOMING");
  await erin.command("accept");
  await waitState(frank, "active");
  await inboundAudio(frank);
  assert.equal((await engine.calls()).length, 1);

  // The phone loses power: its TCP connection to the relay closes, and nothing else is said.
  erin.stop();
  await waitState(frank, "ended");
  assert.equal(await frank.page.evaluate(() => call.endReason), "remote-hangup");
  await noCalls();
  assert.deepEqual(frank.errors, [], "no uncaught errors in the page");
});
