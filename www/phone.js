// The demo's phone: calls with sound (and pictures) through the wasm client's MediaCall API
// only — dial a user or a sip: URI, ring, answer or decline, mute, hold and resume, a DTMF pad
// and the keys the other side pressed, hang up, a call timer, the call's members live. The page
// never sees SDP or the peer connection's setup.
const $ = (id) => document.getElementById(id);

export function phone(client, showError) {
  let call = null;      // the MediaCall in progress
  let ringing = null;   // the IncomingInvite ringing
  let timer = 0;
  let held = false;
  let members = null;   // the watch of the call's members

  // The DTMF pad.
  for (const key of "123456789*0#") {
    const button = Object.assign(document.createElement("button"), { textContent: key, type: "button" });
    button.dataset.testid = `dtmf-${key}`;
    button.onclick = async () => {
      try {
        await call?.sendDtmf(key);
        $("dtmf-sent").textContent += key;
      } catch (e) { showError(e); }
    };
    $("dtmf").append(button);
  }

  const showTime = (since) => {
    const s = Math.floor((Date.now() - since) / 1000);
    $("call-timer").textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  };

  // Shows a call and follows its state until it ends.
  function follow(media) {
    call = media;
    held = false;
    $("call-ended").textContent = "";
    $("dtmf-sent").textContent = "";
    $("dtmf-received").textContent = "";
    $("call-members").replaceChildren();
    $("mute").textContent = "Mute";
    $("hold").textContent = "Hold";
    $("call-peer").textContent = media.peer;
    $("call-timer").textContent = "0:00";
    $("remote-audio").srcObject = media.remoteStream;
    $("remote-video").srcObject = media.remoteStream;
    $("local-video").srcObject = media.localStream;
    $("local-video").hidden = media.localStream.getVideoTracks().length === 0;
    // Play at once: the click that dialled or answered lets the page play sound.
    for (const id of ["remote-audio", "remote-video", "local-video"]) $(id).play().catch(() => {});
    $("in-call").hidden = false;
    const show = (state) => {
      $("call-state").textContent = state;
      // Pictures only when a side sends some.
      $("videos").hidden = !media.remoteStream.getVideoTracks().length && !media.localStream.getVideoTracks().length;
      const up = state === "active" || state === "held";
      for (const id of ["mute", "hold"]) $(id).disabled = !up;
      if (up && !timer) {
        const since = Date.now();
        timer = setInterval(() => showTime(since), 500);
      }
      for (const b of $("dtmf").querySelectorAll("button")) b.disabled = !up;
      if (state === "ended") {
        clearInterval(timer);
        timer = 0;
        members?.close();
        members = null;
        $("in-call").hidden = true;
        $("call-ended").textContent = `call with ${media.peer} ended: ${media.endReason}` +
          ` (${$("call-timer").textContent})`;
        if (call === media) call = null;
      }
    };
    show(media.state);
    media.onState(show);
    // The keys the other side presses (a phone's SIP INFO or RFC 4733 tones, told by the relay).
    media.onDtmf((digits) => { $("dtmf-received").textContent += digits; });
    // Who is in the call, live: the members of its call context.
    members?.close();
    members = client.watch(media.call, (event) => {
      if (event.kind === "gone") { $("call-members").replaceChildren(); return; }
      if (event.kind !== "state") return;
      $("call-members").replaceChildren(...event.data.children.map((p) => {
        const item = document.createElement("li");
        item.dataset.testid = "call-member";
        item.textContent = p.user;
        return item;
      }));
    }, { updates: "full" });
  }

  $("dial-form").onsubmit = async (ev) => {
    ev.preventDefault();
    showError(null);
    if (call) return showError({ code: "busy", message: "hang up first" });
    try {
      follow(await client.dial($("dial-to").value.trim(), { audio: true, video: $("dial-video").checked }));
    } catch (e) { showError(e); }
  };

  client.on("invite", (invite) => {
    if (!invite.media) return; // signalling-only invitations have their own panel (app.js)
    if (call || ringing) { invite.reject("busy").catch(showError); return; }
    ringing = invite;
    $("ringing-from").textContent = invite.from;
    $("ringing").hidden = false;
    invite.onState((state) => {
      if (state !== "ringing" && ringing === invite) {
        ringing = null;
        $("ringing").hidden = true;
        if (state === "cancelled") $("call-ended").textContent = `missed call from ${invite.from}`;
      }
    });
  });

  const answer = async (video) => {
    const invite = ringing;
    if (!invite) return;
    showError(null);
    try {
      follow(await invite.answer({ audio: true, video }));
    } catch (e) { showError(e); }
    ringing = null;
    $("ringing").hidden = true;
  };
  $("answer").onclick = () => answer(false);
  $("answer-video").onclick = () => answer(true);
  $("decline").onclick = () => ringing?.reject("decline").catch(showError);

  $("mute").onclick = () => {
    const muted = $("mute").textContent === "Mute";
    call?.mute(muted);
    $("mute").textContent = muted ? "Unmute" : "Mute";
  };
  $("hold").onclick = async () => {
    if (!call) return;
    $("hold").disabled = true;
    try {
      await (held ? call.resume() : call.hold());
      held = !held;
      $("hold").textContent = held ? "Resume" : "Hold";
    } catch (e) { showError(e); }
    $("hold").disabled = false;
  };
  $("hangup").onclick = () => call?.hangUp().catch(showError);
}
