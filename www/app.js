// restsip demo: everything below goes through the wasm client; the page never sees SIP, and
// never builds an HTTP request itself.
import init, { Client } from "./pkg/restsip_wasm.js";
import { phone } from "./phone.js";

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), attrs);
  for (const [k, v] of Object.entries(attrs)) if (k.startsWith("data-")) node.setAttribute(k, v);
  node.append(...children);
  return node;
};
const showError = (e) => { $("error").textContent = e ? `${e.code ?? "error"}: ${e.message}` : ""; };

await init();
const client = new Client();
let call = null;        // {url, participant}
let callWatch = null;

client.on("connection", (e) => { $("connection").textContent = `stream: ${e.state}`; });
client.on("login", (e) => { if (e.state !== "active") $("connection").textContent = `login: ${e.state}`; });

client.on("message", (m) => {
  const body = m.body ?? {};
  if (body.command && body.command !== "im") return; // invitations have their own panel
  $("messages").append(el("li", { "data-testid": "message" },
    el("span", { className: "from" }, m.from), el("span", {}, body.text ?? JSON.stringify(body))));
});

phone(client, showError);

client.on("invite", (invite) => {
  if (invite.media) return; // a call with sound: the phone rings (phone.js)
  const state = el("span", { className: "state", "data-testid": "incoming-state" }, invite.state);
  const accept = el("button", { "data-testid": "accept" }, "Accept");
  const reject = el("button", { className: "secondary", "data-testid": "reject" }, "Reject");
  const item = el("li", { "data-testid": "incoming-invite" },
    el("span", {}, `${invite.from} invites you to `), el("code", {}, invite.call), state, accept, reject);
  invite.onState((s) => { state.textContent = s; if (s !== "ringing") { accept.remove(); reject.remove(); } });
  accept.onclick = async () => {
    try {
      const joined = await invite.accept({ sdp: `session of ${client.email}` });
      openCall(invite.call, joined.url);
    } catch (e) { showError(e); }
  };
  reject.onclick = () => invite.reject("busy").catch(showError);
  $("incoming").append(item);
});

async function loggedIn() {
  $("auth").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  $("me").textContent = client.email;
}

async function logIn(signUp) {
  showError(null);
  $("auth-error").textContent = "";
  const email = $("email").value, password = $("password").value;
  try {
    if (signUp) await client.signUp(email, password, {});
    await client.logIn(email, password, { presence: { status: "online" } });
    await loggedIn();
  } catch (e) {
    $("auth-error").textContent = `${e.code}: ${e.message}`;
  }
}
$("auth-form").onsubmit = (ev) => { ev.preventDefault(); logIn(false); };
$("signup").onclick = () => { if ($("auth-form").reportValidity()) logIn(true); };
$("logout").onclick = async () => { await client.logOut().catch(showError); location.reload(); };

// Presence: watch a user's logins; online while they have at least one.
$("buddy-form").onsubmit = (ev) => {
  ev.preventDefault();
  const email = $("buddy").value;
  $("buddy").value = "";
  const status = el("span", { className: "state", "data-testid": "buddy-state" }, "…");
  const item = el("li", { "data-testid": "buddy-item" }, el("span", { className: "dot" }), el("span", {}, email), status);
  $("buddies").append(item);
  const contacts = new Map();
  client.watch(`/login/${email}`, (event) => {
    if (event.kind === "error") { status.textContent = event.data.detail; return; }
    if (event.kind === "state") { contacts.clear(); for (const c of event.data) contacts.set(c.id, c); }
    if (event.kind === "added" || event.kind === "updated") contacts.set(event.data.id, event.data);
    if (event.kind === "removed") contacts.delete(event.data.id);
    const online = contacts.size > 0;
    item.classList.toggle("online", online);
    status.textContent = online ? `online (${contacts.size})` : "offline";
  }, {});
};

$("message-form").onsubmit = async (ev) => {
  ev.preventDefault();
  showError(null);
  try {
    await client.send($("to").value, { command: "im", text: $("text").value });
    $("messages").append(el("li", { "data-testid": "sent" }, el("span", { className: "from" }, `to ${$("to").value}`), $("text").value));
    $("text").value = "";
  } catch (e) { showError(e); }
};

function openCall(url, participant) {
  call = { url, participant };
  $("call").hidden = false;
  $("call-url").textContent = url;
  callWatch?.close();
  callWatch = client.watch(url, (event) => {
    if (event.kind === "gone") { $("members").replaceChildren(); return; }
    if (event.kind !== "state") return;
    $("members").replaceChildren(...event.data.children.map((p) =>
      el("li", { "data-testid": "member" }, el("span", { className: "from" }, p.user), el("span", { className: "state" }, p.url))));
  }, { updates: "full" });
}

$("create-call").onclick = async () => {
  showError(null);
  try {
    const created = await client.createCall({ subject: `call of ${client.email}` });
    const joined = await client.joinCall(created.url, { sdp: `session of ${client.email}` });
    openCall(created.url, joined.url);
  } catch (e) { showError(e); }
};

$("invite-form").onsubmit = async (ev) => {
  ev.preventDefault();
  showError(null);
  const to = $("invitee").value;
  try {
    const invitation = await client.invite(to, call.url);
    const state = el("span", { className: "state", "data-testid": "invitation-state" }, invitation.state);
    const cancel = el("button", { className: "secondary" }, "Cancel");
    cancel.onclick = () => invitation.cancel().catch(showError);
    invitation.onState((s) => { state.textContent = s + (invitation.reason ? ` (${invitation.reason})` : ""); if (s !== "ringing") cancel.remove(); });
    $("invitations").append(el("li", { "data-testid": "invitation" }, el("span", {}, to), state, cancel));
  } catch (e) { showError(e); }
};

$("leave-call").onclick = async () => {
  if (!call) return;
  await client.leaveCall(call.participant).catch(showError);
  callWatch?.close();
  call = null;
  $("call").hidden = true;
};
