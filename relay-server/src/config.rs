//! Settings: command-line flags, each also read from a `RESTSIP_*` environment variable, over a
//! TOML file (`--config`), over the embedded defaults. Nothing needs configuring to start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

mod floods;
mod guards;
mod limits;
mod media;
mod sip;
mod soap;
mod tls;
pub use guards::GuardConfig;
pub use media::MediaConfig;
pub use sip::SipConfig;
use sip::{resolve_sip, resolve_tcp, resolve_upstream, resolve_upstream_users, UpstreamUsers};
use soap::resolve_soap;
pub use soap::SoapConfig;
pub use tls::TlsConfig;
mod operations;
pub use operations::{LogFormat, OperationsConfig};
mod cluster;
pub use cluster::ClusterConfig;

pub use crate::limits::Limits;
pub use crate::sipapp::upstream::Upstream;
pub use restsip_sip::transport::tcp::TcpLimits;

/// Flags and file settings as given; every one is optional, [`Config::resolve`] fills defaults.
#[derive(Debug, Default, Clone, Parser, Deserialize)]
#[command(
    name = "relay-server",
    version,
    about = "restsip relay: a RESTful API to SIP calls, presence and messaging",
    long_about = "restsip relay: serves the REST resources /user, /login and /call (with the SEND and \
                  CANCEL methods and active resources streamed over SSE, NDJSON and WebSocket).\n\
                  Every flag can also be set by its environment variable or in the --config TOML file \
                  (same names, with dashes); flags win over the environment, which wins over the file."
)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// TOML file with the same settings as the flags.
    #[arg(long, env = "RESTSIP_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// HTTP listen address [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long, env = "RESTSIP_HTTP", value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Database URL: `sqlite:PATH` (created on first start) or `postgres://USER@HOST:PORT/DB`
    /// (several relays sharing one database) [default: sqlite:data/restsip.db].
    #[arg(long, env = "RESTSIP_DATABASE", value_name = "URL")]
    pub database: Option<String>,
    /// Directory of static files served at / [default: the repository's www/].
    #[arg(long, env = "RESTSIP_WWW", value_name = "DIR")]
    pub www: Option<PathBuf>,
    /// Largest request body accepted, in bytes [default: 65536].
    #[arg(long, env = "RESTSIP_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most HTTP connections open at once; more wait to be accepted [default: 10000].
    #[arg(long, env = "RESTSIP_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Most HTTP connections open at once from one IP address; more are closed at once, so
    /// that one address cannot take every slot [default: 1000].
    #[arg(long, env = "RESTSIP_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Seconds an HTTP connection has to send a request's whole header block, counted from
    /// the connection's start or the end of its previous request; slower ones are closed
    /// [default: 10].
    #[arg(long, env = "RESTSIP_HEADER_TIMEOUT", value_name = "SECONDS")]
    pub header_timeout: Option<u64>,
    /// Most open streams (SSE, NDJSON, WebSocket subscriptions) per user [default: 32].
    #[arg(long, env = "RESTSIP_MAX_STREAMS_PER_USER", value_name = "N")]
    pub max_streams_per_user: Option<usize>,
    /// Most queued (undelivered) SENDs per contact [default: 1000].
    #[arg(long, env = "RESTSIP_MAX_QUEUED_PER_CONTACT", value_name = "N")]
    pub max_queued_per_contact: Option<usize>,
    /// Login lifetime when the client asks for none, in seconds [default: 3600].
    #[arg(long, env = "RESTSIP_DEFAULT_EXPIRES", value_name = "SECONDS")]
    pub default_expires: Option<u32>,
    /// Shortest login lifetime granted, in seconds [default: 30].
    #[arg(long, env = "RESTSIP_MIN_EXPIRES", value_name = "SECONDS")]
    pub min_expires: Option<u32>,
    /// Longest login lifetime granted, in seconds [default: 86400].
    #[arg(long, env = "RESTSIP_MAX_EXPIRES", value_name = "SECONDS")]
    pub max_expires: Option<u32>,
    /// Lifetime of bearer tokens from POST /token, in seconds [default: 600].
    #[arg(long, env = "RESTSIP_TOKEN_TTL", value_name = "SECONDS")]
    pub token_ttl: Option<u64>,
    /// Seconds between keep-alives on idle streams [default: 15].
    #[arg(long, env = "RESTSIP_KEEPALIVE", value_name = "SECONDS")]
    pub keepalive: Option<u64>,
    /// Most webhooks per user [default: 32].
    #[arg(long, env = "RESTSIP_MAX_WEBHOOKS_PER_USER", value_name = "N")]
    pub max_webhooks_per_user: Option<usize>,
    /// Most events stored for one webhook whose target does not acknowledge them; past it the
    /// webhook stops reading its resource until the target catches up [default: 1000].
    #[arg(long, env = "RESTSIP_MAX_WEBHOOK_QUEUE", value_name = "N")]
    pub max_webhook_queue: Option<usize>,
    /// Seconds a webhook target has to answer a delivery [default: 10].
    #[arg(long, env = "RESTSIP_WEBHOOK_TIMEOUT", value_name = "SECONDS")]
    pub webhook_timeout: Option<u64>,
    /// Longest wait between two attempts of a webhook delivery; the wait starts at 1 s and
    /// doubles up to this [default: 300].
    #[arg(long, env = "RESTSIP_WEBHOOK_MAX_BACKOFF", value_name = "SECONDS")]
    pub webhook_max_backoff: Option<u64>,
    /// Age after which a webhook whose event still fails is marked failing [default: 86400].
    #[arg(long, env = "RESTSIP_WEBHOOK_MAX_AGE", value_name = "SECONDS")]
    pub webhook_max_age: Option<u64>,
    /// Most queued (undelivered) SENDs one sender may hold for one contact; past it the
    /// sender gets 429 over REST and 486 Busy Here for a SIP MESSAGE, while other senders'
    /// SENDs still get through [default: 100].
    #[arg(long, env = "RESTSIP_MAX_QUEUED_PER_SENDER", value_name = "N")]
    pub max_queued_per_sender: Option<usize>,
    /// Most offline messages in one user's mailbox; past it leaving one gets 507
    /// `mailbox-full` over REST and a SOAP Fault over SIP SERVICE [default: 1000].
    #[arg(long, env = "RESTSIP_MAX_MAILBOX_MESSAGES", value_name = "N")]
    pub max_mailbox_messages: Option<usize>,
    /// Most bytes (url, body, subject and sender) of one user's offline messages
    /// [default: 10485760, 10 MiB].
    #[arg(long, env = "RESTSIP_MAX_MAILBOX_BYTES", value_name = "BYTES")]
    pub max_mailbox_bytes: Option<usize>,
    /// Most offline messages one sender may have in one user's mailbox [default: 50].
    #[arg(long, env = "RESTSIP_MAX_MAILBOX_PER_SENDER", value_name = "N")]
    pub max_mailbox_per_sender: Option<usize>,
    /// SIP address, UDP and TCP both [default: 127.0.0.1:5060]; port 0 picks a port free for
    /// both; `off` turns SIP off.
    #[arg(long, env = "RESTSIP_SIP", value_name = "ADDR|off")]
    pub sip: Option<String>,
    /// SIP digest realm [default: restsip]. Digest secrets are stored for this realm at sign-up
    /// and password change: after changing it, users must set their password again.
    #[arg(long, env = "RESTSIP_SIP_REALM", value_name = "REALM")]
    pub sip_realm: Option<String>,
    /// Largest SIP message accepted, in bytes; larger requests get 513 [default: 65535].
    #[arg(long, env = "RESTSIP_SIP_MAX_MESSAGE_BYTES", value_name = "BYTES")]
    pub sip_max_message_bytes: Option<usize>,
    /// Most SIP TCP connections open at once; more are closed at accept [default: 4096].
    #[arg(long, env = "RESTSIP_SIP_MAX_CONNECTIONS", value_name = "N")]
    pub sip_max_connections: Option<usize>,
    /// Most SIP TCP connections open at once from one IP address [default: 256].
    #[arg(long, env = "RESTSIP_SIP_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub sip_max_connections_per_ip: Option<usize>,
    /// Seconds a SIP message on TCP has to arrive whole, counted from its first byte (the
    /// first message: from the connection's start); slower connections are closed
    /// [default: 10].
    #[arg(long, env = "RESTSIP_SIP_MESSAGE_TIMEOUT", value_name = "SECONDS")]
    pub sip_message_timeout: Option<u64>,
    /// Seconds a SIP TCP connection may stay silent before it is closed (phones keep theirs
    /// open with CRLF keep-alives or re-registrations) [default: 7200].
    #[arg(long, env = "RESTSIP_SIP_TCP_IDLE_TIMEOUT", value_name = "SECONDS")]
    pub sip_tcp_idle_timeout: Option<u64>,
    /// Digest authentication of SIP REGISTER: on, or off for benchmarks and trusted networks
    /// only (anyone can then register as anyone) [default: on].
    #[arg(long, env = "RESTSIP_SIP_AUTH", value_name = "on|off")]
    pub sip_auth: Option<String>,
    /// Digest algorithms offered, most preferred first [default: MD5]. MD5 alone by default:
    /// many deployed phones (libre-based ones such as Debian's baresip among them) give up on
    /// any challenge that is not MD5, even beside an MD5 one; `SHA-256,MD5` is the order RFC
    /// 8760 recommends for fleets that support it, `SHA-256` alone refuses MD5.
    #[arg(long, env = "RESTSIP_SIP_DIGEST_ALGORITHMS", value_name = "LIST")]
    pub sip_digest_algorithms: Option<String>,
    /// Seconds an INVITE to a web user waits for an answer before 480 and a missed-call
    /// offline message, and a web user's call rings a phone before it is cancelled
    /// [default: 60].
    #[arg(long, env = "RESTSIP_SIP_INVITE_TIMEOUT", value_name = "SECONDS")]
    pub sip_invite_timeout: Option<u64>,
    /// Seconds between the OPTIONS probes the relay sends in an answered call between a web
    /// user and a phone; a phone that stops answering (or answers 481) ends the call; 0 turns
    /// them off [default: 30].
    #[arg(long, env = "RESTSIP_SIP_CALL_KEEPALIVE", value_name = "SECONDS")]
    pub sip_call_keepalive: Option<u64>,
    /// The session interval (RFC 4028 session timers) the relay offers and accepts in calls
    /// between web users and phones: the call is refreshed (re-INVITE or UPDATE) within it,
    /// and one nobody refreshed ends (BYE to the phone, `bye` with reason `session expired` to
    /// the page, rtpengine session deleted); 0 turns session timers off [default: 1800].
    #[arg(long, env = "RESTSIP_SIP_SESSION_EXPIRES", value_name = "SECS")]
    pub sip_session_expires: Option<u64>,
    /// The smallest session interval the relay accepts: a phone's INVITE asking for less gets
    /// 422 Session Interval Too Small with this Min-SE (RFC 4028 says at least 90; smaller
    /// values are for tests) [default: 90].
    #[arg(long, env = "RESTSIP_SIP_MIN_SE", value_name = "SECS")]
    pub sip_min_se: Option<u64>,
    /// An upstream SIP server (outbound proxy) for requests to addresses that are not accounts
    /// of this relay, as a `sip:` URI such as `sip:192.0.2.20:5060;transport=tcp` (`sips:` or
    /// `transport=tls`: over TLS, its certificate verified, see --tls-ca) [default:
    /// none: such SENDs get 404].
    #[arg(long, env = "RESTSIP_SIP_UPSTREAM", value_name = "URI")]
    pub sip_upstream: Option<String>,
    /// User name the relay answers the upstream server's digest challenges with.
    #[arg(long, env = "RESTSIP_SIP_UPSTREAM_USER", value_name = "USER")]
    pub sip_upstream_user: Option<String>,
    /// Password for the upstream server's digest challenges.
    #[arg(long, env = "RESTSIP_SIP_UPSTREAM_PASSWORD", value_name = "PASSWORD")]
    pub sip_upstream_password: Option<String>,
    /// A domain the upstream server serves: every user whose email is in it is registered
    /// there (AOR `sip:{email}`, Contact the relay) while it has a live web login (repeatable;
    /// in the file a list) [default: none].
    #[arg(
        long = "sip-upstream-domain",
        env = "RESTSIP_SIP_UPSTREAM_DOMAIN",
        value_name = "DOMAIN",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub sip_upstream_domain: Vec<String>,
    /// Digest credentials of one user at the upstream server, as `EMAIL=USER:PASSWORD`; the
    /// user is registered there too, whatever its domain (repeatable; in the file a list)
    /// [default: none: the upstream user and password serve every user].
    #[arg(
        long = "sip-upstream-account",
        env = "RESTSIP_SIP_UPSTREAM_ACCOUNT",
        value_name = "EMAIL=USER:PASSWORD",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub sip_upstream_account: Vec<String>,
    /// Lifetime the relay asks for its registrations at the upstream server, in seconds; each
    /// is refreshed before it ends [default: 600].
    #[arg(long, env = "RESTSIP_SIP_UPSTREAM_EXPIRES", value_name = "SECONDS")]
    pub sip_upstream_expires: Option<u32>,
    /// Whom SIP requests whose From is another domain (not a local user) are taken from:
    /// `any` (shown to pages as unauthenticated, `sip.authenticated: false`), or
    /// `upstream-only` (only from --sip-upstream; others get 403). A From that is a local user
    /// is always checked: digest credentials (407) or the flow the user registered on
    /// [default: any].
    #[arg(
        long,
        env = "RESTSIP_SIP_FOREIGN_FROM",
        value_name = "any|upstream-only"
    )]
    pub sip_foreign_from: Option<String>,
    /// A SOAP-over-HTTP endpoint serving the SERVICE requests whose method is in NAMESPACE, as
    /// `NAMESPACE=URL` (repeatable; in the file a list of such strings) [default: none].
    #[arg(
        long = "soap-service",
        env = "RESTSIP_SOAP_SERVICE",
        value_name = "NAMESPACE=URL"
    )]
    #[serde(default)]
    pub soap_service: Vec<String>,
    /// Seconds a SOAP-over-HTTP endpoint has to answer a forwarded SERVICE [default: 10].
    #[arg(long, env = "RESTSIP_SOAP_TIMEOUT", value_name = "SECONDS")]
    pub soap_timeout: Option<u64>,
    /// rtpengine's ng control address (its `--listen-ng`, UDP), which carries the media of
    /// calls between browsers and SIP phones: WebRTC (DTLS-SRTP, ICE, rtcp-mux, Opus) on the
    /// browser's side, plain RTP/AVP (G.711) on the phone's. Without it such calls are refused
    /// (488 to the phone, `media-relay-unavailable` to the page); calls between browsers never
    /// need it [default: none; scripts/run.sh starts one on 127.0.0.1:2223].
    #[arg(long, env = "RESTSIP_RTPENGINE", value_name = "HOST:PORT")]
    pub rtpengine: Option<String>,
    /// A STUN or TURN server handed to pages for their WebRTC connections (`GET
    /// /ice-servers`), as `stun:HOST:PORT` or `turn:HOST:PORT[?transport=udp|tcp]`
    /// (repeatable; in the file a list) [default: none: host candidates only, enough on a LAN].
    #[arg(
        long = "ice-server",
        env = "RESTSIP_ICE_SERVER",
        value_name = "URL",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub ice_server: Vec<String>,
    /// The user name for the turn: ice-servers.
    #[arg(long, env = "RESTSIP_ICE_USERNAME", value_name = "USER")]
    pub ice_username: Option<String>,
    /// The password for the turn: ice-servers.
    #[arg(long, env = "RESTSIP_ICE_CREDENTIAL", value_name = "PASSWORD")]
    pub ice_credential: Option<String>,
    /// Without --rtpengine, hand a phone's plain RTP offer to web users unchanged instead of
    /// refusing the call with 488: for web users that are servers with an RTP stack of their
    /// own rather than browsers [default: off].
    #[arg(long, env = "RESTSIP_SIP_SDP_PASSTHROUGH", value_name = "on|off")]
    pub sip_sdp_passthrough: Option<String>,
    /// The relay's TLS certificate chain (PEM, the server's certificate first). With
    /// --tls-key the HTTP port speaks only TLS (https:// and wss://, which browsers require
    /// for getUserMedia away from localhost) and --sip-tls presents it too; SIGHUP reloads
    /// both files (new connections get the new certificate) [default: none: plain HTTP].
    #[arg(long, env = "RESTSIP_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "RESTSIP_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// SIP over TLS address (RFC 3261 §26; phones use `sips:` or `transport=tls`, port 5061
    /// by convention); port 0 picks a free port; needs --tls-cert and --tls-key
    /// [default: off].
    #[arg(long, env = "RESTSIP_SIP_TLS", value_name = "ADDR|off")]
    pub sip_tls: Option<String>,
    /// Extra root certificates (PEM) that outgoing SIP over TLS trusts, beside Mozilla's
    /// (webpki-roots): for a private CA's upstream server or phones; needs --sip-tls
    /// (repeatable; in the file a list) [default: none].
    #[arg(
        long = "tls-ca",
        env = "RESTSIP_TLS_CA",
        value_name = "FILE",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub tls_ca: Vec<PathBuf>,
    /// Let webhooks and POST /service reach loopback, private (RFC 1918, ULA), link-local,
    /// CGNAT, multicast and other special-purpose addresses, and the relay's own host; without
    /// it such targets (after resolving, and again when connecting) are refused with
    /// `forbidden-target`. For development and closed networks; `--allow-private-targets=false`
    /// turns it off again [default: false].
    #[arg(
        long,
        env = "RESTSIP_ALLOW_PRIVATE_TARGETS",
        value_name = "true|false",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub allow_private_targets: Option<bool>,
    /// A page origin (`https://app.example:8443`) allowed to use the API from a browser: CORS
    /// answers it, and requests, WebSocket upgrades and streams from pages of other origins
    /// get 403 (requests without an Origin header, from non-browser clients, are not
    /// concerned). Repeatable; `*` allows every origin [default: the relay's own origin, plus
    /// http(s)://localhost, 127.0.0.1 and [::1] on any port while none is given].
    #[arg(
        long = "allowed-origin",
        env = "RESTSIP_ALLOWED_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub allowed_origin: Vec<String>,
    /// Seconds between the relay's ng `query` of each call rtpengine carries: a call rtpengine
    /// has dropped (its media timeout: the phone's RTP stopped) ends like a hang-up (BYE to
    /// the phone, `bye` with reason `media timeout` to the page); 0 never asks [default: 10].
    #[arg(long, env = "RESTSIP_RTPENGINE_CHECK", value_name = "SECS")]
    pub rtpengine_check: Option<u64>,
    /// Serve `/metrics` (Prometheus text format) on its own listener at ADDR, to anyone who
    /// reaches it [default: none: `/metrics` is served on the HTTP listener to loopback
    /// clients only (127.0.0.1, ::1); others get 403].
    #[arg(long, env = "RESTSIP_METRICS", value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Log lines on stderr as `text` or as `json` (one JSON object per line, for log
    /// shippers) [default: text].
    #[arg(long, env = "RESTSIP_LOG_FORMAT", value_name = "text|json")]
    pub log_format: Option<String>,
    /// Keep each tokio worker thread on a CPU of its own (of those the process may use), for
    /// a host the relay has to itself: a fan-out to 10,000 streams then uses both cores of a
    /// 2-core guest instead of stacking its workers on one (README, "Benchmarks", ninth
    /// round); with clients or other busy processes on the same cores, leave it off
    /// [default: false].
    #[arg(
        long,
        env = "RESTSIP_PIN_WORKERS",
        value_name = "true|false",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub pin_workers: Option<bool>,
    /// SIP requests one source IP address (IPv6: one /64) may send per second, sustained, as
    /// `N/s`; past it and its burst, the source's next request is answered 503 with
    /// Retry-After and the rest are dropped unanswered until the burst has refilled; ACKs and
    /// responses are never limited; `off` for benchmarks that flood from one address
    /// [default: 100/s].
    #[arg(long, env = "RESTSIP_SIP_RATE_LIMIT", value_name = "N/s|off")]
    pub sip_rate_limit: Option<String>,
    /// SIP requests one source may send at once above --sip-rate-limit [default: 500].
    #[arg(long, env = "RESTSIP_SIP_RATE_BURST", value_name = "N")]
    pub sip_rate_burst: Option<u32>,
    /// A source never rate limited, as an address or a CIDR block (`192.0.2.20`,
    /// `10.0.0.0/8`): the upstream proxy, which carries many users' requests (repeatable; in
    /// the file a list) [default: none].
    #[arg(
        long = "sip-rate-exempt",
        env = "RESTSIP_SIP_RATE_EXEMPT",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub sip_rate_exempt: Vec<String>,
    /// Where the relay takes the DTMF events rtpengine logs (give rtpengine
    /// `--dtmf-log-dest=` the same IP:PORT): a phone's RFC 4733 key presses reach the web
    /// user's page as `dtmf` (as SIP INFO ones always do). Keep it on loopback or a private
    /// address; with an IP in --rtpengine only datagrams from that IP are taken [default: none;
    /// scripts/run.sh uses 127.0.0.1:2224].
    #[arg(long, env = "RESTSIP_RTPENGINE_DTMF", value_name = "IP:PORT")]
    pub rtpengine_dtmf: Option<String>,
    /// The NATS server (`nats://HOST:PORT`) through which several relays sharing one store
    /// exchange events; see README "Several relays" [default: none, the relay runs alone].
    #[arg(long, env = "RESTSIP_CLUSTER", value_name = "URL")]
    pub cluster: Option<String>,
    /// This relay's name in the cluster, unique among its relays [default: hostname-pid].
    #[arg(long, env = "RESTSIP_NODE", value_name = "NAME")]
    pub node: Option<String>,
    /// The cluster's name, prefix of its NATS subjects, so clusters can share a NATS server
    /// [default: default].
    #[arg(long, env = "RESTSIP_CLUSTER_NAME", value_name = "NAME")]
    pub cluster_name: Option<String>,
}

/// The settings in force.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address.
    pub http: SocketAddr,
    /// Database URL.
    pub database: String,
    /// Static files served at `/`, if the directory exists.
    pub www: Option<PathBuf>,
    /// Limits and lifetimes.
    pub limits: Limits,
    /// The SIP side.
    pub sip: SipConfig,
    /// SOAP services for SERVICE requests.
    pub soap: SoapConfig,
    /// rtpengine and ICE servers.
    pub media: MediaConfig,
    /// The certificate, SIP over TLS, trusted roots.
    pub tls: TlsConfig,
    /// Users' targets and page origins.
    pub guards: GuardConfig,
    /// `/metrics` and logs.
    pub operations: OperationsConfig,
    /// The cluster this relay is part of, if any.
    pub cluster: Option<ClusterConfig>,
}

impl Config {
    /// Reads flags and environment, then the `--config` file if any, and fills in defaults.
    pub fn from_args() -> anyhow::Result<Self> {
        Self::resolve(Settings::parse())
    }

    /// Merges `cli` over its `--config` file over the defaults, and checks the result.
    pub fn resolve(cli: Settings) -> anyhow::Result<Self> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => Settings::default(),
        };
        let limits = limits::resolve_limits(&cli, &file)?;
        let http = cli
            .http
            .or(file.http)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let database = cli
            .database
            .or(file.database)
            .unwrap_or_else(|| "sqlite:data/restsip.db".to_owned());
        let www = cli.www.or(file.www).or_else(default_www);
        let sip = resolve_sip(
            cli.sip.or(file.sip),
            cli.sip_realm.or(file.sip_realm),
            cli.sip_max_message_bytes.or(file.sip_max_message_bytes),
            cli.sip_auth.or(file.sip_auth),
            cli.sip_digest_algorithms.or(file.sip_digest_algorithms),
        )?;
        let mut sip = sip;
        sip.tcp = resolve_tcp(
            cli.sip_max_connections.or(file.sip_max_connections),
            cli.sip_max_connections_per_ip
                .or(file.sip_max_connections_per_ip),
            cli.sip_message_timeout.or(file.sip_message_timeout),
            cli.sip_tcp_idle_timeout.or(file.sip_tcp_idle_timeout),
        )?;
        if let Some(t) = cli.sip_invite_timeout.or(file.sip_invite_timeout) {
            anyhow::ensure!(
                (1..=600).contains(&t),
                "sip-invite-timeout must be from 1 to 600 seconds"
            );
            sip.invite_timeout = t;
        }
        if let Some(t) = cli.sip_call_keepalive.or(file.sip_call_keepalive) {
            anyhow::ensure!(
                t <= 3600,
                "sip-call-keepalive must be from 0 (off) to 3600 seconds"
            );
            sip.call_keepalive = t;
        }
        sip.upstream = resolve_upstream(
            cli.sip_upstream.or(file.sip_upstream),
            cli.sip_upstream_user.or(file.sip_upstream_user),
            cli.sip_upstream_password.or(file.sip_upstream_password),
        )?;
        sip.upstream = resolve_upstream_users(
            sip.upstream,
            UpstreamUsers {
                domains: if cli.sip_upstream_domain.is_empty() {
                    file.sip_upstream_domain
                } else {
                    cli.sip_upstream_domain
                },
                accounts: if cli.sip_upstream_account.is_empty() {
                    file.sip_upstream_account
                } else {
                    cli.sip_upstream_account
                },
                expires: cli.sip_upstream_expires.or(file.sip_upstream_expires),
            },
        )?;
        sip.rate = floods::resolve_rate(floods::RateSettings {
            limit: cli.sip_rate_limit.or(file.sip_rate_limit),
            burst: cli.sip_rate_burst.or(file.sip_rate_burst),
            exempt: if cli.sip_rate_exempt.is_empty() {
                file.sip_rate_exempt
            } else {
                cli.sip_rate_exempt
            },
        })?;
        if let Some(v) = cli.sip_foreign_from.or(file.sip_foreign_from) {
            sip.foreign_from = crate::sipapp::sender::ForeignFrom::parse(&v).ok_or_else(|| {
                anyhow::anyhow!("sip-foreign-from: {v:?} must be any or upstream-only")
            })?;
            anyhow::ensure!(
                sip.foreign_from == crate::sipapp::sender::ForeignFrom::Any
                    || sip.upstream.is_some(),
                "sip-foreign-from upstream-only needs --sip-upstream"
            );
        }
        let soap = resolve_soap(
            if cli.soap_service.is_empty() {
                file.soap_service
            } else {
                cli.soap_service
            },
            cli.soap_timeout.or(file.soap_timeout),
        )?;
        let media = media::resolve_media(media::MediaSettings {
            rtpengine: cli.rtpengine.or(file.rtpengine),
            ice_servers: if cli.ice_server.is_empty() {
                file.ice_server
            } else {
                cli.ice_server
            },
            ice_username: cli.ice_username.or(file.ice_username),
            ice_credential: cli.ice_credential.or(file.ice_credential),
            sdp_passthrough: cli.sip_sdp_passthrough.or(file.sip_sdp_passthrough),
            session_expires: cli.sip_session_expires.or(file.sip_session_expires),
            min_se: cli.sip_min_se.or(file.sip_min_se),
            rtpengine_check: cli.rtpengine_check.or(file.rtpengine_check),
            rtpengine_dtmf: cli.rtpengine_dtmf.or(file.rtpengine_dtmf),
        })?;
        let tls = tls::resolve_tls(
            tls::TlsSettings {
                cert: cli.tls_cert.or(file.tls_cert),
                key: cli.tls_key.or(file.tls_key),
                sip: cli.sip_tls.or(file.sip_tls),
                ca: if cli.tls_ca.is_empty() {
                    file.tls_ca
                } else {
                    cli.tls_ca
                },
            },
            sip.addr.is_some(),
        )?;
        let tls_upstream = sip.upstream.as_ref().is_some_and(|u| {
            restsip_sip::uri::Uri::parse(&u.uri)
                .ok()
                .and_then(|uri| uri.sip().map(restsip_sip::transport::Transport::of_uri))
                == Some(restsip_sip::transport::Transport::Tls)
        });
        anyhow::ensure!(
            !tls_upstream || tls.sip.is_some(),
            "sip-upstream over TLS needs sip-tls (the relay's TLS transport)"
        );
        let guards = guards::resolve_guards(
            cli.allow_private_targets.or(file.allow_private_targets),
            if cli.allowed_origin.is_empty() {
                &file.allowed_origin
            } else {
                &cli.allowed_origin
            },
        )?;
        let operations = operations::resolve_operations(
            cli.metrics.or(file.metrics),
            cli.log_format.or(file.log_format),
            cli.pin_workers.or(file.pin_workers),
        )?;
        let cluster = cluster::resolve_cluster(
            cli.cluster.or(file.cluster),
            cli.node.or(file.node),
            cli.cluster_name.or(file.cluster_name),
        )?;
        Ok(Self {
            cluster,
            guards,
            tls,
            operations,
            media,
            soap,
            http,
            database,
            www,
            limits,
            sip,
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<Settings> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
}

/// The repository's `www/` when the binary runs from a checkout.
fn default_www() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www");
    dir.is_dir().then_some(dir)
}

#[cfg(test)]
mod tests;
