// Type-checks (tsc --noEmit --strict) the package's generated typings against how a page uses
// the client: the JSON shapes come from the Rust wire types, so a change there that breaks a page
// breaks this file.
import init, { Client, IncomingInvite, Invitation, RestsipError } from "../../wasm-client/pkg/restsip_wasm.js";
import type { Call, Contact, DeliveryStatus, Event, InboxMessage, LoginCreated, MailMessage, MediaCall, MediaCallState, SendReceipt, User } from "../../wasm-client/pkg/restsip_wasm.js";

export async function demo(): Promise<void> {
  await init();
  const client = new Client("https://relay.example");
  await client.signUp("a@example.net", "pw", { name: "A" });
  const login: unknown = await client.logIn("a@example.net", "pw", { presence: { status: "here" } });
  console.log(login);
  const contacts: Contact[] = await client.contacts("b@example.net");
  const online: boolean = contacts.some((c) => c.source === "web" && c.expires > 0);
  const receipt: SendReceipt = await client.send("b@example.net", { command: "im", text: "hi" });
  const firstStatus: DeliveryStatus = receipt.deliveries[0].status;
  const profile: User = await client.profile(undefined);
  const mail: MailMessage[] = await client.messages();
  const call: Call = await client.call("/call/abc");
  const memberUsers: string[] = call.children.map((p) => p.user);
  const refreshed: LoginCreated = await client.setPresence({ status: "away" });
  client.on("message", (m: InboxMessage) => console.log(m.from, m.body));
  client.on("invite", (invite: IncomingInvite) => void invite.accept({ sdp: "v=0" }));
  const invitation: Invitation = await client.invite("b@example.net", "/call/abc");
  invitation.onState((state: string) => console.log(state, invitation.reason));
  // Calls with media: the page never touches SDP.
  const phone: MediaCall = await client.dial("b@example.net", { audio: true, video: false });
  const placed: MediaCallState = phone.state;
  phone.onState((state: MediaCallState) => console.log(state, phone.peer, phone.endReason));
  const audio = document.createElement("audio");
  audio.srcObject = phone.remoteStream;
  const sending: MediaStreamTrack[] = phone.localStream.getAudioTracks();
  const stats: RTCStatsReport = await phone.peerConnection.getStats();
  phone.mute(true);
  await phone.hold();
  await phone.resume();
  await phone.sendDtmf("123#");
  await phone.hangUp();
  await client.dial("sip:carol@pbx.example.org");
  client.on("invite", async (invite: IncomingInvite) => {
    if (!invite.media) return;
    const answered: MediaCall = await invite.answer({ video: true });
    if (answered.endReason === "remote-hangup") console.log("gone");
    await invite.answer();
  });
  try {
    await client.dial("b@example.net", {});
  } catch (e) {
    if ((e as RestsipError).code === "media-denied") console.log("no microphone for us");
  }
  stats.forEach((report: { type: string }) => console.log(report.type));
  console.log(placed, sending.length);
  const watch = client.watch("/login/b@example.net", (e: Event) => console.log(e.id, e.kind, e.data), {});
  watch.close();
  try {
    await client.contacts("nobody@example.net");
  } catch (e) {
    const err = e as RestsipError;
    if (err.code === "not-found" && err.status === 404) console.log("no such user");
  }
  console.log(online, firstStatus, profile.links.login, mail.length, memberUsers, refreshed.expires);
}
