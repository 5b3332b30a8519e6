//! Call (conference) contexts: who is in a call and with what session description. Every change
//! is an event on `/call/{id}`.

use std::sync::Arc;

use restsip_protocol::{Call, CreateCall, EventKind, JoinCall, Participant, UpdateParticipant};
use serde_json::{json, Value};

use crate::bus::{Bus, Topic};
use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::store::{CallRecord, ParticipantRecord, Store};

/// Cheap-clone handle to the call service.
#[derive(Clone)]
pub struct Calls {
    /// Durable calls and participants.
    store: Arc<dyn Store>,
    /// Where changes are announced.
    bus: Bus,
}

/// The API view of a participant.
pub fn participant_view(p: &ParticipantRecord) -> Participant {
    Participant {
        id: p.id,
        url: format!("/call/{}/{}", p.call_id, p.id),
        login: p.login.clone(),
        user: p.user.clone(),
        session: p.session.clone(),
        data: p.data.clone(),
    }
}

impl Calls {
    /// The call service over `store`, announcing on `bus`.
    pub fn new(store: Arc<dyn Store>, bus: Bus) -> Self {
        Self { store, bus }
    }

    /// Creates a call owned by `owner`.
    pub async fn create(&self, owner: &str, req: CreateCall) -> Result<CallRecord> {
        loop {
            let record = CallRecord {
                id: new_call_id(),
                owner: owner.to_owned(),
                subject: req.subject.clone(),
                data: req.data.clone(),
                created: now_ms(),
            };
            match self.store.create_call(&record).await {
                Ok(()) => return Ok(record),
                // A random id collided: draw again.
                Err(crate::store::StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A call with its participants.
    pub async fn view(&self, id: &str) -> Result<Call> {
        let call = self.store.call(id).await?.ok_or_else(|| not_found(id))?;
        let children = self
            .store
            .participants(id)
            .await?
            .iter()
            .map(participant_view)
            .collect();
        Ok(Call {
            url: Topic::Call(call.id.clone()).resource(),
            id: call.id,
            subject: call.subject,
            owner: call.owner,
            data: call.data,
            children,
        })
    }

    /// The state of `/call/{id}` as a stream's `state` event carries it.
    pub async fn state(&self, id: &str) -> Result<Value> {
        Ok(serde_json::to_value(self.view(id).await?).unwrap_or_default())
    }

    /// Deletes a call; only its owner may.
    pub async fn delete(&self, id: &str, user: &str) -> Result<()> {
        let call = self.store.call(id).await?.ok_or_else(|| not_found(id))?;
        if call.owner != user {
            return Err(Error::Forbidden(format!(
                "only {} may delete call {id}",
                call.owner
            )));
        }
        self.store.delete_call(id).await?;
        let data = json!({"id": id, "url": Topic::Call(id.into()).resource(), "reason": "deleted"});
        self.bus
            .publish(&Topic::Call(id.to_owned()), EventKind::Gone, data, None);
        Ok(())
    }

    /// Adds `user` to a call with the login `req.url`, which the caller has checked is theirs and live.
    pub async fn join(&self, id: &str, user: &str, req: JoinCall) -> Result<ParticipantRecord> {
        let record = ParticipantRecord {
            call_id: id.to_owned(),
            id: 0,
            login: req.url,
            user: user.to_owned(),
            session: req.session,
            data: req.data,
        };
        let record = self
            .store
            .add_participant(&record)
            .await?
            .ok_or_else(|| not_found(id))?;
        self.announce(
            id,
            EventKind::Added,
            serde_json::to_value(participant_view(&record)).unwrap_or_default(),
        )
        .await;
        Ok(record)
    }

    /// One participant.
    pub async fn participant(&self, id: &str, pid: i64) -> Result<ParticipantRecord> {
        self.store
            .participant(id, pid)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no participant /call/{id}/{pid}")))
    }

    /// Replaces a participant's session and data; only its user may.
    pub async fn update(
        &self,
        id: &str,
        pid: i64,
        user: &str,
        req: UpdateParticipant,
    ) -> Result<ParticipantRecord> {
        let mut record = self.participant(id, pid).await?;
        if record.user != user {
            return Err(Error::Forbidden(format!(
                "/call/{id}/{pid} belongs to {}",
                record.user
            )));
        }
        record.session = req.session;
        record.data = req.data;
        if !self.store.update_participant(&record).await? {
            return Err(Error::NotFound(format!("no participant /call/{id}/{pid}")));
        }
        self.announce(
            id,
            EventKind::Updated,
            serde_json::to_value(participant_view(&record)).unwrap_or_default(),
        )
        .await;
        Ok(record)
    }

    /// Removes a participant; its user or the call's owner may.
    pub async fn leave(&self, id: &str, pid: i64, user: &str) -> Result<()> {
        let record = self.participant(id, pid).await?;
        if record.user != user {
            let owner = self.store.call(id).await?.map(|c| c.owner);
            if owner.as_deref() != Some(user) {
                return Err(Error::Forbidden(format!(
                    "/call/{id}/{pid} belongs to {}",
                    record.user
                )));
            }
        }
        if let Some(gone) = self.store.remove_participant(id, pid).await? {
            self.announce_removed(&gone, "left").await;
        }
        Ok(())
    }

    /// Removes the participants that joined with any of `logins` (which went away).
    pub async fn leave_logins(&self, logins: &[String], reason: &str) -> Result<()> {
        for gone in self.store.remove_participants_of(logins).await? {
            self.announce_removed(&gone, reason).await;
        }
        Ok(())
    }

    async fn announce_removed(&self, gone: &ParticipantRecord, reason: &str) {
        let mut item = serde_json::to_value(participant_view(gone)).unwrap_or_default();
        item["reason"] = json!(reason);
        self.announce(&gone.call_id, EventKind::Removed, item).await;
    }

    async fn announce(&self, id: &str, kind: EventKind, item: Value) {
        let state = self.state(id).await.ok();
        self.bus
            .publish(&Topic::Call(id.to_owned()), kind, item, state);
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("no call /call/{id}"))
}

/// 12 random lowercase hex digits: short enough to read out, hard to guess.
fn new_call_id() -> String {
    let bytes: [u8; 6] = rand::random();
    hex::encode(bytes)
}
