// Dial → first audio packet, on loopback: browser ⇄ browser (WebRTC direct, no rtpengine: the
// same-run reference) and browser ⇄ phone (a page calls baresip through the relay and a real
// rtpengine). Headless Chromium with fake devices (the flags of the browser tests), the relay
// binary of RESTSIP_RELAY_BIN (bench/media.sh builds a release one), baresip answering at once
// (answermode=auto). Each of N calls: the caller page notes the time, calls `client.dial`, and
// the time its remote audio track unmutes (Chromium unmutes a remote track at its first RTP
// packet) is the first audio packet; getStats confirms inbound packets. Browser ⇄ browser also
// times the callee's first packet (the callee answers in an `invite` handler). Prints median and
// p90 of each with the goal (≤ 300 ms). Figures only: nothing is asserted against a time.
//
// Usage: node bench/media.mjs [--calls N]    (bench/media.sh runs it in a loopback namespace)
import fs from "node:fs";
import os from "node:os";
import { chromium } from "playwright-core";
import { Baresip } from "../tests/browser/baresip.mjs";
import { BASE_FLAGS, openUser } from "../tests/browser/pages.mjs";
import { startRelay, until } from "../tests/browser/processes.mjs";
import { Rtpengine } from "../tests/browser/rtpengine.mjs";

const GOAL_MS = 300;
const args = process.argv.slice(2);
const calls = Number(args[args.indexOf("--calls") + 1] || 0) || (args.includes("--calls") ? NaN : 10);
if (!Number.isInteger(calls) || calls < 1) {
  console.error("usage: node bench/media.mjs [--calls N]  (N ≥ 1, default 10)");
  process.exit(2);
}

const stamp = Date.now();
const dir = fs.mkdtempSync(`${os.tmpdir()}/restsip-media-bench-`);
let engine, relay, browser, phone;

// In the page of the caller: dials `to`, then resolves with the times (ms since the dial) of
// the dial's resolution and of the first inbound audio packet (the remote track's unmute), and
// the inbound packets getStats counts then.
async function dialAndTime(to) {
  const t0 = performance.timeOrigin + performance.now();
  const call = await client.dial(to, { audio: true });
  const placed = performance.timeOrigin + performance.now() - t0;
  follow(call);
  const [receiver] = call.peerConnection.getReceivers().filter((r) => r.track.kind === "audio");
  const track = receiver.track;
  const first = await new Promise((resolve, reject) => {
    const at = () => resolve(performance.timeOrigin + performance.now());
    if (!track.muted) return at();
    track.addEventListener("unmute", at, { once: true });
    call.onState((s) => s === "ended" && reject(new Error(`call ended: ${call.endReason}`)));
    setTimeout(() => reject(new Error(`no audio within 10 s (state ${call.state})`)), 10_000);
  });
  let packets = 0;
  for (let i = 0; i < 100 && packets === 0; i++) {
    for (const s of (await call.peerConnection.getStats()).values()) {
      if (s.type === "inbound-rtp" && s.kind === "audio") packets = s.packetsReceived ?? 0;
    }
    if (packets === 0) await new Promise((r) => setTimeout(r, 20));
  }
  return { t0, placed, first: first - t0, packets };
}

// In the page of the callee: answers every media invitation at once and notes when its own
// first inbound audio packet arrives (absolute time, for the caller's t0).
function autoAnswer() {
  window.firsts = [];
  client.on("invite", async (invite) => {
    const call = await invite.answer({ audio: true });
    follow(call);
    const [receiver] = call.peerConnection.getReceivers().filter((r) => r.track.kind === "audio");
    const at = () => firsts.push(performance.timeOrigin + performance.now());
    if (!receiver.track.muted) at();
    else receiver.track.addEventListener("unmute", at, { once: true });
  });
}

const hangUp = async (p) => {
  await p.page.evaluate(() => call.hangUp());
};
const ended = (p) => p.page.waitForFunction(() => window.call?.state === "ended", null, { timeout: 10_000 });

function summary(name, values, goal = true) {
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest rank.
  const rank = (q) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
  const [median, p90] = [rank(0.5), rank(0.9)];
  const verdict = !goal ? "" : p90 <= GOAL_MS ? "within" : median <= GOAL_MS ? "median within, p90 over" : "over";
  return `${name.padEnd(44)} ${String(sorted.length).padStart(5)} ${median.toFixed(0).padStart(8)} ` +
    `${p90.toFixed(0).padStart(6)} ${sorted[0].toFixed(0).padStart(6)} ${sorted.at(-1).toFixed(0).padStart(6)}  ${verdict}`;
}

async function main() {
  engine = await Rtpengine.start(dir);
  relay = await startRelay(dir, ["--rtpengine", engine.addr]);
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium", args: [...BASE_FLAGS, "--use-fake-ui-for-media-stream"],
  });
  const caller = await openUser(browser, relay.url, `caller-${stamp}@example.net`);
  const callee = await openUser(browser, relay.url, `callee-${stamp}@example.net`);
  await callee.page.evaluate(autoAnswer);

  // The phone: a user of the relay, baresip registered with its account, answering at once.
  const email = `phone-${stamp}@example.net`;
  const res = await fetch(`${relay.url}/user`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password: "phone-secret" }),
  });
  if (res.status !== 201) throw new Error(`sign-up of the phone's user: ${res.status} ${await res.text()}`);
  phone = await Baresip.start(fs.mkdtempSync(`${dir}/phone-`),
    { relay: relay.sip, email, password: "phone-secret", answermode: "auto" });
  await phone.registered();

  const results = { b2bCaller: [], b2bCallee: [], b2bPlaced: [], b2pCaller: [], b2pPlaced: [] };
  // One unmeasured call of each kind first (Chromium and baresip warm up their codecs).
  for (let i = 0; i <= calls; i++) {
    // The callee's first packet of this call: the entry after those of earlier calls (its
    // packet may come after the caller's, when dialAndTime has already resolved).
    const before = await callee.page.evaluate(() => firsts.length);
    const b2b = await caller.page.evaluate(dialAndTime, callee.email);
    const calleeFirst = await until("the callee's first audio packet",
      () => callee.page.evaluate((n) => firsts[n], before), { timeout: 10_000 });
    await hangUp(caller);
    await ended(callee);
    const closed = phone.events.filter((e) => e.type === "CALL_CLOSED").length;
    const b2p = await caller.page.evaluate(dialAndTime, email);
    await hangUp(caller);
    await until("the phone's call closes", () => phone.events.filter((e) => e.type === "CALL_CLOSED").length > closed);
    await until("rtpengine holds no call", async () => (await engine.calls()).length === 0);
    if (b2b.packets === 0 || b2p.packets === 0) throw new Error(`no inbound packets: ${JSON.stringify({ b2b, b2p })}`);
    if (i === 0) continue;
    results.b2bCaller.push(b2b.first);
    results.b2bCallee.push(calleeFirst - b2b.t0);
    results.b2bPlaced.push(b2b.placed);
    results.b2pCaller.push(b2p.first);
    results.b2pPlaced.push(b2p.placed);
    process.stderr.write(`call ${i}/${calls}: browser ⇄ browser ${b2b.first.toFixed(0)} ms, browser ⇄ phone ${b2p.first.toFixed(0)} ms\n`);
  }

  console.log(`\ndial → first audio packet, loopback, ${calls} calls each (ms; goal ≤ ${GOAL_MS} ms)`);
  console.log(`relay ${process.env.RESTSIP_RELAY_BIN ?? "target/debug/relay-server"}, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(2)}`);
  console.log(`${"".padEnd(44)} calls   median    p90    min    max`);
  console.log(summary("browser ⇄ browser: caller's first packet", results.b2bCaller));
  console.log(summary("browser ⇄ browser: callee's first packet", results.b2bCallee));
  console.log(summary("browser ⇄ phone (rtpengine): page's first", results.b2pCaller));
  console.log(summary("  (dial resolved, browser ⇄ browser)", results.b2bPlaced, false));
  console.log(summary("  (dial resolved, browser ⇄ phone)", results.b2pPlaced, false));
  const ref = (a) => [...a].sort((x, y) => x - y)[Math.ceil(a.length / 2) - 1];
  console.log(`browser ⇄ phone / browser ⇄ browser (medians, caller's first packet): ` +
    `${(ref(results.b2pCaller) / ref(results.b2bCaller)).toFixed(2)}x`);
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  console.error(e);
  for (const log of [relay?.log, engine?.log, phone?.log]) if (log) console.error(log.tail(3000));
} finally {
  await browser?.close();
  phone?.stop();
  relay?.stop();
  engine?.stop();
  if (!failed) fs.rmSync(dir, { recursive: true, force: true });
  else console.error(`the logs are in ${dir}`);
}
process.exit(failed ? 1 : 0);
