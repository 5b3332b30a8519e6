// What the browser ⇄ phone tests need of processes: free ports, log files whose ends are
// printed when a test fails, waiting for a condition (never a fixed sleep), and a relay of its
// own (target/debug/relay-server or RESTSIP_RELAY_BIN) with extra flags.
import { spawn } from "node:child_process";
import dgram from "node:dgram";
import fs from "node:fs";
import net from "node:net";

// Waits until `check()` is truthy (polled every 100 ms), up to `timeout` ms; returns its value,
// or fails naming `what` and what `detail()` says then.
export async function until(what, check, { timeout = 15_000, detail = async () => "" } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`not within ${timeout} ms: ${what} ${await detail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket("udp4");
    s.on("error", reject);
    s.bind(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function tcpFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

// A port free for both UDP and TCP on 127.0.0.1 (baresip listens on both).
export async function freePort() {
  for (let i = 0; i < 100; i++) {
    const port = await freeUdpPort();
    if (await tcpFree(port)) return port;
  }
  throw new Error("no port free for both UDP and TCP");
}

// A process's output, in a file.
export class Log {
  constructor(path, name) {
    Object.assign(this, { path, name, fd: fs.openSync(path, "w") });
  }

  text() {
    return fs.readFileSync(this.path, "latin1");
  }

  // The end, for a failure message (ANSI colours removed).
  tail(chars = 6000) {
    const text = this.text().replace(/\x1b\[[0-9;]*m/g, "");
    return `--- ${this.name} (${this.path}) ---\n${text.slice(-chars)}`;
  }
}

// A relay serving www/ on free ports, with `args`; its log (RUST_LOG=info) in `dir`.
export async function startRelay(dir, args) {
  const bin = process.env.RESTSIP_RELAY_BIN ?? "target/debug/relay-server";
  const stdout = `${dir}/relay.stdout`;
  const log = new Log(`${dir}/relay.log`, "relay");
  const child = spawn(bin, ["--http", "127.0.0.1:0", "--sip", "127.0.0.1:0", "--database",
    `sqlite:${dir}/relay.db`, "--www", "www", ...args], {
    stdio: ["ignore", fs.openSync(stdout, "w"), log.fd], env: { ...process.env, RUST_LOG: "info" },
  });
  let exited = null;
  child.on("exit", (code) => (exited = code));
  child.on("error", (e) => (exited = `${e.message}: build it (cargo build -p relay-server)`));
  // Its first lines: `... http://ADDR` and `... sip on udp+tcp ADDR`.
  const lines = await until("the relay prints its addresses", () => {
    if (exited !== null) throw new Error(`the relay exited (${exited})\n${log.tail()}`);
    const text = fs.readFileSync(stdout, "utf8").split("\n");
    return text.length > 2 && text;
  });
  const url = lines[0].match(/http:\/\/[0-9.:]+/)[0];
  const sip = lines[1].match(/[0-9.]+:[0-9]+$/)[0];
  return { child, url, sip, log, stop: () => child.kill() };
}
