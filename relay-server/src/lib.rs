//! The restsip relay: a RESTful SIP application server. [`start`] opens the store and binds the
//! HTTP listener; [`Relay::serve`] runs until the shutdown future completes.
#![warn(missing_docs)]

pub mod api;
pub mod auth;
pub mod bus;
pub mod calls;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod egress;
pub mod error;
pub mod events;
pub mod inbox;
pub mod leadership;
pub mod limits;
pub mod location;
pub mod mailbox;
pub mod members;
pub mod observe;
pub mod operations;
pub mod outgoing;
pub mod runtime;
mod send_order;
pub mod sipapp;
pub mod soap;
pub mod store;
pub mod sync;
pub mod tls;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use restsip_sip::listener::SipListeners;

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
    /// The SIP side, unless SIP is off.
    sip: Option<Sip>,
    /// Shared state.
    state: AppState,
    /// Static files.
    www: Option<std::path::PathBuf>,
    /// Tells streams the relay is closing.
    closing: watch::Sender<bool>,
    /// TLS on the HTTP port, when the relay has a certificate.
    https: Option<tokio_rustls::TlsAcceptor>,
    /// Reloads the certificate on SIGHUP, when there is one.
    reload: Option<tokio::task::JoinHandle<()>>,
    /// `/metrics`, `/healthz`, `/readyz`.
    operations: operations::Operations,
    /// The cluster this relay is part of, with its NATS tasks (`--cluster`).
    cluster: Option<(cluster::Cluster, Vec<tokio::task::JoinHandle<()>>)>,
}

/// The SIP side, built and bound, receiving once served.
struct Sip {
    /// The address UDP and TCP listen on.
    addr: SocketAddr,
    /// The address TLS listens on, when it is on.
    tls_addr: Option<SocketAddr>,
    /// What receives (holds the endpoint).
    receivers: restsip_sip::listener::Receivers,
    /// The upstream server, when one is configured.
    upstream: Option<Arc<sipapp::upstream::UpstreamSender>>,
}

/// Opens the store and binds the listener.
pub async fn start(config: Config) -> anyhow::Result<Relay> {
    // Before the store: its first commits are counted already.
    operations::recorder()?;
    let store = store::open(&config.database).await?;
    // Event ids continue above every id stored: SENDs' and webhook events'.
    let stored = store
        .max_send_seq()
        .await?
        .max(store.max_webhook_cursor().await?);
    let floor = u64::try_from(stored).unwrap_or(0);
    // In a cluster: a free id slot, and events to and from the other relays.
    let cluster = match &config.cluster {
        Some(c) => Some(cluster::Cluster::join(c, store.clone()).await?),
        None => None,
    };
    let ids = cluster
        .as_ref()
        .map_or(bus::IdSpace::ALONE, cluster::Cluster::ids);
    let bus = Bus::with_ids(floor, BUS_HISTORY, BUS_CAPACITY, ids);
    let auth = auth::Auth::new(
        store.clone(),
        Duration::from_secs(config.limits.token_ttl),
        Arc::new(sipapp::registrar::Ha1::new(&config.sip.realm)),
    )
    .await?;
    let (closing, closing_rx) = watch::channel(false);
    let tcp = api::listener::bind(config.http, config.limits.max_connections)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.http))?;
    let http_addr = tcp.local_addr()?;
    let certificate = match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => Some(Arc::new(tls::Certificate::open(cert, key)?)),
        _ => None,
    };
    let https = match &certificate {
        Some(c) => Some(tokio_rustls::TlsAcceptor::from(
            c.server_config(&[b"http/1.1"])?,
        )),
        None => None,
    };
    let mut listeners = match config.sip.addr {
        Some(addr) => Some(SipListeners::bind(addr).await?),
        None => None,
    };
    if let (Some(addr), Some(cert)) = (config.tls.sip, &certificate) {
        let side = restsip_sip::transport::tls::TlsSide::new(
            cert.server_config(&[])?,
            tls::client_config(&config.tls.ca)?,
        );
        listeners = match listeners {
            Some(l) => Some(l.with_tls(addr, side).await?),
            None => None,
        };
    }
    // Watched from now on: a SIGHUP after the startup lines reloads, never kills.
    let reload = match certificate {
        Some(c) => Some(c.reload_on_sighup()?),
        None => None,
    };
    // Addresses of other domains are watched through the SIP side's upstream server.
    let watches = listeners
        .as_ref()
        .map(|_| sipapp::watch::Watches::new(bus.clone()));
    let foreign = watches
        .clone()
        .map(|w| Arc::new(w) as Arc<dyn location::Foreign>);
    let mut state = AppState::new(store, bus, auth, config.limits.clone(), closing_rx, foreign);
    // Joined to the other relays before anything is served: another relay's change of a
    // user's logins drops this relay's copy of that user's contacts before its watchers hear.
    let mut cluster = match cluster {
        Some(c) => {
            let location = state.location.clone();
            let applied: cluster::Applied = Arc::new(move |topic| {
                if let bus::Topic::Login(email) = topic {
                    location.forget_contacts(email);
                }
            });
            let tasks = c.attach(&state.bus, applied).await?;
            Some((c, tasks))
        }
        None => None,
    };
    state.set_ice_servers(config.media.ice_servers.clone());
    state.set_egress(config.guards.egress);
    state.set_origins(config.guards.origins.clone());
    if let Some(c) = &config.cluster {
        state.set_members(members::Members::clustered(&c.node));
    }
    if cluster.is_some() {
        // Webhooks run on the cluster's leader only, once it has taken the lease.
        state.webhooks.lead(None).await?;
    }
    let media = match &config.media.rtpengine {
        Some(addr) => {
            let media = sipapp::media::Media::connect(addr, sipapp::media::ng::TRY_TIMEOUT)
                .await
                .map_err(|e| anyhow::anyhow!("rtpengine {addr}: {e}"))?;
            let (probe, addr) = (media.clone(), addr.clone());
            tokio::spawn(async move {
                match probe.ready().await {
                    Ok(()) => tracing::info!(rtpengine = %addr, "media relay ready"),
                    Err(e) => {
                        tracing::warn!(rtpengine = %addr, error = %e, "media relay not answering")
                    }
                }
            });
            media
        }
        None => sipapp::media::Media::none(),
    };
    let operations = operations::Operations::prepare(
        &config.operations,
        state.store.clone(),
        media.clone(),
        listeners.as_ref().map(|l| l.addr()),
    )
    .await?;
    let media = sipapp::invite::CallMedia {
        media,
        passthrough: config.media.sdp_passthrough,
        upstream: config.sip.upstream.is_some(),
        session: sipapp::invite::SessionTimers {
            expires: Duration::from_secs(config.media.session_expires),
            min_se: Duration::from_secs(config.media.min_se),
        },
        check: Duration::from_secs(config.media.rtpengine_check),
        dtmf: match config.media.rtpengine_dtmf {
            Some(addr) => {
                let socket = tokio::net::UdpSocket::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("rtpengine-dtmf {addr}: {e}"))?;
                tracing::info!(%addr, "rtpengine DTMF events taken");
                let source = config
                    .media
                    .rtpengine
                    .as_deref()
                    .and_then(|a| a.parse::<SocketAddr>().ok().map(|a| a.ip()));
                Some((Arc::new(socket), source))
            }
            None => None,
        },
    };
    let soap = soap::Services::new(
        Some(soap::builtin::Builtin::new(
            state.location.clone(),
            state.store.clone(),
            state.limits.clone(),
        )),
        config.soap.endpoints.clone(),
        Duration::from_secs(config.soap.timeout),
        config.sip.max_message_bytes,
    )
    .with_web(state.soap_web.clone());
    let (sip, gateway) = match (listeners, watches) {
        (Some(listeners), Some(watches)) => {
            let (sip, gateway) = sip_app(listeners, &mut state, &config.sip, soap, watches, media);
            (Some(sip), Some(gateway))
        }
        _ => (None, None),
    };
    // SENDs of calls in progress go to the call gateway; in a cluster, those of calls another
    // relay holds go there.
    if let Some(gateway) = gateway {
        let hook = match &mut cluster {
            Some((c, tasks)) => {
                let (hook, task) = c.forward(gateway).await?;
                tasks.push(task);
                hook
            }
            None => gateway,
        };
        state.inbox.set_hook(hook);
    }
    // /readyz checks the upstream SIP server and the SOAP services too.
    let operations = operations.with_backends(
        sip.as_ref().and_then(|s| s.upstream.clone()),
        config
            .soap
            .endpoints
            .iter()
            .map(|e| e.url.clone())
            .collect(),
    );
    Ok(Relay {
        listener: LimitedListener::new(
            tcp,
            config.limits.max_connections,
            config.limits.max_connections_per_ip,
        ),
        http_addr,
        sip,
        state,
        www: config.www.filter(|d| d.is_dir()),
        closing,
        https,
        reload,
        operations,
        cluster,
    })
}

/// The SIP application on `listeners`: the endpoint and every feature built at once, each
/// given a weak handle to the endpoint; the REST side's ports to SIP (SENDs to phones,
/// outgoing SERVICE, watches of other domains) connected. Its call gateway, for the inbox's
/// hook.
fn sip_app(
    listeners: SipListeners,
    state: &mut AppState,
    config: &config::SipConfig,
    soap: soap::Services,
    watches: sipapp::watch::Watches,
    media: sipapp::invite::CallMedia,
) -> (Sip, Arc<dyn inbox::SendHook>) {
    let addr = listeners.addr();
    let tls_addr = listeners.tls_addr();
    let timers = sipapp::invite::CallTimers {
        ring: Duration::from_secs(config.invite_timeout),
        keepalive: Duration::from_secs(config.call_keepalive),
    };
    let dtmf = media.dtmf.clone();
    let (endpoint, (invites, upstream), receivers) =
        listeners.endpoint(config.max_message_bytes, config.tcp, |weak| {
            let upstream = config.upstream.as_ref().and_then(|u| {
                sipapp::upstream::UpstreamSender::new(u, weak.clone(), weak.listen()).map(Arc::new)
            });
            let presence = sipapp::presence::Presence::new(
                state.location.clone(),
                state.bus.clone(),
                weak.clone(),
            );
            let invites = sipapp::invite::inbound::Invites::new(
                state.inbox.clone(),
                state.calls.clone(),
                state.store.clone(),
                weak.clone(),
                timers,
                media,
                sipapp::invite::CallCluster {
                    ids: state.bus.ids(),
                    members: state.members.clone(),
                },
            );
            let proxy = sipapp::proxy::Proxy::new(
                state.store.clone(),
                weak.clone(),
                upstream.clone(),
                state.members.clone(),
                invites.kept(),
            );
            let mut core = sip_core(state, config, upstream.clone(), weak.listen())
                .with_services(soap)
                .with_presence(presence)
                .with_invites(invites.clone())
                .with_proxy(proxy)
                .with_watches(watches.clone());
            if config.upstream.is_some() {
                core = core.with_upstream();
            }
            let handler: Box<dyn restsip_sip::endpoint::Handler> = Box::new(core);
            (handler, (invites, upstream))
        });
    if let Some(rate) = &config.rate {
        endpoint.limit_rate(restsip_sip::pike::Pike::new(rate));
        tracing::info!(
            per_second = rate.per_second,
            burst = rate.burst,
            exempt = ?rate.exempt,
            "SIP requests rate limited per source"
        );
    }
    let weak = endpoint.downgrade();
    if let Some(sender) = &upstream {
        // Web users watch addresses of its domains through it.
        watches.attach(sender.clone());
    }
    // In a cluster: the calls a gone relay held end (BYE to the phone, `bye` to the web user),
    // and those this node held before a restart.
    if let Some(node) = state.members.node() {
        tokio::spawn(
            invites
                .clone()
                .end_calls_of_gone(Some(node.to_owned()), state.members.gone_from_now()),
        );
    }
    if let Some((socket, source)) = dtmf {
        tokio::spawn(invites.clone().dtmf_from_rtpengine(socket, source));
    }
    state.inbox.set_sip(Arc::new(sipapp::delivery::SipSide {
        im: sipapp::im::outbound::Outbound::new(weak.clone(), weak.listen(), state.members.clone()),
        calls: invites.outgoing(),
        upstream: upstream.clone(),
    }));
    state.service_out = Some(sipapp::service::outbound::ServiceSender::new(
        weak,
        state.egress,
    ));
    let sip = Sip {
        addr,
        tls_addr,
        receivers,
        upstream,
    };
    (sip, Arc::new(invites))
}

impl Relay {
    /// The HTTP address it listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The SIP address (UDP and TCP), unless SIP is off.
    pub fn sip_addr(&self) -> Option<SocketAddr> {
        self.sip.as_ref().map(|s| s.addr)
    }

    /// The SIP over TLS address, when it is on.
    pub fn sip_tls_addr(&self) -> Option<SocketAddr> {
        self.sip.as_ref().and_then(|s| s.tls_addr)
    }

    /// Whether the HTTP port speaks TLS (https:// and wss://).
    pub fn https(&self) -> bool {
        self.https.is_some()
    }

    /// The address `/metrics` has a listener of its own on (`--metrics`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.operations.metrics_addr()
    }

    /// Serves until `shutdown` completes, then ends open streams and waits for requests in flight.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // Alone, this relay sweeps; in a cluster, only while it leads.
        let leadership = self.state.webhooks.leadership();
        let mut cluster_tasks = Vec::new();
        if let Some((cluster, tasks)) = self.cluster {
            cluster_tasks = tasks;
            cluster_tasks
                .push(cluster.lead(self.state.webhooks.clone(), self.state.members.clone()));
        } else {
            // Stored webhooks resume: re-subscribed after their last stored event, outboxes
            // sent on.
            let started = self.state.webhooks.start_all().await?;
            if started > 0 {
                tracing::info!(webhooks = started, "webhooks resumed");
            }
        }
        let expiry = tokio::spawn(expire_logins(self.state.clone(), leadership));
        let mut registrations = None;
        let sip_tasks = match self.sip {
            Some(sip) => {
                let mut tasks = sip.receivers.spawn();
                // Users of the upstream's domains are registered there while logged in.
                if let (Some(sender), Some(changes)) = (sip.upstream, self.state.location.observe())
                {
                    let (r, task) = sipapp::upstream::Registrations::start(
                        sender,
                        self.state.store.clone(),
                        changes,
                    );
                    registrations = Some(r);
                    tasks.push(task);
                }
                tasks
            }
            None => Vec::new(),
        };
        let store = self.state.store.clone();
        let header_timeout = Duration::from_secs(self.state.limits.header_timeout);
        let (router, metrics_task) = self
            .operations
            .serve(api::app(self.state, self.www.as_deref()));
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
        let served = api::serve(self.listener, self.https, service, header_timeout, async {
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
        for task in cluster_tasks {
            task.abort();
        }
        if let Some(reload) = self.reload {
            reload.abort();
        }
        if let Some(task) = metrics_task {
            task.abort();
        }
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
fn sip_core(
    state: &AppState,
    config: &config::SipConfig,
    upstream: Option<Arc<sipapp::upstream::UpstreamSender>>,
    listen: restsip_sip::outgoing::Listening,
) -> sipapp::core::Core {
    let digest = config.auth.then(|| {
        Arc::new(restsip_sip::digest::DigestAuth::new(
            &config.realm,
            &config.algorithms,
            state.auth.secret(),
            NONCE_TTL.as_secs(),
        ))
    });
    let credentials =
        sipapp::credentials::Checker::new(state.auth.clone(), state.store.clone(), digest);
    let senders = sipapp::sender::Senders::new(
        credentials.clone(),
        state.store.clone(),
        state.location.clone(),
        config.foreign_from,
        upstream,
    );
    let registrar = sipapp::registrar::Registrar::new(
        state.location.clone(),
        credentials,
        state.limits.clone(),
    )
    .owned_at(listen, state.members.node());
    sipapp::core::Core::new(registrar)
        .with_inbox(state.inbox.clone())
        .with_senders(senders)
}

/// Removes logins as they expire (announcing each) while this relay leads (always, alone),
/// and lets
/// the bus forget idle resources.
async fn expire_logins(state: AppState, leadership: leadership::Leadership) {
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sweep = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        if !leadership.holds() {
            // Another relay of the cluster sweeps; its announcements come through the bus.
        } else if let Err(e) = state.location().expire_due().await {
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
