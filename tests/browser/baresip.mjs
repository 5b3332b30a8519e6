// baresip (Debian's baresip-core 1.0) as the SIP phone of the browser ⇄ phone tests, configured
// as tests/src/baresip.rs does and driven the same way over ctrl_tcp (netstring-framed JSON:
// `dial`, `accept`, `hangup`; events such as CALL_INCOMING, CALL_DTMF_START, CALL_CLOSED come
// over the same connection). Only G.711 is loaded. Its microphone is `ausine`, a steady 1 kHz
// tone (what the page hears is the phone's, not an echo of the page's). Its speaker is ALSA's
// `null` device, which consumes what it is given at the pace of real time; `sndfile` writes what
// the phone decoded on its way there to dump-*-dec.wav in its directory, whose RMS and pitch
// tell whether the page's audio reached it. (aubridge, the echo of tests/src/baresip.rs, sent no
// audio in some of these calls, and with a player that nothing pulls sndfile records nothing.)
// It runs with -s: its log holds the SIP trace.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import { freePort, Log, until } from "./processes.mjs";

export class Baresip {
  // Starts a phone for account `email` registered at the relay's SIP address `relay`
  // (outbound proxy and registrar, over `transport`), its files in `dir`, and connects to
  // ctrl_tcp. `answermode`: `manual` (the tests' `accept` command) or `auto` (at once).
  static async start(dir, { relay, email, password, transport = "udp", answermode = "manual" }) {
    const [sip, ctrl] = [await freePort(), await freePort()];
    const modules = process.env.RESTSIP_BARESIP_MODULES ?? "/usr/lib/baresip/modules";
    fs.writeFileSync(`${dir}/config`, [
      "poll_method epoll", `sip_listen 127.0.0.1:${sip}`, "net_interface 127.0.0.1",
      "call_local_timeout 120", "call_max_calls 4",
      "audio_source ausine,1000", "ausrc_srate 48000", "ausrc_channels 2",
      "audio_player alsa,null", "audio_alert alsa,null",
      `snd_path ${dir}`, `module_path ${modules}`, "module g711.so", "module ausine.so", "module alsa.so",
      "module sndfile.so", "module_app account.so", "module_app menu.so", "module_app ctrl_tcp.so",
      `ctrl_tcp_listen 127.0.0.1:${ctrl}`, "",
    ].join("\n"));
    fs.writeFileSync(`${dir}/accounts`, `<sip:${email};transport=${transport}>;auth_user=${email};` +
      `auth_pass=${password};outbound="sip:${relay};transport=${transport}";regint=600;answermode=${answermode}\n`);
    fs.writeFileSync(`${dir}/contacts`, "");
    const log = new Log(`${dir}/baresip.log`, "baresip");
    const child = spawn(process.env.RESTSIP_BARESIP_BIN ?? "baresip", ["-f", dir, "-s"],
      { cwd: dir, stdio: ["ignore", log.fd, log.fd] });
    const phone = new Baresip(child, dir, log, sip);
    child.on("exit", (code, signal) => (phone.exited = code ?? signal));
    child.on("error", (e) => (phone.exited = `${e.message}: apt-get install baresip-core (scripts/setup.sh)`));
    phone.ctrl = await until("baresip's ctrl_tcp port opens", () => {
      if (phone.exited !== undefined) throw new Error(`baresip exited (${phone.exited})\n${log.tail()}`);
      return new Promise((resolve) => {
        const socket = net.connect(ctrl, "127.0.0.1", () => resolve(socket));
        socket.on("error", () => resolve(null));
      });
    });
    phone.ctrl.on("data", (data) => phone.read(data));
    return phone;
  }

  constructor(child, dir, log, sipPort) {
    Object.assign(this, { child, dir, log, sipPort, buffer: Buffer.alloc(0), events: [], replies: new Map(), token: 0 });
  }

  // Netstrings (LEN:JSON,) off the connection: events kept in order, replies by token.
  read(data) {
    this.buffer = Buffer.concat([this.buffer, data]);
    for (;;) {
      const colon = this.buffer.indexOf(":");
      if (colon < 0) return;
      const len = Number(this.buffer.subarray(0, colon).toString());
      if (this.buffer.length < colon + len + 2) return;
      const frame = JSON.parse(this.buffer.subarray(colon + 1, colon + 1 + len).toString());
      this.buffer = this.buffer.subarray(colon + len + 2);
      if (frame.event) this.events.push(frame);
      if (frame.response) this.replies.set(frame.token, frame);
    }
  }

  // Runs a menu command (`dial`, `accept`, `hangup`, ...) and returns its output.
  async command(command, params) {
    const token = String(++this.token);
    const text = JSON.stringify(params ? { command, params, token } : { command, token });
    this.ctrl.write(`${Buffer.byteLength(text)}:${text},`);
    const reply = await until(`an answer to \`${command}\``, () => this.replies.get(token));
    if (!reply.ok) throw new Error(`\`${command} ${params ?? ""}\` failed: ${reply.data}`);
    return reply.data;
  }

  // The types (and params) of the events so far, for failure messages.
  seen() {
    return this.events.map((e) => `${e.type} ${e.param ?? ""}`.trim());
  }

  // Waits for an event of `type` (whose param is `param`, when given); returns it.
  event(type, param) {
    return until(`a ${type} ${param ?? ""} event on the phone`,
      () => this.events.find((e) => e.type === type && (param === undefined || e.param === param)),
      { detail: async () => `; events: ${JSON.stringify(this.seen())}` });
  }

  // Waits until `account` (its AoR) is registered (`reginfo` shows OK).
  async registered() {
    await until("the phone is registered", async () => {
      const info = (await this.command("reginfo")).replace(/\x1b\[[0-9;]*m/g, "");
      if (info.includes("ERR") || this.events.some((e) => e.type === "REGISTER_FAIL")) {
        throw new Error(`the phone could not register: ${info}`);
      }
      return info.includes(" OK ");
    });
  }

  // The SIP messages of the trace, in order: {from, to, text}.
  trace() {
    return this.log.text().split("\x1b[36;1m#\n").slice(1).map((chunk) => {
      const [first, ...rest] = chunk.split("\x1b[;m")[0].split("\n");
      const [, from, , to] = first.split(/\s+/);
      return { from, to, text: rest.join("\n").replace(/\r/g, "") };
    });
  }

  // The SIP messages the phone received (`received`) or sent whose start line begins with
  // `start` and whose CSeq ends with `method`.
  messages({ received, start, method = "INVITE" }) {
    const me = `127.0.0.1:${this.sipPort}`;
    return this.trace().filter((m) => (received ? m.to === me : m.from === me) && m.text.startsWith(start)
      && new RegExp(`^CSeq:\\s*\\d+ ${method}$`, "mi").test(m.text));
  }

  // What the phone received and decoded in its calls so far (sndfile's dump-*-dec.wav: 8 kHz
  // 16-bit PCM after a WAV header), in 20 ms frames: how many seconds had sound (a frame's RMS
  // above 1% of full scale), their RMS (of full scale, 0..1) and their pitch in Hz (from the
  // zero crossings).
  received() {
    let [frames, sum, crossings] = [0, 0, 0];
    for (const name of fs.readdirSync(this.dir).filter((n) => /^dump-.*-dec\.wav$/.test(n))) {
      const wav = fs.readFileSync(`${this.dir}/${name}`);
      const data = wav.indexOf("data");
      for (let at = data < 0 ? wav.length : data + 8; at + 320 <= wav.length; at += 320) {
        const frame = Array.from({ length: 160 }, (_, i) => wav.readInt16LE(at + 2 * i) / 32768);
        const energy = frame.reduce((s, x) => s + x * x, 0);
        if (Math.sqrt(energy / 160) < 0.01) continue;
        frames++;
        sum += energy;
        for (let i = 1; i < 160; i++) if ((frame[i - 1] < 0) !== (frame[i] < 0)) crossings++;
      }
    }
    const seconds = frames * 0.02;
    return { seconds, rms: frames ? Math.sqrt(sum / (frames * 160)) : 0, hz: seconds ? Math.round(crossings / 2 / seconds) : 0 };
  }

  stop() {
    this.ctrl?.destroy();
    // At once (it says goodbye to nobody, as a phone losing power): on SIGTERM it would first
    // unregister from a relay that may be gone.
    this.child.kill("SIGKILL");
  }
}
