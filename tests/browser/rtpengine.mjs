// A real rtpengine (Debian's rtpengine-daemon, userspace only) for the browser ⇄ phone tests:
// started on a free ng port with a port range of its own (the command line of MEDIA.md), and
// an ng client (cookie, bencode over UDP) to ask it which calls it holds. The same as
// tests/src/rtpengine.rs does for the Rust tests.
import { spawn } from "node:child_process";
import dgram from "node:dgram";
import { randomBytes } from "node:crypto";
import { freeUdpPort, Log, until } from "./processes.mjs";

// Bencode of JSON strings, integers, lists and objects (keys sorted, as bencode wants).
export function encode(value) {
  if (typeof value === "string") {
    const bytes = Buffer.from(value);
    return Buffer.concat([Buffer.from(`${bytes.length}:`), bytes]);
  }
  if (Number.isInteger(value)) return Buffer.from(`i${value}e`);
  if (Array.isArray(value)) return Buffer.concat([Buffer.from("l"), ...value.map(encode), Buffer.from("e")]);
  if (value && typeof value === "object") {
    const parts = Object.keys(value).sort().flatMap((k) => [encode(k), encode(value[k])]);
    return Buffer.concat([Buffer.from("d"), ...parts, Buffer.from("e")]);
  }
  throw new Error(`not encodable in bencode: ${value}`);
}

// The value starting at `at` of `bytes`: [value, next offset]. Byte strings become text.
export function decode(bytes, at = 0) {
  const c = String.fromCharCode(bytes[at]);
  if (c === "i") {
    const end = bytes.indexOf("e", at);
    if (end < 0) throw new Error("bad bencode integer");
    return [Number(bytes.subarray(at + 1, end).toString()), end + 1];
  }
  if (c === "l" || c === "d") {
    const items = [];
    let i = at + 1;
    while (i < bytes.length && bytes[i] !== 0x65 /* e */) {
      const [item, next] = decode(bytes, i);
      items.push(item);
      i = next;
    }
    if (i >= bytes.length) throw new Error("bencode ends early");
    if (c === "l") return [items, i + 1];
    const dict = {};
    for (let k = 0; k + 1 < items.length; k += 2) dict[items[k]] = items[k + 1];
    return [dict, i + 1];
  }
  if (c >= "0" && c <= "9") {
    const colon = bytes.indexOf(":", at);
    const len = Number(bytes.subarray(at, colon).toString());
    if (colon < 0 || colon + 1 + len > bytes.length) throw new Error("bad bencode string");
    return [bytes.subarray(colon + 1, colon + 1 + len).toString(), colon + 1 + len];
  }
  throw new Error(`bad bencode byte ${c}`);
}

export class Rtpengine {
  // Starts one on 127.0.0.1, its log in `dir`, and waits until it answers a ping. `ports`:
  // its media port range [min, max] (the benchmarks' hundreds of calls need a wide one);
  // `dtmf`: where it logs the DTMF events it sees (the relay's --rtpengine-dtmf), if anywhere.
  static async start(dir, { name = "rtpengine", ports, dtmf } = {}) {
    const ng = await freeUdpPort();
    // In the tests' own network namespace any range is free; outside it, one per process.
    const [min, max] = ports ?? [30_000 + (process.pid % 500) * 40, 30_000 + (process.pid % 500) * 40 + 39];
    const log = new Log(`${dir}/${name}.log`, name);
    const child = spawn("rtpengine", ["--config-file=none", "--foreground", "--log-stderr", "--table=-1",
      "--interface=127.0.0.1", `--listen-ng=127.0.0.1:${ng}`, `--port-min=${min}`, `--port-max=${max}`,
      ...(dtmf ? [`--dtmf-log-dest=${dtmf}`] : [])],
    { stdio: ["ignore", "ignore", log.fd] });
    const engine = new Rtpengine(child, ng, log);
    let failed = null;
    child.on("error", (e) => (failed = e.message));
    child.on("exit", (code) => (failed ??= `exited (${code})`));
    await until("rtpengine answers an ng ping", async () => {
      if (failed) throw new Error(`rtpengine ${failed} (apt-get install rtpengine-daemon: scripts/setup.sh)\n${log.tail()}`);
      return (await engine.request({ command: "ping" }, 500).catch(() => ({}))).result === "pong";
    });
    return engine;
  }

  constructor(child, port, log) {
    Object.assign(this, { child, port, log });
  }

  // The relay's --rtpengine value.
  get addr() {
    return `127.0.0.1:${this.port}`;
  }

  // One ng request; its reply.
  request(message, timeout = 2000) {
    const socket = dgram.createSocket("udp4");
    const cookie = randomBytes(6).toString("hex");
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`no ng reply from ${this.addr}`)), timeout);
      const done = (error, value) => {
        clearTimeout(timer);
        socket.close();
        error ? reject(error) : resolve(value);
      };
      socket.on("message", (reply) => {
        const space = reply.indexOf(" ");
        if (reply.subarray(0, space).toString() !== cookie) return;
        try {
          done(null, decode(reply, space + 1)[0]);
        } catch (e) {
          done(e);
        }
      });
      socket.send(Buffer.concat([Buffer.from(`${cookie} `), encode(message)]), this.port, "127.0.0.1");
    });
  }

  // The Call-IDs of the calls it holds now (`list`).
  async calls() {
    const reply = await this.request({ command: "list" });
    if (reply.result !== "ok") throw new Error(`list: ${JSON.stringify(reply)}`);
    return reply.calls;
  }

  stop() {
    this.child.kill();
  }
}
