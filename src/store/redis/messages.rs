//! Messages: one script stores, trims, accounts and publishes each (see `crate::bus`);
//! what a member may read of a history.

use super::*;

impl RedisStore {
    pub async fn append_message(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed_from: Option<&UserId>,
        draft: MessageDraft,
    ) -> Result<Appended, AppError> {
        // The JSON up to its last field; the script adds the sender and its name.
        let mut head = serde_json::to_string(&DraftFields(&draft))
            .map_err(|_| AppError::bad_request("message cannot be encoded"))?;
        head.pop(); // the closing brace
        // The in-memory cost, less the sender id, which only the script knows.
        let cost = draft.encrypted.get().len()
            + draft.attachments.len_bytes()
            + draft.id.len()
            + draft.kind.len()
            + crate::store::history::MESSAGE_OVERHEAD;
        let conn = self.digests.conn(id.as_str(), conn);
        let claimed = claimed_from.map_or("", UserId::as_str);
        let (cost, max_messages, max_bytes, timestamp, now, budget) = (
            cost.to_string(),
            self.limits.history_max_messages.to_string(),
            self.limits.history_max_bytes.to_string(),
            draft.timestamp.to_string(),
            now_ms().to_string(),
            self.limits.history_total_max_bytes.to_string(),
        );
        let relay: &[u8] = if self.publishes(&draft) { b"1" } else { b"0" };
        let to_you = crate::protocol::delivery::to_you_json();
        let node = self.channels.as_ref().map_or("", |b| b.node());
        let grain = account_grain(&self.limits).to_string();
        let (park_over, park_ms) = (
            crate::bus::PARK_OVER_BYTES.to_string(),
            crate::bus::PARKED_FOR.as_millis().to_string(),
        );
        let args: [&[u8]; 17] = [
            conn.as_bytes(),
            claimed.as_bytes(),
            draft.id.as_bytes(),
            recipient_key(&draft.to).as_bytes(),
            head.as_bytes(),
            cost.as_bytes(),
            max_messages.as_bytes(),
            max_bytes.as_bytes(),
            timestamp.as_bytes(),
            now.as_bytes(),
            budget.as_bytes(),
            relay,
            to_you.get().as_bytes(),
            node.as_bytes(),
            grain.as_bytes(),
            park_over.as_bytes(),
            park_ms.as_bytes(),
        ];
        let mut r = Reply::new(self.run(&self.scripts.append, id.as_str(), &args).await?)?;
        match r.status() {
            "OK" => {}
            "DUPLICATE" => {
                let timestamp = r.string()?.parse().unwrap_or_default();
                return Ok(Appended::Duplicate { timestamp });
            }
            code => return Err(refusal(code, &self.limits)),
        }
        let from = r.user()?;
        let name = r.display_name()?;
        let first_of_id = r.int()? == 1;
        let evicted = r.int()?;
        if evicted > 0 {
            metrics::counter!(crate::telemetry::HISTORY_EVICTED_TOTAL).increment(evicted as u64);
        }
        Ok(Appended::Stored {
            message: Arc::new(draft.into_message(&from, &name)),
            first_of_id,
        })
    }
}

/// The recipient as the history header writes it.
fn recipient_key(to: &Option<Recipient>) -> &str {
    match to {
        None => "",
        Some(Recipient::All) => "all",
        Some(Recipient::User(u)) => u.as_str(),
    }
}

/// The fields of a message its sender chose, serialised in the relay's field names.
struct DraftFields<'a>(&'a MessageDraft);

impl serde::Serialize for DraftFields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let d = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", &d.id)?;
        if let Some(to) = &d.to {
            map.serialize_entry("to", to)?;
        }
        map.serialize_entry("encrypted", &d.encrypted)?;
        if !d.attachments.is_empty() {
            let stored = attachments::stored::encode(d.attachments.as_slice());
            map.serialize_entry(attachments::stored::KEY, &stored)?;
        }
        map.serialize_entry("timestamp", &d.timestamp)?;
        map.serialize_entry("type", &d.kind)?;
        map.end()
    }
}

/// The history entries `user` may read: to everyone, to it, or from it.
pub(super) fn visible_history(
    rows: impl Iterator<Item = Row>,
    user: &UserId,
) -> Result<Vec<RawMessage>, AppError> {
    let mut out = Vec::new();
    for row in rows {
        let entry = row.into_string()?;
        let mut parts = entry.splitn(5, '\n');
        let (_cost, _id, from, to, json) = (
            parts.next(),
            parts.next(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        if to.is_empty() || to == "all" || to == user.as_str() || from == user.as_str() {
            out.push(RawMessage {
                from: from.to_owned(),
                to: to.to_owned(),
                json: RawValue::from_string(json.to_owned())
                    .map_err(|_| AppError::unavailable())?,
            });
        }
    }
    Ok(out)
}
