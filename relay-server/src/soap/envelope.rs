//! SOAP 1.1 envelopes: reading a request (header entries, `mustUnderstand`, `encodingStyle`, the
//! method and its parameters, or a Fault) with roxmltree, and writing responses and Faults.

use std::fmt::{self, Write};

use roxmltree::{Document, Node, ParsingOptions};

/// The SOAP 1.1 envelope namespace.
pub const ENVELOPE_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The SOAP 1.1 encoding namespace (section 5 encoding).
pub const ENCODING_NS: &str = "http://schemas.xmlsoap.org/soap/encoding/";
/// The actor that means "the next SOAP node", the same as no actor.
pub const ACTOR_NEXT: &str = "http://schemas.xmlsoap.org/soap/actor/next";
/// Most XML nodes read from one envelope (a large flat document is refused before work).
const MAX_NODES: u32 = 10_000;

/// Why a body is not a usable SOAP 1.1 envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not well-formed XML (or a DTD, which is never accepted), with the parser's words.
    Xml(String),
    /// The root element is not `Envelope`.
    NotEnvelope(String),
    /// An `Envelope` in another namespace than SOAP 1.1's (SOAP `VersionMismatch`).
    VersionMismatch(String),
    /// No `Body` element.
    NoBody,
    /// A `Body` without any element.
    EmptyBody,
    /// Something else out of place (an element before Header, a second Body, ...).
    Structure(&'static str),
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Xml(why) => write!(f, "not well-formed XML: {why}"),
            Self::NotEnvelope(name) => write!(f, "the root element is {name}, not a SOAP Envelope"),
            Self::VersionMismatch(ns) => {
                write!(
                    f,
                    "the Envelope's namespace {ns:?} is not SOAP 1.1's {ENVELOPE_NS}"
                )
            }
            Self::NoBody => f.write_str("the Envelope has no Body"),
            Self::EmptyBody => f.write_str("the Body is empty"),
            Self::Structure(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for EnvelopeError {}

impl EnvelopeError {
    /// The Fault that answers it: `VersionMismatch` or `Client`.
    pub fn fault(&self) -> Fault {
        let code = match self {
            Self::VersionMismatch(_) => FaultCode::VersionMismatch,
            _ => FaultCode::Client,
        };
        Fault::new(code, self.to_string())
    }
}

/// One entry of the SOAP Header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderEntry {
    /// Namespace of the entry's element.
    pub namespace: Option<String>,
    /// Local name.
    pub name: String,
    /// `mustUnderstand="1"`.
    pub must_understand: bool,
    /// `actor`, if any (absent means the receiver).
    pub actor: Option<String>,
    /// Text content.
    pub text: String,
}

impl HeaderEntry {
    /// True when this entry is meant for the node that receives the envelope.
    pub fn targets_receiver(&self) -> bool {
        self.actor.as_deref().is_none_or(|a| a == ACTOR_NEXT)
    }
}

/// A parameter (or result) of an RPC-style call: one child element of the method element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Local name (RPC parameters are unqualified).
    pub name: String,
    /// Text content, all text below the element joined.
    pub text: String,
    /// True for `xsi:nil="true"`.
    pub nil: bool,
}

/// The first Body entry when it is not a Fault: the method called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The method's namespace, which names the service.
    pub namespace: Option<String>,
    /// The method's local name.
    pub name: String,
    /// Its parameters, in order.
    pub params: Vec<Param>,
    /// `encodingStyle` in force at the method element (its own or inherited), if any.
    pub encoding_style: Option<String>,
}

impl Call {
    /// The text of the first parameter of that name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name == name && !p.nil)
            .map(|p| p.text.as_str())
    }
}

/// A SOAP 1.1 faultcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultCode {
    /// The envelope's namespace was not SOAP 1.1's.
    VersionMismatch,
    /// A mandatory header entry was not understood.
    MustUnderstand,
    /// The request was wrong (the sender should not resend it unchanged).
    Client,
    /// The service failed (the same request may work later).
    Server,
    /// Any other code, as written (`prefix:local`, or `local.sub`).
    Other(String),
}

impl FaultCode {
    /// The code as written in `faultcode`, with the `SOAP-ENV` prefix for the standard ones.
    pub fn qname(&self) -> String {
        match self {
            Self::VersionMismatch => "SOAP-ENV:VersionMismatch".into(),
            Self::MustUnderstand => "SOAP-ENV:MustUnderstand".into(),
            Self::Client => "SOAP-ENV:Client".into(),
            Self::Server => "SOAP-ENV:Server".into(),
            Self::Other(code) => code.clone(),
        }
    }

    /// Reads a `faultcode` value (a QName whose prefix maps to the envelope namespace for the
    /// standard codes; dotted refinements such as `Client.Authentication` stay `Other`).
    fn parse(qname: &str, node: Node<'_, '_>) -> Self {
        let qname = qname.trim();
        let (prefix, local) = qname.split_once(':').unwrap_or(("", qname));
        let ns = if prefix.is_empty() {
            node.default_namespace()
        } else {
            node.lookup_namespace_uri(Some(prefix))
        };
        if ns != Some(ENVELOPE_NS) {
            return Self::Other(qname.to_owned());
        }
        match local {
            "VersionMismatch" => Self::VersionMismatch,
            "MustUnderstand" => Self::MustUnderstand,
            "Client" => Self::Client,
            "Server" => Self::Server,
            _ => Self::Other(qname.to_owned()),
        }
    }
}

/// A SOAP Fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `faultcode`.
    pub code: FaultCode,
    /// `faultstring`: what went wrong, for people.
    pub string: String,
    /// `faultactor`, if any.
    pub actor: Option<String>,
    /// `detail`: its text (when read) or the text written inside `<detail>` (when built).
    pub detail: Option<String>,
}

impl Fault {
    /// A fault without actor or detail.
    pub fn new(code: FaultCode, string: impl Into<String>) -> Self {
        Self {
            code,
            string: string.into(),
            actor: None,
            detail: None,
        }
    }

    /// Adds a detail text.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The whole envelope carrying this fault.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(512);
        out.push_str(PROLOGUE);
        out.push_str("<SOAP-ENV:Fault><faultcode>");
        escape_into(&mut out, &self.code.qname());
        out.push_str("</faultcode><faultstring>");
        escape_into(&mut out, &self.string);
        out.push_str("</faultstring>");
        if let Some(actor) = &self.actor {
            out.push_str("<faultactor>");
            escape_into(&mut out, actor);
            out.push_str("</faultactor>");
        }
        if let Some(detail) = &self.detail {
            out.push_str("<detail><restsip:reason xmlns:restsip=\"urn:restsip:soap\">");
            escape_into(&mut out, detail);
            out.push_str("</restsip:reason></detail>");
        }
        out.push_str("</SOAP-ENV:Fault>");
        out.push_str(EPILOGUE);
        out
    }
}

/// What the Body carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEntry {
    /// A method call or a method response.
    Call(Call),
    /// A Fault.
    Fault(Fault),
}

/// A parsed SOAP 1.1 envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Header entries, in order.
    pub headers: Vec<HeaderEntry>,
    /// The first Body entry.
    pub body: BodyEntry,
}

impl Envelope {
    /// Parses `xml` as a SOAP 1.1 envelope. DTDs are refused (no entity expansion).
    pub fn parse(xml: &str) -> Result<Envelope, EnvelopeError> {
        let options = ParsingOptions {
            allow_dtd: false,
            nodes_limit: MAX_NODES,
            ..ParsingOptions::default()
        };
        let doc = Document::parse_with_options(xml, options)
            .map_err(|e| EnvelopeError::Xml(e.to_string()))?;
        let root = doc.root_element();
        if root.tag_name().name() != "Envelope" {
            return Err(EnvelopeError::NotEnvelope(
                root.tag_name().name().to_owned(),
            ));
        }
        match root.tag_name().namespace() {
            Some(ENVELOPE_NS) => {}
            other => {
                return Err(EnvelopeError::VersionMismatch(
                    other.unwrap_or_default().to_owned(),
                ))
            }
        }
        let mut headers = Vec::new();
        let mut body = None;
        for (i, child) in root.children().filter(Node::is_element).enumerate() {
            let name = child.tag_name();
            match (name.namespace(), name.name()) {
                (Some(ENVELOPE_NS), "Header") if i == 0 => {
                    headers = child
                        .children()
                        .filter(Node::is_element)
                        .map(header_entry)
                        .collect();
                }
                (Some(ENVELOPE_NS), "Header") => {
                    return Err(EnvelopeError::Structure("the Header must come first"))
                }
                (Some(ENVELOPE_NS), "Body") if body.is_none() => body = Some(child),
                (Some(ENVELOPE_NS), "Body") => {
                    return Err(EnvelopeError::Structure("the Envelope has two Bodies"))
                }
                // Elements after the Body are allowed by SOAP 1.1 (namespace-qualified).
                _ if body.is_some() => {}
                _ => {
                    return Err(EnvelopeError::Structure(
                        "only a Header may come before the Body",
                    ))
                }
            }
        }
        let body = body.ok_or(EnvelopeError::NoBody)?;
        let first = body
            .children()
            .find(Node::is_element)
            .ok_or(EnvelopeError::EmptyBody)?;
        let entry = if first.tag_name().namespace() == Some(ENVELOPE_NS)
            && first.tag_name().name() == "Fault"
        {
            BodyEntry::Fault(fault(first))
        } else {
            BodyEntry::Call(call(first))
        };
        Ok(Envelope {
            headers,
            body: entry,
        })
    }

    /// The method called, unless the Body is a Fault.
    pub fn call(&self) -> Option<&Call> {
        match &self.body {
            BodyEntry::Call(call) => Some(call),
            BodyEntry::Fault(_) => None,
        }
    }

    /// The Fault, if the Body is one.
    pub fn fault(&self) -> Option<&Fault> {
        match &self.body {
            BodyEntry::Fault(fault) => Some(fault),
            BodyEntry::Call(_) => None,
        }
    }

    /// The MustUnderstand fault for the first mandatory header entry meant for this node that
    /// `understood` does not know (by namespace and local name).
    pub fn check_must_understand(
        &self,
        understood: impl Fn(Option<&str>, &str) -> bool,
    ) -> Result<(), Fault> {
        match self.headers.iter().find(|h| {
            h.must_understand
                && h.targets_receiver()
                && !understood(h.namespace.as_deref(), &h.name)
        }) {
            None => Ok(()),
            Some(h) => Err(Fault::new(
                FaultCode::MustUnderstand,
                format!(
                    "header entry {{{}}}{} is mandatory and not understood",
                    h.namespace.as_deref().unwrap_or_default(),
                    h.name
                ),
            )),
        }
    }
}

fn header_entry(node: Node<'_, '_>) -> HeaderEntry {
    let must = node
        .attribute((ENVELOPE_NS, "mustUnderstand"))
        .is_some_and(|v| matches!(v.trim(), "1" | "true"));
    HeaderEntry {
        namespace: node.tag_name().namespace().map(str::to_owned),
        name: node.tag_name().name().to_owned(),
        must_understand: must,
        actor: node.attribute((ENVELOPE_NS, "actor")).map(str::to_owned),
        text: text_of(node),
    }
}

fn call(node: Node<'_, '_>) -> Call {
    let encoding_style = node
        .ancestors()
        .find_map(|n| n.attribute((ENVELOPE_NS, "encodingStyle")))
        .map(str::to_owned);
    let params = node
        .children()
        .filter(Node::is_element)
        .map(|p| Param {
            name: p.tag_name().name().to_owned(),
            text: text_of(p),
            nil: p
                .attributes()
                .any(|a| a.name() == "nil" && matches!(a.value(), "true" | "1")),
        })
        .collect();
    Call {
        namespace: node.tag_name().namespace().map(str::to_owned),
        name: node.tag_name().name().to_owned(),
        params,
        encoding_style,
    }
}

fn fault(node: Node<'_, '_>) -> Fault {
    // faultcode, faultstring, faultactor and detail are unqualified in SOAP 1.1.
    let child = |name: &str| {
        node.children()
            .find(|c| c.is_element() && c.tag_name().name() == name)
    };
    let code = child("faultcode").map_or(FaultCode::Other(String::new()), |c| {
        FaultCode::parse(&text_of(c), c)
    });
    Fault {
        code,
        string: child("faultstring").map(text_of).unwrap_or_default(),
        actor: child("faultactor").map(text_of),
        detail: child("detail").map(text_of),
    }
}

/// All text below `node`, trimmed.
fn text_of(node: Node<'_, '_>) -> String {
    let mut out = String::new();
    for d in node.descendants().filter(Node::is_text) {
        out.push_str(d.text().unwrap_or_default());
    }
    out.trim().to_owned()
}

/// A value in a response: text, or elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Text content.
    Text(String),
    /// Child elements, in order.
    Elements(Vec<(&'static str, Value)>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

const PROLOGUE: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
    "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\" ",
    "SOAP-ENV:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\">",
    "<SOAP-ENV:Body>"
);
const EPILOGUE: &str = "</SOAP-ENV:Body></SOAP-ENV:Envelope>";

/// The envelope answering `method` of `namespace`: `<m:{method}Response>` with `results`.
pub fn response(namespace: &str, method: &str, results: &[(&'static str, Value)]) -> String {
    let mut out = String::with_capacity(512);
    out.push_str(PROLOGUE);
    out.push_str("<m:");
    out.push_str(method);
    out.push_str("Response xmlns:m=\"");
    escape_into(&mut out, namespace);
    out.push_str("\">");
    write_values(&mut out, results);
    let _ = write!(out, "</m:{method}Response>");
    out.push_str(EPILOGUE);
    out
}

/// A request envelope calling `method` of `namespace` with text parameters (for clients).
pub fn request(namespace: &str, method: &str, params: &[(&'static str, Value)]) -> String {
    let mut out = String::with_capacity(512);
    out.push_str(PROLOGUE);
    let _ = write!(out, "<m:{method} xmlns:m=\"");
    escape_into(&mut out, namespace);
    out.push_str("\">");
    write_values(&mut out, params);
    let _ = write!(out, "</m:{method}>");
    out.push_str(EPILOGUE);
    out
}

/// The envelope answering `method` of `namespace` with the fields of a JSON object as elements
/// (objects nest, arrays repeat `item`, null is empty); Err names a field that is not an XML name.
pub fn response_json(
    namespace: &str,
    method: &str,
    results: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, String> {
    let mut out = String::with_capacity(512);
    out.push_str(PROLOGUE);
    let _ = write!(out, "<m:{method}Response xmlns:m=\"");
    escape_into(&mut out, namespace);
    out.push_str("\">");
    write_json(&mut out, results, 0)?;
    let _ = write!(out, "</m:{method}Response>");
    out.push_str(EPILOGUE);
    Ok(out)
}

/// Deepest nesting written from JSON.
const MAX_DEPTH: usize = 16;

fn write_json(
    out: &mut String,
    fields: &serde_json::Map<String, serde_json::Value>,
    depth: usize,
) -> Result<(), String> {
    for (name, value) in fields {
        if !is_xml_name(name) {
            return Err(format!("{name:?} is not an XML element name"));
        }
        write_json_value(out, name, value, depth)?;
    }
    Ok(())
}

fn write_json_value(
    out: &mut String,
    name: &str,
    value: &serde_json::Value,
    depth: usize,
) -> Result<(), String> {
    use serde_json::Value as J;
    if depth > MAX_DEPTH {
        return Err(format!("the result nests deeper than {MAX_DEPTH}"));
    }
    let _ = write!(out, "<{name}>");
    match value {
        J::Null => {}
        J::String(s) => escape_into(out, s),
        J::Bool(_) | J::Number(_) => out.push_str(&value.to_string()),
        J::Object(fields) => write_json(out, fields, depth + 1)?,
        J::Array(items) => {
            for item in items {
                write_json_value(out, "item", item, depth + 1)?;
            }
        }
    }
    let _ = write!(out, "</{name}>");
    Ok(())
}

/// An XML NCName made of ASCII letters, digits, `_`, `-` and `.`, not starting with a digit,
/// `-` or `.` (enough for element names from JSON; no colon: no prefix to declare).
pub fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.to_ascii_lowercase().starts_with("xml")
}

fn write_values(out: &mut String, values: &[(&'static str, Value)]) {
    for (name, value) in values {
        let _ = write!(out, "<{name}>");
        match value {
            Value::Text(text) => escape_into(out, text),
            Value::Elements(children) => write_values(out, children),
        }
        let _ = write!(out, "</{name}>");
    }
}

/// Appends `text` with the XML special characters escaped (and characters XML 1.0 cannot
/// carry dropped).
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
#[path = "envelope_tests.rs"]
mod tests;
