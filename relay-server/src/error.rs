//! The errors of the relay's operations, independent of the protocol that asked (REST now, SIP
//! later); each front end maps them to its own status codes.

use crate::store::StoreError;

/// Why an operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named user, login, call or message does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this to someone else's resource.
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// A value in the request is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// A target the relay may not reach for users (see `crate::egress`).
    #[error("{0}")]
    ForbiddenTarget(String),
    /// A configured limit was reached.
    #[error("{0}")]
    Limit(String),
    /// A user's mailbox is past one of its caps.
    #[error("{0}")]
    MailboxFull(String),
    /// A call between a browser and a phone needs the media relay, which is not configured
    /// or failed.
    #[error("{0}")]
    MediaRelay(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Password hashing failed or another internal step broke.
    #[error("{0}")]
    Internal(String),
}

/// Result of a relay operation.
pub type Result<T> = std::result::Result<T, Error>;
