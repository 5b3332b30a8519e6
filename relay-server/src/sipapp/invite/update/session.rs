//! RFC 4028 session timers of calls between web users and phones, both ways. A phone's INVITE
//! asking for an interval below `--sip-min-se` gets 422 with the relay's Min-SE; otherwise the
//! 2xx names the interval and the refresher (the phone when it supports timers, else the
//! relay), the relay's INVITEs offer `--sip-session-expires` and take what the phone's 2xx says.
//! A refresh (re-INVITE or UPDATE, from whichever side) restarts the interval; the relay, when
//! it is the refresher, refreshes at half of it; a session nobody refreshed ends a little
//! before the interval is over (§10: the interval less a third, at most 32 s less).

use std::time::Duration;

use tokio::time::Instant;

use super::*;

/// One call's session timer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Session {
    /// The session interval.
    every: Duration,
    /// Whether the relay refreshes (else the phone).
    relay: bool,
    /// When the relay refreshes, or when the session expires.
    due: Instant,
    /// Whether the phone said it supports timers (its responses then carry `Require: timer`).
    supported: bool,
}

/// What is due for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The relay refreshes the session now.
    Refresh,
    /// Nobody refreshed it: the call ends.
    Expired,
}

/// A header's value as seconds with its `refresher` parameter (`Session-Expires: 1800;refresher=uac`).
fn interval_of(msg: &SipMessage, name: &str) -> Option<(u64, Option<String>)> {
    let value = msg.header(name)?;
    let mut parts = value.split(';');
    let secs = parts.next()?.trim().parse().ok()?;
    let refresher = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("refresher")
            .then(|| v.trim().to_ascii_lowercase())
    });
    Some((secs, refresher))
}

/// Whether `msg` says it supports (or requires) the `timer` extension.
fn supports_timer(msg: &SipMessage) -> bool {
    ["Supported", "Require"].iter().any(|name| {
        msg.headers_named(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("timer"))
    })
}

impl Session {
    fn new(every: Duration, relay: bool, supported: bool) -> Self {
        let mut s = Self {
            every,
            relay,
            due: Instant::now(),
            supported,
        };
        s.restart();
        s
    }

    /// A refresh happened now: the next refresh or the expiry is computed again.
    pub(super) fn restart(&mut self) {
        self.due = Instant::now()
            + if self.relay {
                self.every / 2
            } else {
                self.every - (self.every / 3).min(Duration::from_secs(32))
            };
    }

    /// The `Session-Expires` value of a 2xx to the phone, whose request was the UAC.
    fn header_as_uas(&self) -> String {
        let who = if self.relay { "uas" } else { "uac" };
        format!("{};refresher={who}", self.every.as_secs())
    }
}

impl Renegotiation {
    /// The session timer settings.
    fn timers(&self) -> SessionTimers {
        self.inner.timers
    }

    /// A phone's INVITE (or refresh) asking for a session interval below the relay's Min-SE:
    /// the 422 it gets (RFC 4028 §8.1).
    pub fn too_small(&self, req: &SipMessage) -> Option<Reply> {
        let t = self.timers();
        if t.expires.is_zero() {
            return None;
        }
        let (asked, _) = interval_of(req, "Session-Expires")?;
        (asked < t.min_se.as_secs()).then(|| {
            Reply::new(422, "Session Interval Too Small")
                .with("Min-SE", t.min_se.as_secs().to_string())
        })
    }

    /// Starts the session timer of call `call_id` answered to the phone's INVITE `req`: the
    /// headers for the 2xx (`Session-Expires`, and `Require: timer` when the phone supports
    /// it); nothing when session timers are off.
    pub fn start_as_uas(&self, call_id: &str, req: &SipMessage) -> Vec<(&'static str, String)> {
        let t = self.timers();
        if t.expires.is_zero() {
            return Vec::new();
        }
        let supported = supports_timer(req);
        let floor = interval_of(req, "Min-SE")
            .map_or(0, |(s, _)| s)
            .max(t.min_se.as_secs());
        let asked = interval_of(req, "Session-Expires");
        let every = asked
            .as_ref()
            .map_or(t.expires.as_secs(), |(s, _)| (*s).min(t.expires.as_secs()))
            .max(floor);
        let relay = match asked.and_then(|(_, r)| r).as_deref() {
            Some("uac") => false,
            Some("uas") => true,
            _ => !supported,
        };
        let session = Session::new(Duration::from_secs(every), relay, supported);
        let mut headers = vec![("Session-Expires", session.header_as_uas())];
        if supported {
            headers.push(("Require", "timer".to_owned()));
        }
        lock(&self.inner.sessions).insert(call_id.to_owned(), session);
        headers
    }

    /// The headers of the relay's INVITE to a phone: it supports timers and asks for its
    /// interval.
    pub fn offer_as_uac(&self, req: &mut SipMessage) {
        let t = self.timers();
        if t.expires.is_zero() {
            return;
        }
        req.push("Supported", "timer");
        req.push("Session-Expires", t.expires.as_secs().to_string());
        req.push("Min-SE", t.min_se.as_secs().to_string());
    }

    /// Starts the session timer of call `call_id` placed by the relay, as its 2xx `resp`
    /// says (no `Session-Expires` in it: no timer, RFC 4028 §7.2).
    pub fn start_as_uac(&self, call_id: &str, resp: &SipMessage) {
        if self.timers().expires.is_zero() {
            return;
        }
        let Some((every, refresher)) = interval_of(resp, "Session-Expires") else {
            return;
        };
        let relay = refresher.as_deref() != Some("uas");
        let every = Duration::from_secs(every.max(1));
        let session = Session::new(every, relay, supports_timer(resp));
        lock(&self.inner.sessions).insert(call_id.to_owned(), session);
    }

    /// The phone refreshed call `call_id` with `req` (a re-INVITE or an UPDATE): the timer
    /// restarts (with the interval and refresher `req` asks for); the headers of its 2xx.
    pub(super) fn refreshed(&self, call_id: &str, req: &SipMessage) -> Vec<(&'static str, String)> {
        let mut sessions = lock(&self.inner.sessions);
        let Some(s) = sessions.get_mut(call_id) else {
            return Vec::new();
        };
        s.supported |= supports_timer(req);
        if let Some((every, refresher)) = interval_of(req, "Session-Expires") {
            s.every = Duration::from_secs(every.max(self.timers().min_se.as_secs()));
            s.relay = match refresher.as_deref() {
                Some("uas") => true,
                Some("uac") => false,
                _ => !s.supported,
            };
        }
        s.restart();
        let mut headers = vec![("Session-Expires", s.header_as_uas())];
        if s.supported {
            headers.push(("Require", "timer".to_owned()));
        }
        headers
    }

    /// The headers of a refresh the relay sends in call `call_id`.
    pub(super) fn refresh_headers(&self, call_id: &str) -> Vec<(&'static str, String)> {
        let Some(s) = lock(&self.inner.sessions).get(call_id).copied() else {
            return Vec::new();
        };
        vec![
            ("Supported", "timer".to_owned()),
            (
                "Session-Expires",
                format!("{};refresher=uac", s.every.as_secs()),
            ),
        ]
    }

    /// The calls whose refresh or expiry is due now. A refresh is handed out once: until it
    /// succeeds the session expires as if nobody had refreshed it.
    pub fn due(&self) -> Vec<(String, Due)> {
        let now = Instant::now();
        let mut out = Vec::new();
        for (call_id, s) in lock(&self.inner.sessions).iter_mut() {
            if s.due > now {
                continue;
            }
            if s.relay {
                out.push((call_id.clone(), Due::Refresh));
                // Until the refresh's 2xx: the rest of the interval, less the margin.
                s.relay = false;
                s.due = now
                    + (s.every / 2).saturating_sub((s.every / 3).min(Duration::from_secs(32)) / 2);
            } else {
                out.push((call_id.clone(), Due::Expired));
            }
        }
        for (call_id, due) in &out {
            if *due == Due::Expired {
                lock(&self.inner.sessions).remove(call_id);
            }
        }
        out
    }

    /// After the relay's refresh of `call_id` succeeded: it refreshes again next time.
    pub(super) fn relay_refreshes(&self, call_id: &str) {
        if let Some(s) = lock(&self.inner.sessions).get_mut(call_id) {
            s.relay = true;
            s.restart();
        }
    }
}
