//! SOAP services, as the SIP `SERVICE` method of draft-deason-sip-soap carries them: a SOAP 1.1
//! envelope is dispatched by the namespace of its method to a built-in service ([`builtin`]) or
//! to an operator-configured SOAP-over-HTTP endpoint ([`http`]), and the outcome (a response,
//! a Fault, an unknown service, a malformed envelope) is told to the transport that carried it.

pub mod builtin;
pub mod envelope;
pub mod http;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

pub use envelope::{Envelope, EnvelopeError, Fault, FaultCode};

/// Most services running at once; past it requests are refused as busy (503 over SIP).
const MAX_CONCURRENT: usize = 256;

/// The result of one service request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The service answered: a SOAP envelope with the method's response.
    Response(String),
    /// The service failed: a SOAP envelope with a Fault.
    Fault(String),
    /// No service serves this namespace and method.
    Unknown {
        /// The method's namespace.
        namespace: String,
        /// The method's local name.
        method: String,
    },
    /// The body is not a usable SOAP 1.1 request.
    Malformed(EnvelopeError),
    /// Too many service requests are in progress.
    Busy,
}

impl Outcome {
    /// The Fault envelope of `fault`.
    pub fn fault(fault: &Fault) -> Self {
        Outcome::Fault(fault.to_xml())
    }
}

/// Who asks, as the carrying protocol tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The sender's address (`user@host`) from SIP `From`, if it names one.
    pub from: Option<String>,
    /// Whether the relay checked that `from` sent it (a local user's credentials or
    /// registration flow, or the trusted upstream's assertion); false for anonymous callers.
    pub authenticated: bool,
    /// A `SOAPAction` the request carried, passed on to HTTP endpoints.
    pub soap_action: Option<String>,
    /// The account the request is addressed to (the SIP Request-URI's `user@host`), whose web
    /// clients may serve the namespace.
    pub to: Option<String>,
}

/// A SOAP-over-HTTP endpoint serving one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The namespace of the methods it serves.
    pub namespace: String,
    /// Where requests are POSTed.
    pub url: String,
}

/// Every service the relay offers; cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// The built-in services.
    builtin: Option<builtin::Builtin>,
    /// Configured HTTP endpoints, checked before the built-ins (an operator may replace one).
    endpoints: Arc<Vec<Endpoint>>,
    /// The HTTP client for them.
    http: reqwest::Client,
    /// Largest response relayed back.
    max_response: usize,
    /// Bounds the requests in progress.
    permits: Arc<Semaphore>,
    /// Web clients serving namespaces.
    web: web::WebServers,
    /// Time an endpoint or a web client has to answer.
    timeout: Duration,
}

impl Services {
    /// The services: `builtin` if given, and `endpoints` answering within `timeout`, with
    /// responses up to `max_response` bytes.
    pub fn new(
        builtin: Option<builtin::Builtin>,
        endpoints: Vec<Endpoint>,
        timeout: Duration,
        max_response: usize,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            builtin,
            endpoints: Arc::new(endpoints),
            http,
            max_response,
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT)),
            web: web::WebServers::default(),
            timeout,
        }
    }

    /// Lets the web clients registered in `web` serve namespaces too.
    pub fn with_web(mut self, web: web::WebServers) -> Self {
        self.web = web;
        self
    }

    /// Runs the request in `xml`.
    pub async fn dispatch(&self, xml: &str, caller: &Caller) -> Outcome {
        let Ok(_permit) = self.permits.try_acquire() else {
            return Outcome::Busy;
        };
        let envelope = match Envelope::parse(xml) {
            Ok(envelope) => envelope,
            Err(e) => return Outcome::Malformed(e),
        };
        let Some(call) = envelope.call() else {
            return Outcome::Malformed(EnvelopeError::Structure(
                "the Body holds a Fault, not a request",
            ));
        };
        let namespace = call.namespace.clone().unwrap_or_default();
        // A web client of the addressed user serving the namespace comes first.
        if let Some(to) = caller
            .to
            .as_deref()
            .filter(|to| self.web.serves(to, &namespace))
        {
            if let Err(fault) = envelope.check_must_understand(|_, _| false) {
                return Outcome::fault(&fault);
            }
            return self.web.call(to, call, caller, xml, self.timeout).await;
        }
        if let Some(endpoint) = self.endpoints.iter().find(|e| e.namespace == namespace) {
            // The endpoint is the SOAP receiver: it judges mustUnderstand itself.
            let action = caller
                .soap_action
                .clone()
                .unwrap_or_else(|| format!("{namespace}#{}", call.name));
            return http::forward(&self.http, endpoint, xml, &action, self.max_response).await;
        }
        match &self.builtin {
            Some(builtin) if builtin::serves(&namespace, &call.name) => {
                if let Err(fault) = envelope.check_must_understand(|_, _| false) {
                    return Outcome::fault(&fault);
                }
                builtin.call(call, caller).await
            }
            _ => Outcome::Unknown {
                namespace,
                method: call.name.clone(),
            },
        }
    }
}
