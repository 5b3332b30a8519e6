//! The restsip relay: a RESTful SIP application server. [`start`] opens the store and binds the
//! HTTP listener; [`Relay::serve`] runs until the shutdown future completes.
#![warn(missing_docs)]

pub mod api;
pub mod auth;
pub mod bus;
pub mod calls;
pub mod clock;
pub mod config;
pub mod error;
pub mod events;
pub mod inbox;
pub mod location;
pub mod per_ip;
pub mod sip;
pub mod soap;
pub mod store;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::watch;

use crate::api::{AppState, LimitedListener};
use crate::bus::Bus;
use crate::config::Config;

/// Events kept per resource for resuming streams.
const BUS_HISTORY: usize = 256;
/// Events a stream may fall behind before it is resynchronised.
const BUS_CAPACITY: usize = 1024;
/// How often expired logins are removed.
const EXPIRY_TICK: Duration = Duration::from_millis(500);
/// Resources nobody watches are forgotten by the bus after this long.
const BUS_IDLE: Duration = Duration::from_secs(600);
/// Longest a shutdown waits for the upstream server to take the unregistrations.
const UPSTREAM_STOP: Duration = Duration::from_secs(5);
/// How long a SIP digest nonce stays fresh; after it, clients get `stale=true`.
const NONCE_TTL: Duration = Duration::from_secs(300);

/// A relay bound to its address, ready to serve.
pub struct Relay {
    /// The HTTP listener.
    listener: LimitedListener,
    /// Its address (the real port when 0 was asked).
    http_addr: SocketAddr,
    /// The SIP listeners (UDP and TCP on one address), unless SIP is off.
    sip: Option<sip::listener::SipListeners>,
    /// SIP settings.
    sip_config: config::SipConfig,
    /// SOAP services (SERVICE requests).
    soap: soap::Services,
    /// Shared state.
    state: AppState,
    /// Static files.
    www: Option<std::path::PathBuf>,
    /// Tells streams the relay is closing.
    closing: watch::Sender<bool>,
}

/// Opens the store and binds the listener.
pub async fn start(config: Config) -> anyhow::Result<Relay> {
    let store = store::open(&config.database).await?;
    // Event ids continue above every id stored: SENDs' and webhook events'.
    let stored = store
        .max_send_seq()
        .await?
        .max(store.max_webhook_cursor().await?);
    let floor = u64::try_from(stored).unwrap_or(0);
    let bus = Bus::new(floor, BUS_HISTORY, BUS_CAPACITY);
    let auth = auth::Auth::new(
        store.clone(),
        Duration::from_secs(config.limits.token_ttl),
        &config.sip.realm,
    )
    .await?;
    let (closing, closing_rx) = watch::channel(false);
    let state = AppState::new(store, bus, auth, config.limits.clone(), closing_rx);
    let tcp = tokio::net::TcpListener::bind(config.http)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.http))?;
    let http_addr = tcp.local_addr()?;
    let sip = match config.sip.addr {
        Some(addr) => Some(sip::listener::SipListeners::bind(addr).await?),
        None => None,
    };
    let soap = soap::Services::new(
        Some(soap::builtin::Builtin::new(
            state.location.clone(),
            state.store.clone(),
        )),
        config.soap.endpoints.clone(),
        Duration::from_secs(config.soap.timeout),
        config.sip.max_message_bytes,
    )
    .with_web(state.soap_web.clone());
    Ok(Relay {
        soap,
        listener: LimitedListener::new(
            tcp,
            config.limits.max_connections,
            config.limits.max_connections_per_ip,
        ),
        http_addr,
        sip,
        sip_config: config.sip,
        state,
        www: config.www.filter(|d| d.is_dir()),
        closing,
    })
}

impl Relay {
    /// The HTTP address it listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The SIP address (UDP and TCP), unless SIP is off.
    pub fn sip_addr(&self) -> Option<SocketAddr> {
        self.sip.as_ref().map(|s| s.addr())
    }

    /// Serves until `shutdown` completes, then ends open streams and waits for requests in flight.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let expiry = tokio::spawn(expire_logins(self.state.clone()));
        // Stored webhooks resume: re-subscribed after their last stored event, outboxes sent on.
        let started = self.state.webhooks.start_all().await?;
        if started > 0 {
            tracing::info!(webhooks = started, "webhooks resumed");
        }
        let mut registrations = None;
        let sip_tasks = match self.sip {
            Some(listeners) => {
                let presence = sip::presence::Presence::new(
                    self.state.location.clone(),
                    self.state.bus.clone(),
                );
                let invites = sip::invite::Invites::new(
                    self.state.inbox.clone(),
                    self.state.calls.clone(),
                    self.state.store.clone(),
                    Duration::from_secs(self.sip_config.invite_timeout),
                );
                invites.set_keepalive(Duration::from_secs(self.sip_config.call_keepalive));
                self.state
                    .inbox
                    .set_hook(std::sync::Arc::new(invites.clone()));
                let proxy = sip::proxy::Proxy::new(self.state.store.clone());
                let mut core = sip_core(&self.state, &self.sip_config)
                    .with_services(self.soap)
                    .with_presence(presence.clone())
                    .with_invites(invites.clone())
                    .with_proxy(proxy.clone())
                    .with_watches(self.state.location.foreign().clone());
                if self.sip_config.upstream.is_some() {
                    core = core.with_upstream();
                }
                let listen = listeners.addr();
                let (endpoint, mut tasks) =
                    listeners.run(core, self.sip_config.max_message_bytes, self.sip_config.tcp);
                let upstream = self.sip_config.upstream.as_ref().and_then(|u| {
                    sip::upstream::UpstreamSender::new(u, endpoint.downgrade(), listen)
                        .map(std::sync::Arc::new)
                });
                if let Some(sender) = &upstream {
                    // Phones' requests for non-accounts are proxied through it.
                    proxy.set_upstream(sender.clone());
                    // Web users watch addresses of its domains through it.
                    self.state
                        .location
                        .foreign()
                        .attach(sender.clone(), self.state.bus.clone());
                    // Users of the upstream's domains are registered there while logged in.
                    if let Some(changes) = self.state.location.observe() {
                        let (r, task) = sip::upstream::Registrations::start(
                            sender.clone(),
                            self.state.store.clone(),
                            changes,
                        );
                        registrations = Some(r);
                        tasks.push(task);
                    }
                }
                self.state
                    .inbox
                    .set_sip(std::sync::Arc::new(sip::call_out::SipSide {
                        im: sip::im::Outbound::new(endpoint.downgrade(), listen),
                        calls: invites.outgoing(),
                        upstream,
                    }));
                presence.attach(endpoint.downgrade(), listen);
                invites.attach(endpoint.downgrade(), listen);
                proxy.attach(endpoint.downgrade(), listen);
                self.state.service_out.attach(endpoint.downgrade(), listen);
                // The endpoint lives as long as its receiving tasks hold it.
                drop(endpoint);
                tasks
            }
            None => Vec::new(),
        };
        let store = self.state.store.clone();
        let header_timeout = Duration::from_secs(self.state.limits.header_timeout);
        let router = api::app(self.state, self.www.as_deref());
        let service = tower::util::MapRequest::new(router, |req| {
            api::canonical_path(api::override_method(req))
        });
        let closing = self.closing;
        // SIP's receiving tasks run as long as the relay: if one ends, the relay stops with
        // an error (a supervisor restarts it) instead of answering HTTP with SIP dead.
        let sip_aborts: Vec<_> = sip_tasks.iter().map(|t| t.abort_handle()).collect();
        let sip_ended = first_to_end(sip_tasks);
        let mut result = Ok(());
        let stopped = tokio::sync::Notify::new();
        let served = api::serve(self.listener, service, header_timeout, async {
            tokio::select! {
                () = shutdown => {}
                () = stopped.notified() => {}
            }
            let _ = closing.send(true);
        });
        tokio::pin!(served);
        tokio::select! {
            () = &mut served => {}
            why = sip_ended => {
                tracing::error!(why, "SIP stopped; the relay stops too");
                result = Err(anyhow::anyhow!("{why}; stopping so that a supervisor restarts the relay"));
                stopped.notify_one();
                served.await;
            }
        }
        expiry.abort();
        if let Some(registrations) = registrations {
            // Unregister the users registered upstream while SIP still runs (bounded).
            let _ = tokio::time::timeout(UPSTREAM_STOP, registrations.stop()).await;
        }
        for task in sip_aborts {
            task.abort();
        }
        // Refreshes answered from memory are on disk before the process ends.
        store.flush().await;
        result
    }
}

/// Why the first of `tasks` ended (never, when there are none): they are meant to run as long
/// as the relay.
async fn first_to_end(tasks: Vec<tokio::task::JoinHandle<()>>) -> String {
    if tasks.is_empty() {
        return std::future::pending().await;
    }
    let (ended, _, _) = futures_util::future::select_all(tasks).await;
    match ended {
        Err(e) if e.is_panic() => "a SIP receiving task panicked".to_owned(),
        Err(_) => "a SIP receiving task was cancelled".to_owned(),
        Ok(()) => "a SIP receiving task ended".to_owned(),
    }
}

/// The SIP request handlers over the REST side's accounts and location service.
fn sip_core(state: &AppState, config: &config::SipConfig) -> sip::core::Core {
    let digest = config.auth.then(|| {
        std::sync::Arc::new(sip::digest::DigestAuth::new(
            &config.realm,
            &config.algorithms,
            state.auth.secret(),
            NONCE_TTL.as_secs(),
        ))
    });
    let registrar = sip::registrar::Registrar::new(
        state.location.clone(),
        state.store.clone(),
        state.auth.clone(),
        digest,
        state.limits.clone(),
    );
    sip::core::Core::new(registrar, state.store.clone()).with_inbox(state.inbox.clone())
}

/// Removes logins as they expire (announcing each), and lets the bus forget idle resources.
async fn expire_logins(state: AppState) {
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sweep = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        if let Err(e) = state.location().expire_due().await {
            tracing::warn!(error = %e, "expiring logins failed; retrying");
        }
        if last_sweep.elapsed() > BUS_IDLE / 4 {
            state.bus.sweep(BUS_IDLE);
            last_sweep = tokio::time::Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_sip_task_to_end_is_noticed_with_why() {
        let forever = || tokio::spawn(std::future::pending::<()>());
        let dies = tokio::spawn(async { panic!("a bug") });
        let why = first_to_end(vec![forever(), dies, forever()]).await;
        assert_eq!(why, "a SIP receiving task panicked");
        let returns = tokio::spawn(async {});
        assert_eq!(
            first_to_end(vec![forever(), returns]).await,
            "a SIP receiving task ended"
        );
        let none = tokio::time::timeout(Duration::from_millis(50), first_to_end(Vec::new())).await;
        assert!(none.is_err(), "no SIP, nothing ends");
    }
}
