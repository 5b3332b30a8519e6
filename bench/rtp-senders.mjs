// A process of bench/media-calls.mjs (started with fork) holding some of the browsers' RTP
// sockets, so the packets of hundreds of calls go out from more than one event loop. Messages
// from the parent, each answered with its `ref`:
//   {op: "open", k}                 a socket for call k (4 MB receive buffer) → {port}
//   {op: "target", k, port, pt, i}  where call k sends (rtpengine's port), its payload type
//   {op: "run", seconds}            a packet per call every 20 ms for `seconds`, then 200 ms for
//                                   the last echoes → {ticks, seconds, counts: [[sent, got], ...]}
import dgram from "node:dgram";

const calls = [];
const PAYLOAD = { 0: Buffer.alloc(160, 0xff), 8: Buffer.alloc(160, 0xd5), 111: Buffer.from([0xf8, 0xff, 0xfe]) };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function rtp(pt, seq, ssrc) {
  const head = Buffer.alloc(12);
  head[0] = 0x80;
  head[1] = pt;
  head.writeUInt16BE(seq & 0xffff, 2);
  head.writeUInt32BE((seq * (pt === 111 ? 960 : 160)) >>> 0, 4);
  head.writeUInt32BE(ssrc, 8);
  return Buffer.concat([head, PAYLOAD[pt] ?? PAYLOAD[0]]);
}

async function run(seconds) {
  const started = Date.now();
  let ticks = 0;
  while (Date.now() - started < seconds * 1000) {
    for (const c of calls) {
      if (!c?.port) continue;
      c.socket.send(rtp(c.pt, ticks, 0x1000 + c.i), c.port, "127.0.0.1");
      c.sent++;
    }
    ticks++;
    await sleep(Math.max(0, started + ticks * 20 - Date.now()));
  }
  const elapsed = (Date.now() - started) / 1000;
  await sleep(200);
  return { ticks, seconds: elapsed, counts: calls.map((c) => [c?.sent ?? 0, c?.got ?? 0]) };
}

process.on("message", async (m) => {
  if (m.op === "open") {
    const socket = dgram.createSocket({ type: "udp4", recvBufferSize: 4 << 20 });
    const call = { socket, sent: 0, got: 0 };
    socket.on("message", () => call.got++);
    socket.bind(0, "127.0.0.1", () => {
      calls[m.k] = call;
      process.send({ ref: m.ref, port: socket.address().port });
    });
  } else if (m.op === "target") {
    Object.assign(calls[m.k], { port: m.port, pt: m.pt, i: m.i });
    process.send({ ref: m.ref });
  } else if (m.op === "run") {
    process.send({ ref: m.ref, ...(await run(m.seconds)) });
  }
});
process.on("disconnect", () => process.exit(0));
