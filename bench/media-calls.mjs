// Concurrent browser ⇄ phone calls through one relay and one rtpengine, with audio flowing
// (goal ≥ 200). Chromium cannot hold hundreds of pages on this machine, so the parts stand in:
// - each "browser" is a UDP socket behind a second rtpengine, which turns the socket's plain
//   offer into a real WebRTC one (ICE, DTLS-SRTP, rtcp-mux) and does ICE and DTLS with the
//   relay's rtpengine, as a browser would; its web user is one relay user (alice) SENDing an
//   invitation per call over REST and reading the answers on her login's NDJSON stream;
// - the phone is one SIP UA over UDP (a user registered with MD5 digest) answering every
//   INVITE with PCMU on one RTP socket that echoes each packet back to where it came from.
// Every call: a packet every 20 ms from the browser socket, through both rtpengines to the
// phone and echoed all the way back. Printed: calls established, packets per call (each
// browser socket's echoes, and the relay's rtpengine's per-call `query` counts of both legs),
// the relay's CPU time per call set-up and the rtpengine's CPU (/proc/PID/stat before and
// after), beside the same figures of the browser's rtpengine (the same-run reference: the
// media work of one WebRTC leg without SIP). Figures only: nothing is asserted.
//
// Usage: node bench/media-calls.mjs [--calls 200] [--seconds 10] [--batch 10] [--codec pcmu|opus]
//   --codec pcmu: the browser offers Opus and PCMU (as Chromium does) and the PCMU-only phone
//   makes it PCMU end to end; opus: the browser offers Opus only, and rtpengine transcodes.
import { execFileSync, fork, spawn } from "node:child_process";
import crypto from "node:crypto";
import dgram from "node:dgram";
import fs from "node:fs";
import os from "node:os";
import { startRelay } from "../tests/browser/processes.mjs";
import { Rtpengine } from "../tests/browser/rtpengine.mjs";

const GOAL = 200;
function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at < 0 ? fallback : process.argv[at + 1];
}
const calls = Number(option("calls", 200));
const seconds = Number(option("seconds", 10));
const batch = Number(option("batch", 10));
const codec = option("codec", "pcmu");
if (![calls, seconds, batch].every((n) => Number.isInteger(n) && n > 0) || !["pcmu", "opus"].includes(codec)) {
  console.error("usage: node bench/media-calls.mjs [--calls N] [--seconds S] [--batch B] [--codec pcmu|opus]");
  process.exit(2);
}
const [ALICE, CAROL, PASSWORD] = ["alice@example.net", "carol@example.net", "bench-secret"];
const dir = fs.mkdtempSync(`${os.tmpdir()}/restsip-media-calls-`);
// Clock ticks per second of /proc/PID/stat (USER_HZ: `getconf CLK_TCK`).
const TICK = Number(execFileSync("getconf", ["CLK_TCK"]).toString()) || 100;
const md5 = (s) => crypto.createHash("md5").update(s).digest("hex");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// CPU seconds (user + system) of process `pid` so far.
function cpu(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICK;
}

// A UDP socket bound on 127.0.0.1 with a 4 MB receive buffer (net.core.rmem_max allowing:
// bursts of hundreds of calls' packets); resolves to it.
function udp() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type: "udp4", recvBufferSize: 4 << 20 });
    s.once("error", reject);
    s.bind(0, "127.0.0.1", () => resolve(s));
  });
}

const header = (msg, name) => msg.split("\r\n\r\n")[0].split("\r\n")
  .find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`))?.replace(/^[^:]*:\s*/, "");
const headers = (msg, name) => msg.split("\r\n\r\n")[0].split("\r\n")
  .filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));

// The phone's media: a process of its own (its own event loop, beside the senders') whose one
// socket sends every RTP packet back where it came from; `count()` is how many it echoed.
class Echo {
  static async start() {
    const source = `const s = require("node:dgram").createSocket({ type: "udp4", recvBufferSize: 4 << 20 });
      let n = 0;
      s.on("message", (m, from) => { n++; s.send(m, from.port, from.address); });
      s.bind(0, "127.0.0.1", () => process.send({ port: s.address().port }));
      process.on("message", () => process.send({ echoed: n }));
      process.on("disconnect", () => process.exit(0));`;
    const child = spawn(process.execPath, ["-e", source], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const { port } = await new Promise((resolve) => child.once("message", resolve));
    return Object.assign(new Echo(), { child, port });
  }

  count() {
    return new Promise((resolve) => {
      this.child.once("message", (m) => resolve(m.echoed));
      this.child.send("count");
    });
  }

  close() {
    this.child.kill();
  }
}

// The browsers' RTP sockets, spread over processes of bench/rtp-senders.mjs (one event loop
// cannot send hundreds of calls' packets every 20 ms on a shared machine).
class Senders {
  constructor(count) {
    this.refs = new Map();
    this.next = 0;
    this.children = Array.from({ length: count }, () => {
      const child = fork(new URL("./rtp-senders.mjs", import.meta.url), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
      child.on("message", (m) => {
        this.refs.get(m.ref)?.(m);
        this.refs.delete(m.ref);
      });
      return child;
    });
  }

  // A request to the process of call `i` (its index there: k).
  ask(i, message) {
    const ref = ++this.next;
    const child = this.children[i % this.children.length];
    return new Promise((resolve) => {
      this.refs.set(ref, resolve);
      child.send({ ...message, k: Math.floor(i / this.children.length), ref });
    });
  }

  // Sends for `seconds` from every process; per call [sent, got], the ticks and the time taken.
  async run(seconds) {
    const replies = await Promise.all(this.children.map((_, c) => this.ask(c, { op: "run", seconds })));
    const counts = [];
    replies.forEach((r, c) => r.counts.forEach((n, k) => (counts[k * this.children.length + c] = n)));
    return { counts, ticks: Math.min(...replies.map((r) => r.ticks)), seconds: Math.max(...replies.map((r) => r.seconds)) };
  }

  close() {
    for (const c of this.children) c.kill();
  }
}

// The phone: carol's SIP UA on one socket, answering every INVITE with PCMU on `echo`'s port.
class Phone {
  static async start(relaySip, echoPort) {
    const phone = new Phone(await udp(), relaySip, echoPort);
    phone.socket.on("message", (m) => phone.on(m.toString("latin1")));
    return phone;
  }

  constructor(socket, relaySip, echoPort) {
    const [host, port] = relaySip.split(":");
    Object.assign(this, { socket, host, port: Number(port), echoPort, answered: new Map(), waiting: [] });
    this.me = socket.address().port;
  }

  send(text) {
    this.socket.send(Buffer.from(text, "latin1"), this.port, this.host);
  }

  // The next response (for REGISTER).
  response() {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  register(cseq, authorization = "") {
    const me = this.me;
    this.send(`REGISTER sip:${this.host}:${this.port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${me};branch=z9hG4bK-reg-${cseq}-${me};rport\r\n` +
      `Max-Forwards: 70\r\nTo: <sip:${CAROL}>\r\nFrom: <sip:${CAROL}>;tag=r${me}\r\nCall-ID: reg-${me}\r\n` +
      `CSeq: ${cseq} REGISTER\r\nContact: <sip:carol@127.0.0.1:${me}>\r\nExpires: 3600\r\n${authorization}Content-Length: 0\r\n\r\n`);
  }

  // Registers with an MD5 digest answer to the relay's challenge.
  async registered() {
    let reply = this.response();
    this.register(1);
    const challenge = await reply;
    const line = headers(challenge, "WWW-Authenticate").find((l) => l.includes("algorithm=MD5"));
    if (!line) throw new Error(`no MD5 challenge: ${challenge}`);
    const param = (n) => line.match(new RegExp(`${n}="([^"]*)"`))[1];
    const [realm, nonce, uri] = [param("realm"), param("nonce"), `sip:${this.host}:${this.port}`];
    const response = md5(`${md5(`${CAROL}:${realm}:${PASSWORD}`)}:${nonce}:00000001:c0ffee:auth:${md5(`REGISTER:${uri}`)}`);
    reply = this.response();
    this.register(2, `Authorization: Digest username="${CAROL}", realm="${realm}", nonce="${nonce}", uri="${uri}", ` +
      `response="${response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee"\r\n`);
    const ok = await reply;
    if (!ok.startsWith("SIP/2.0 200")) throw new Error(`REGISTER: ${ok.split("\r\n")[0]}`);
  }

  // A response to `req`: `status`, our To tag, `extra` header lines and `body`.
  reply(req, status, extra = "", body = "") {
    let text = `SIP/2.0 ${status}\r\n`;
    for (const name of ["Via", "From", "Call-ID", "CSeq"]) for (const l of headers(req, name)) text += `${l}\r\n`;
    const to = headers(req, "To")[0];
    text += to.includes(";tag=") ? `${to}\r\n` : `${to};tag=p${this.me}\r\n`;
    return `${text}${extra}Content-Length: ${Buffer.byteLength(body, "latin1")}\r\n\r\n${body}`;
  }

  on(msg) {
    if (msg.startsWith("SIP/2.0 ")) {
      if (!msg.startsWith("SIP/2.0 1")) this.waiting.shift()?.(msg);
      return;
    }
    const method = msg.split(" ")[0];
    if (method === "ACK") return;
    if (method === "INVITE" && !header(msg, "To").includes(";tag=")) {
      // A retransmitted INVITE gets the same 200 again.
      const callId = header(msg, "Call-ID");
      if (!this.answered.has(callId)) {
        const sdp = `v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n` +
          `m=audio ${this.echoPort} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n`;
        this.answered.set(callId, this.reply(msg, "200 OK",
          `Contact: <sip:carol@127.0.0.1:${this.me}>\r\nContent-Type: application/sdp\r\n`, sdp));
      }
      this.send(this.answered.get(callId));
      return;
    }
    // BYE, OPTIONS keep-alives, re-INVITEs without media changes: 200.
    this.send(this.reply(msg, "200 OK"));
  }
}

// The web user's stream (NDJSON): the `accept` of each invitation, by its id.
async function acceptStream(url, auth, loginId, accepts) {
  const res = await fetch(`${url}/login/${ALICE}/${loginId}?stream=ndjson`, { headers: { authorization: auth } });
  if (!res.ok) throw new Error(`stream: ${res.status}`);
  let buffer = "";
  (async () => {
    for await (const chunk of res.body) {
      buffer += Buffer.from(chunk).toString();
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (!line) continue;
        const event = JSON.parse(line);
        const body = event.data?.body;
        if (event.kind === "message" && body?.command === "accept") accepts.get(body.id)?.(body.sdp);
      }
    }
  })().catch(() => {});
}

// A plain offer of the browser socket on `port`: Opus (and PCMU, as Chromium offers it).
const browserSdp = (port) => `v=0\r\no=browser 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n` +
  `m=audio ${port} RTP/AVP 111${codec === "pcmu" ? " 0" : ""}\r\na=rtpmap:111 opus/48000/2\r\n` +
  `a=fmtp:111 minptime=10;useinbandfec=1\r\n${codec === "pcmu" ? "a=rtpmap:0 PCMU/8000\r\n" : ""}a=sendrecv\r\n`;

const quantile = (values, q) => {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.max(0, Math.ceil(q * s.length) - 1)] : 0;
};

let engine, browsers, relay, phone, echo, senders;
async function main() {
  // Wide port ranges, one per engine (4 ports a call on each side of each engine).
  engine = await Rtpengine.start(dir, { ports: [20_000, 20_000 + calls * 8 + 40] });
  browsers = await Rtpengine.start(dir, { name: "browser-rtpengine", ports: [40_000, 40_000 + calls * 8 + 40] });
  relay = await startRelay(dir, ["--rtpengine", engine.addr]);
  for (const [email] of [[ALICE], [CAROL]]) {
    const r = await fetch(`${relay.url}/user`, { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password: PASSWORD }) });
    if (r.status !== 201) throw new Error(`sign-up ${email}: ${r.status} ${await r.text()}`);
  }
  echo = await Echo.start();
  senders = new Senders(Math.max(2, os.cpus().length));
  phone = await Phone.start(relay.sip, echo.port);
  await phone.registered();
  const auth = `Basic ${Buffer.from(`${ALICE}:${PASSWORD}`).toString("base64")}`;
  const login = await (await fetch(`${relay.url}/login/${ALICE}`, { method: "POST",
    headers: { authorization: auth, "content-type": "application/json" }, body: "{}" })).json();
  const accepts = new Map();
  await acceptStream(relay.url, auth, login.id, accepts);

  // Set-up, `batch` calls at a time.
  const established = [];
  const failures = [];
  const cpu0 = { relay: cpu(relay.child.pid), engine: cpu(engine.child.pid), browsers: cpu(browsers.child.pid) };
  const t0 = Date.now();
  async function setUp(i) {
    const { port } = await senders.ask(i, { op: "open" });
    const call = { i, id: `b${i}`, got: 0, sent: 0 };
    const offer = await browsers.request({ command: "offer", "call-id": call.id, "from-tag": "page",
      sdp: browserSdp(port), "transport-protocol": "UDP/TLS/RTP/SAVPF", ICE: "force",
      DTLS: "passive", "rtcp-mux": ["offer"], SDES: ["off"], flags: ["generate mid"],
      replace: ["origin", "session-connection"] }, 10_000);
    if (offer.result !== "ok") throw new Error(`browser offer: ${JSON.stringify(offer)}`);
    const accepted = new Promise((resolve, reject) => {
      accepts.set(call.id, resolve);
      setTimeout(() => reject(new Error("no accept within 20 s")), 20_000);
    });
    const r = await fetch(`${relay.url}/login/${CAROL}`, { method: "SEND",
      headers: { authorization: auth, "content-type": "application/json" },
      body: JSON.stringify({ command: "invite", sdp: offer.sdp, id: call.id }) });
    if (r.status >= 300) throw new Error(`SEND invite: ${r.status} ${await r.text()}`);
    const answer = await browsers.request({ command: "answer", "call-id": call.id, "from-tag": "page",
      "to-tag": "relay", sdp: await accepted, replace: ["origin", "session-connection"] }, 10_000);
    if (answer.result !== "ok") throw new Error(`browser answer: ${JSON.stringify(answer)}`);
    const m = answer.sdp.match(/^m=audio (\d+) RTP\/AVP (\d+)/m);
    await senders.ask(i, { op: "target", port: Number(m[1]), pt: Number(m[2]), i });
    established.push(call);
  }
  for (let i = 0; i < calls; i += batch) {
    const results = await Promise.allSettled(Array.from({ length: Math.min(batch, calls - i) }, (_, k) => setUp(i + k)));
    for (const r of results) if (r.status === "rejected") failures.push(r.reason.message);
    process.stderr.write(`\r${established.length} calls set up, ${failures.length} failed`);
  }
  const setupSeconds = (Date.now() - t0) / 1000;
  const cpu1 = { relay: cpu(relay.child.pid), engine: cpu(engine.child.pid), browsers: cpu(browsers.child.pid) };
  process.stderr.write(`\n${seconds} s of audio in ${established.length} calls...\n`);

  // Audio: a packet per call every 20 ms; rtpengine's own rates half-way through.
  const halfway = sleep(seconds * 500).then(() => engine.request({ command: "statistics" }, 5000))
    .catch((e) => ({ error: e.message }));
  const sent = await senders.run(seconds);
  const [seq, audioSeconds] = [sent.ticks, sent.seconds];
  for (const c of established) [c.sent, c.got] = sent.counts[c.i];
  const stats = await halfway;
  const cpu2 = { relay: cpu(relay.child.pid), engine: cpu(engine.child.pid), browsers: cpu(browsers.child.pid) };

  // The relay's rtpengine's own counts, per call and leg.
  const legs = { browser: [], phone: [] };
  let bothWays = 0;
  // (`list` alone stops at 32 calls.)
  const list = await engine.request({ command: "list", limit: calls * 2 }, 5000);
  const callIds = list.calls ?? [];
  const echoed = await echo.count();
  for (const id of callIds) {
    const q = await engine.request({ command: "query", "call-id": id }, 5000);
    const counts = {};
    for (const tag of Object.values(q.tags ?? {})) {
      const media = tag.medias?.[0];
      const packets = (media?.streams ?? []).reduce((n, s) => n + (s.stats?.packets ?? 0), 0);
      counts[media?.protocol === "RTP/AVP" ? "phone" : "browser"] = packets;
    }
    legs.browser.push(counts.browser ?? 0);
    legs.phone.push(counts.phone ?? 0);
    if ((counts.browser ?? 0) > 0 && (counts.phone ?? 0) > 0) bothWays++;
  }
  const flowing = established.filter((c) => c.got > 0).length;
  const perSecond = (n) => (n / audioSeconds).toFixed(1);

  console.log(`\nconcurrent browser ⇄ phone calls through one relay and one rtpengine (goal ≥ ${GOAL}), codec ${codec}`);
  console.log(`relay ${process.env.RESTSIP_RELAY_BIN ?? "target/debug/relay-server"}, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(2)}`);
  console.log(`calls asked ${calls}; established ${established.length} in ${setupSeconds.toFixed(1)} s (${batch} at a time); failed ${failures.length}` +
    (failures.length ? ` (first: ${failures[0]})` : ""));
  console.log(`calls with audio back at the browser (a full round trip through the phone's echo): ${flowing}`);
  console.log(`calls the relay's rtpengine counted packets on both legs: ${bothWays} of ${callIds.length} it holds`);
  console.log(`packets per call per second (sent ${perSecond(seq)}, 50 at 20 ms): browser sent ${perSecond(quantile(established.map((c) => c.sent), 0.5))}, ` +
    `got back median ${perSecond(quantile(established.map((c) => c.got), 0.5))} (p10 ${perSecond(quantile(established.map((c) => c.got), 0.1))}); ` +
    `rtpengine received from the browser leg median ${perSecond(quantile(legs.browser, 0.5))}, from the phone leg ${perSecond(quantile(legs.phone, 0.5))}; the phone echoed ${echoed}`);
  if (seq / audioSeconds < 45) {
    console.log(`(the senders fell behind the 20 ms pace: sharing the cores, they sent ${perSecond(seq)} packets a call a second)`);
  }
  const per = (a, b, k) => ((b[k] - a[k]) * 1000) / Math.max(1, established.length);
  console.log(`CPU per call set-up (ms): relay ${per(cpu0, cpu1, "relay").toFixed(2)}, relay's rtpengine ${per(cpu0, cpu1, "engine").toFixed(2)}, ` +
    `browsers' rtpengine (reference: one WebRTC leg, no SIP) ${per(cpu0, cpu1, "browsers").toFixed(2)}`);
  const load = (k) => ((cpu2[k] - cpu1[k]) / audioSeconds) * 100;
  console.log(`CPU during audio (% of one core): relay's rtpengine ${load("engine").toFixed(1)} ` +
    `(${(load("engine") / Math.max(1, established.length)).toFixed(3)} per call), browsers' rtpengine ${load("browsers").toFixed(1)}, relay ${load("relay").toFixed(1)}`);
  const totals = stats.statistics?.currentstatistics ?? stats.currentstatistics ?? {};
  if (Object.keys(totals).length) console.log(`the relay's rtpengine's statistics half-way: ${JSON.stringify(totals)}`);
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  console.error(e);
  for (const log of [relay?.log, engine?.log, browsers?.log]) if (log) console.error(log.tail(3000));
} finally {
  senders?.close();
  echo?.close();
  phone?.socket.close();
  relay?.stop();
  engine?.stop();
  browsers?.stop();
  if (!failed) fs.rmSync(dir, { recursive: true, force: true });
  else console.error(`the logs are in ${dir}`);
}
process.exit(failed ? 1 : 0);
