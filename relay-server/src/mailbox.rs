//! Offline messages left in a user's mailbox, within its caps: most messages, most bytes and
//! most messages from one sender (`--max-mailbox-*`), so that a flood of LeaveMessage requests
//! or POSTs neither fills the disk nor crowds out other senders. REST, SOAP and missed calls
//! all leave their messages here.

use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::store::{MailCaps, MailRecord, Store};

/// The mailbox caps the limits set.
pub fn caps(limits: &Limits) -> MailCaps {
    MailCaps {
        messages: limits.max_mailbox_messages,
        bytes: limits.max_mailbox_bytes,
        per_sender: limits.max_mailbox_per_sender,
    }
}

/// Leaves `mail` in its owner's mailbox; [`Error::MailboxFull`] naming the cap it would pass.
pub async fn leave(store: &dyn Store, limits: &Limits, mail: &MailRecord) -> Result<MailRecord> {
    let caps = caps(limits);
    match store.add_mail_within(mail, &caps).await? {
        Ok(stored) => Ok(stored),
        Err(full) => {
            let why = if full.messages >= caps.messages {
                format!("holds {} messages, the most it takes", full.messages)
            } else if full.from_sender >= caps.per_sender {
                format!(
                    "holds {} messages from {}, the most it takes from one sender",
                    full.from_sender, mail.sender
                )
            } else {
                format!(
                    "holds {} bytes; this message's {} would pass the most it takes, {}",
                    full.bytes, full.size, caps.bytes
                )
            };
            tracing::info!(owner = %mail.owner, sender = %mail.sender, %why, "mailbox full");
            Err(Error::MailboxFull(format!(
                "the mailbox of {} is full: it {why}",
                mail.owner
            )))
        }
    }
}
