// Pages of the media tests: headless Chromium with fake devices, each page a user of the relay
// with its own client of the package the relay serves (only the public API), an <audio>
// element playing its call's remote stream, and what the tests read of its call.
import assert from "node:assert/strict";

// Chromium's flags for media tests (add --use-fake-ui-for-media-stream to grant the microphone).
export const BASE_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
  "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-quic",
  "--disable-sync", "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection",
  "--autoplay-policy=no-user-gesture-required"];

// A page of the relay's origin (a secure context: http://127.0.0.1; the demo page, served by the
// relay, as a page a browser loads from there may reach the relay's WebSocket where a page made
// up by the test would be refused as a public page reaching a local address) whose user `email`
// signed up (unless `signUp` is false) and logged in with its own client, with an <audio>
// element playing the remote stream. `invites` collects its invitations; `follow(call)` makes
// a call the page's one call (its states recorded, its remote stream playing).
export async function openUser(browser, relay, email, signUp = true) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(relay);
  await page.evaluate(async ([email, signUp]) => {
    const restsip = await import("/pkg/restsip_wasm.js");
    await restsip.default();
    const client = new restsip.Client();
    if (signUp) await client.signUp(email, "secret", {});
    await client.logIn(email, "secret", {});
    window.client = client;
    document.body.append(Object.assign(document.createElement("audio"), { id: "remote", autoplay: true }));
    window.invites = [];
    client.on("invite", (invite) => invites.push(invite));
    // The page's one call: its states, and its remote stream playing.
    window.follow = (call) => {
      window.call = call;
      window.states = [call.state];
      call.onState((state) => states.push(state));
      document.getElementById("remote").srcObject = call.remoteStream;
      return call.state;
    };
  }, [email, signUp]);
  return { page, email, errors };
}

export const state = (p) => p.page.evaluate(() => call.state);
export const waitState = (p, s) => p.page.waitForFunction((s) => window.call?.state === s, s, { timeout: 10_000 });

// The inbound audio of a page's call: {packets, energy, codec} once packets and energy are above
// `since`'s.
export async function inboundAudio(p, since = { packets: 0, energy: 0 }) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const got = await p.page.evaluate(async () => {
      const stats = await call.peerConnection.getStats();
      for (const s of stats.values()) {
        if (s.type === "inbound-rtp" && s.kind === "audio") {
          return { packets: s.packetsReceived ?? 0, energy: s.totalAudioEnergy ?? 0,
            codec: stats.get(s.codecId)?.mimeType };
        }
      }
      return { packets: 0, energy: 0 };
    });
    if (got.packets > since.packets && got.energy > since.energy) return got;
    if (Date.now() > deadline) assert.fail(`no inbound audio on ${p.email}: ${JSON.stringify(got)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// The negotiated direction of the page's audio transceiver.
export const direction = (p) => p.page.evaluate(() =>
  call.peerConnection.getTransceivers().find((t) => t.receiver.track.kind === "audio").currentDirection);
