//! Web clients serving SOAP services: a page's WebSocket (`serve` frame) registers it as the
//! server of a namespace for its user; a SIP `SERVICE sip:{email}@...` whose method is in that
//! namespace becomes a `service` frame on the socket, and the page's `service-reply` (a result
//! object, or a fault) becomes the SIP answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use restsip_protocol::{ServerFrame, SoapFault};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use super::envelope::{response_json, Call, Fault, FaultCode};
use super::{Caller, Outcome};

/// Most namespaces one connection serves.
pub const MAX_PER_CONNECTION: usize = 16;
/// Longest namespace accepted.
const MAX_NAMESPACE: usize = 1024;
/// Most requests waiting for web clients at once, over all of them.
const MAX_PENDING: usize = 1024;

/// What a page answered.
#[derive(Debug, Clone, PartialEq)]
pub struct WebReply {
    /// The result object.
    pub result: Option<Value>,
    /// Or a fault.
    pub fault: Option<SoapFault>,
}

/// One WebSocket serving a namespace.
struct Server {
    /// The connection's id.
    conn: u64,
    /// Its outgoing frames (boxed: see the WebSocket's queue).
    tx: mpsc::Sender<Box<ServerFrame>>,
}

#[derive(Default)]
struct Inner {
    /// Servers by (email, namespace); the last registered serves.
    servers: HashMap<(String, String), Vec<Server>>,
    /// Requests waiting for an answer, by id: the connection asked and where the answer goes.
    pending: HashMap<String, (u64, oneshot::Sender<WebReply>)>,
    /// The next connection id.
    next_conn: u64,
}

/// The web clients serving SOAP namespaces; cheap to clone.
#[derive(Clone, Default)]
pub struct WebServers {
    /// Shared state.
    inner: Arc<Mutex<Inner>>,
}

impl WebServers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh id for a WebSocket connection.
    pub fn connection(&self) -> u64 {
        let mut inner = self.lock();
        inner.next_conn += 1;
        inner.next_conn
    }

    /// Registers connection `conn` of `email` as the server of `namespace`.
    pub fn serve(
        &self,
        conn: u64,
        email: &str,
        namespace: &str,
        tx: mpsc::Sender<Box<ServerFrame>>,
    ) -> Result<(), String> {
        if namespace.trim().is_empty() || namespace.len() > MAX_NAMESPACE {
            return Err(format!("a namespace is 1 to {MAX_NAMESPACE} bytes of text"));
        }
        let mut inner = self.lock();
        let served = inner
            .servers
            .values()
            .filter(|list| list.iter().any(|s| s.conn == conn))
            .count();
        let key = (email.to_owned(), namespace.to_owned());
        let list = inner.servers.entry(key).or_default();
        if list.iter().any(|s| s.conn == conn) {
            return Ok(());
        }
        if served >= MAX_PER_CONNECTION {
            return Err(format!(
                "a connection serves at most {MAX_PER_CONNECTION} namespaces"
            ));
        }
        list.push(Server { conn, tx });
        Ok(())
    }

    /// Ends connection `conn`'s service of `namespace`.
    pub fn unserve(&self, conn: u64, email: &str, namespace: &str) {
        let mut inner = self.lock();
        let key = (email.to_owned(), namespace.to_owned());
        if let Some(list) = inner.servers.get_mut(&key) {
            list.retain(|s| s.conn != conn);
            if list.is_empty() {
                inner.servers.remove(&key);
            }
        }
    }

    /// Forgets a closed connection: its services end, its unanswered requests fail.
    pub fn drop_connection(&self, conn: u64) {
        let mut inner = self.lock();
        for list in inner.servers.values_mut() {
            list.retain(|s| s.conn != conn);
        }
        inner.servers.retain(|_, list| !list.is_empty());
        // Dropping the senders wakes the waiting requests with an error.
        inner.pending.retain(|_, (c, _)| *c != conn);
    }

    /// Hands a page's answer to the request `id` it was asked by connection `conn`; false when
    /// no such request waits (answered already, timed out, or asked of another connection).
    pub fn reply(&self, conn: u64, id: &str, reply: WebReply) -> bool {
        let mut inner = self.lock();
        match inner.pending.get(id) {
            Some((c, _)) if *c == conn => {}
            _ => return false,
        }
        inner
            .pending
            .remove(id)
            .is_some_and(|(_, tx)| tx.send(reply).is_ok())
    }

    /// True when a web client of `email` serves `namespace`.
    pub fn serves(&self, email: &str, namespace: &str) -> bool {
        self.lock()
            .servers
            .contains_key(&(email.to_owned(), namespace.to_owned()))
    }

    /// Asks the web client of `email` serving the call's namespace, waiting up to `timeout`.
    pub async fn call(
        &self,
        email: &str,
        call: &Call,
        caller: &Caller,
        xml: &str,
        timeout: Duration,
    ) -> Outcome {
        let namespace = call.namespace.clone().unwrap_or_default();
        let id = format!("{:016x}", rand::random::<u64>());
        let (tx, rx) = oneshot::channel();
        let params: Map<String, Value> = call
            .params
            .iter()
            .map(|p| (p.name.clone(), Value::String(p.text.clone())))
            .collect();
        let frame = ServerFrame::Service {
            id: id.clone(),
            namespace: namespace.clone(),
            method: call.name.clone(),
            from: caller.from.clone(),
            params: Value::Object(params),
            body: xml.to_owned(),
        };
        {
            let mut inner = self.lock();
            if inner.pending.len() >= MAX_PENDING {
                return Outcome::Busy;
            }
            let key = (email.to_owned(), namespace.clone());
            let Some(server) = inner.servers.get(&key).and_then(|l| l.last()) else {
                return Outcome::Unknown {
                    namespace,
                    method: call.name.clone(),
                };
            };
            let conn = server.conn;
            if server.tx.try_send(Box::new(frame)).is_err() {
                return failed("the web client serving it is too busy");
            }
            inner.pending.insert(id.clone(), (conn, tx));
        }
        let answer = tokio::time::timeout(timeout, rx).await;
        self.lock().pending.remove(&id);
        match answer {
            Ok(Ok(reply)) => outcome(&namespace, &call.name, reply),
            Ok(Err(_)) => failed("the web client serving it went away"),
            Err(_) => failed("the web client serving it did not answer in time"),
        }
    }
}

fn failed(why: &str) -> Outcome {
    Outcome::fault(&Fault::new(FaultCode::Server, why))
}

/// The SOAP answer for a page's reply.
fn outcome(namespace: &str, method: &str, reply: WebReply) -> Outcome {
    if let Some(f) = reply.fault {
        let code = if f.code.contains("Client") {
            FaultCode::Client
        } else {
            FaultCode::Server
        };
        let mut fault = Fault::new(code, f.string);
        fault.detail = f.detail;
        return Outcome::fault(&fault);
    }
    let empty = Map::new();
    let result = match &reply.result {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(fields)) => fields,
        Some(_) => return failed("the web client's result is not an object"),
    };
    match response_json(namespace, method, result) {
        Ok(xml) => Outcome::Response(xml),
        Err(why) => failed(&format!("the web client's result is unusable: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::envelope::Envelope;

    fn call_of(xml: &str) -> Call {
        Envelope::parse(xml)
            .ok()
            .and_then(|e| e.call().cloned())
            .expect("a call")
    }

    /// Calls `urn:calc`'s Add at `user` with [`XML`], waiting `wait` for the page.
    async fn add(web: &WebServers, user: &str, wait: Duration) -> Outcome {
        web.call(user, &call_of(XML), &Caller::default(), XML, wait)
            .await
    }

    const XML: &str = "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>\
        <m:Add xmlns:m=\"urn:calc\"><a>1</a><b>2</b></m:Add></s:Body></s:Envelope>";

    #[tokio::test]
    async fn a_page_answers_and_its_result_becomes_the_response() {
        let web = WebServers::default();
        let conn = web.connection();
        let (tx, mut rx) = mpsc::channel(8);
        web.serve(conn, "alice@example.net", "urn:calc", tx)
            .expect("served");
        assert!(web.serves("alice@example.net", "urn:calc"));
        let page = web.clone();
        tokio::spawn(async move {
            if let Some(ServerFrame::Service { id, params, .. }) = rx.recv().await.map(|f| *f) {
                assert_eq!(params["a"], "1");
                let result = Some(serde_json::json!({"sum": 3}));
                assert!(page.reply(
                    conn,
                    &id,
                    WebReply {
                        result,
                        fault: None
                    }
                ));
            }
        });
        let out = add(&web, "alice@example.net", Duration::from_secs(5)).await;
        match out {
            Outcome::Response(xml) => assert!(xml.contains("<sum>3</sum>"), "{xml}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn silence_and_closed_pages_become_server_faults() {
        let web = WebServers::default();
        let conn = web.connection();
        let (tx, _rx) = mpsc::channel(8);
        web.serve(conn, "a@x", "urn:calc", tx).expect("served");
        let out = add(&web, "a@x", Duration::from_millis(50)).await;
        assert!(
            matches!(&out, Outcome::Fault(x) if x.contains("in time")),
            "{out:?}"
        );
        web.drop_connection(conn);
        let out = add(&web, "a@x", Duration::from_millis(50)).await;
        assert!(matches!(out, Outcome::Unknown { .. }));
        assert!(!web.reply(
            conn,
            "nope",
            WebReply {
                result: None,
                fault: None
            }
        ));
    }
}
