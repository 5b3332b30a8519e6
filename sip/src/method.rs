//! The request method: an open token, so extension methods parse like the standard ones.

use std::borrow::Cow;
use std::fmt;

use super::scan::is_token;

/// A request method: any RFC 3261 `token`, so extension methods (SERVICE, or one the relay has
/// never heard of) parse like the standard ones. Methods are case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Method(Cow<'static, str>);

impl Method {
    /// INVITE.
    pub const INVITE: Method = Method(Cow::Borrowed("INVITE"));
    /// ACK.
    pub const ACK: Method = Method(Cow::Borrowed("ACK"));
    /// BYE.
    pub const BYE: Method = Method(Cow::Borrowed("BYE"));
    /// CANCEL.
    pub const CANCEL: Method = Method(Cow::Borrowed("CANCEL"));
    /// REGISTER.
    pub const REGISTER: Method = Method(Cow::Borrowed("REGISTER"));
    /// OPTIONS.
    pub const OPTIONS: Method = Method(Cow::Borrowed("OPTIONS"));
    /// MESSAGE (RFC 3428).
    pub const MESSAGE: Method = Method(Cow::Borrowed("MESSAGE"));
    /// SUBSCRIBE (RFC 6665).
    pub const SUBSCRIBE: Method = Method(Cow::Borrowed("SUBSCRIBE"));
    /// NOTIFY (RFC 6665).
    pub const NOTIFY: Method = Method(Cow::Borrowed("NOTIFY"));
    /// SERVICE (draft-deason-sip-soap).
    pub const SERVICE: Method = Method(Cow::Borrowed("SERVICE"));
    /// INFO (RFC 6086).
    pub const INFO: Method = Method(Cow::Borrowed("INFO"));
    /// PRACK (RFC 3262).
    pub const PRACK: Method = Method(Cow::Borrowed("PRACK"));
    /// UPDATE (RFC 3311).
    pub const UPDATE: Method = Method(Cow::Borrowed("UPDATE"));
    /// REFER (RFC 3515).
    pub const REFER: Method = Method(Cow::Borrowed("REFER"));
    /// PUBLISH (RFC 3903).
    pub const PUBLISH: Method = Method(Cow::Borrowed("PUBLISH"));

    const KNOWN: [Method; 15] = [
        Self::INVITE,
        Self::ACK,
        Self::BYE,
        Self::CANCEL,
        Self::REGISTER,
        Self::OPTIONS,
        Self::MESSAGE,
        Self::SUBSCRIBE,
        Self::NOTIFY,
        Self::SERVICE,
        Self::INFO,
        Self::PRACK,
        Self::UPDATE,
        Self::REFER,
        Self::PUBLISH,
    ];

    /// The method named by `token`, or None if it is not a token.
    pub fn new(token: &str) -> Option<Method> {
        if let Some(known) = Self::KNOWN.iter().find(|m| m.0 == token) {
            return Some(known.clone());
        }
        is_token(token).then(|| Method(Cow::Owned(token.to_owned())))
    }

    /// True for the methods of RFC 3261 and the standard extensions named here (as opposed to
    /// a token nobody has defined).
    pub fn is_standard(&self) -> bool {
        Self::KNOWN.contains(self)
    }

    /// The token of a standard method, for labels that must stay few (statistics); None
    /// for any other token.
    pub fn static_name(&self) -> Option<&'static str> {
        match &self.0 {
            Cow::Borrowed(name) => Some(name),
            Cow::Owned(_) => None,
        }
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
