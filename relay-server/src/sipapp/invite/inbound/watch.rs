//! Calls that end without anyone hanging up, either way (a phone's call to a web user or a
//! web user's call to a phone): a session nobody refreshed (RFC 4028, see
//! [`crate::sipapp::invite::update::session`]), refreshed by the relay when it is the
//! refresher, and a call rtpengine dropped (its media timeout: the phone's RTP stopped), found
//! by an ng `query` of each call every `--rtpengine-check` seconds. Such a call ends as a
//! hang-up does: BYE to the phone, `bye` with the reason to the page, rtpengine's session
//! deleted.

use super::*;
use crate::sipapp::invite::update::session::Due;

/// The page's `bye` reason when nobody refreshed the session.
pub(super) const SESSION_EXPIRED: &str = "session expired";
/// The page's `bye` reason when rtpengine dropped the call.
pub(super) const MEDIA_TIMEOUT: &str = "media timeout";

/// How often session timers are looked at.
const TICK: Duration = Duration::from_secs(1);

impl Invites {
    /// Watches the calls' session timers (when `session` is not zero) and asks rtpengine
    /// about its calls every `check` (when not zero and rtpengine is configured), for as long
    /// as the gateway lives.
    pub(super) fn watch(&self, session: Duration, check: Duration) {
        let check = if self.inner.reneg.media().enabled() {
            check
        } else {
            Duration::ZERO
        };
        if session.is_zero() && check.is_zero() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            let mut checked = Instant::now();
            loop {
                tokio::time::sleep(TICK).await;
                let Some(inner) = weak.upgrade() else { return };
                let this = Invites { inner };
                this.timers_due();
                if !check.is_zero() && checked.elapsed() >= check {
                    checked = Instant::now();
                    this.check_media().await;
                }
            }
        });
    }

    /// Refreshes the sessions the relay refreshes now, ends those that expired.
    fn timers_due(&self) {
        for (call_id, due) in self.inner.reneg.due() {
            let this = self.clone();
            tokio::spawn(async move {
                match due {
                    Due::Expired => this.end_call(&call_id, SESSION_EXPIRED).await,
                    Due::Refresh => {
                        let Some(leg) = this.leg(&call_id) else {
                            return;
                        };
                        let next = this.requests_of(&call_id);
                        if let Err(why) = this.inner.reneg.refresh(&leg, next).await {
                            this.end_call(&call_id, why).await;
                        }
                    }
                }
            });
        }
    }

    /// Ends the calls rtpengine no longer has.
    async fn check_media(&self) {
        let mut calls: Vec<String> = lock(&self.inner.dialogs)
            .iter()
            .filter(|(_, d)| d.media)
            .map(|(k, _)| k.clone())
            .collect();
        calls.extend(self.inner.out.media_calls());
        let media = self.inner.reneg.media();
        for call_id in calls {
            match media.known(&call_id).await {
                Ok(true) => {}
                Ok(false) => self.end_call(&call_id, MEDIA_TIMEOUT).await,
                Err(e) => tracing::debug!(call_id, error = %e, "rtpengine query failed"),
            }
        }
    }

    /// Ends answered call `call_id` (either way) for `reason`: BYE to the phone, `bye` with
    /// the reason to the page, rtpengine's session deleted.
    pub(super) async fn end_call(&self, call_id: &str, reason: &str) {
        tracing::info!(call_id, reason, "call ended by the relay");
        let id = lock(&self.inner.dialogs).get(call_id).map(|d| d.id);
        match id {
            Some(id) => self.vanished(call_id, id, reason, true).await,
            None => self.inner.out.end(call_id, reason).await,
        }
    }
}
