//! One function per client event. Each validates what the store cannot, runs one store
//! operation, then emits what that operation returned.

use std::{sync::Arc, time::Duration};

use serde::de::DeserializeOwned;
use socketioxide::{
    adapter::Adapter,
    extract::{SocketRef, TryData},
    handler::{FromMessageParts, Value},
    operators::BroadcastOperators,
    socket::Socket,
};

use super::{rooms, tell::Tell};
use crate::{
    logging::{ConnTag, SessionTag},
    protocol::{
        AckBody, AppError, ClientEvent, DeliveredNotice, DownloadNotification, Empty, ErrorCode,
        EventKind, FileDownloaded, JoinAck, JoinSession, LinkReset, MemberNamed, MemberRemoved,
        MessageDelivered, ObjectOnly, PayloadSource, Recipient, RemoveMember, ResetLink,
        SavePublicKey, SendAck, SendMessage, SessionClosed, SessionId, SessionKeyAvailable,
        SessionMetadata, SessionUser, SetSessionKey, UserJoined, UserLeft,
        attachments::{Attachments, WithAttachments},
        delivery::{self, OwnMessages, Relayed},
        limits, now_ms, parse_credential_field,
    },
    state::AppState,
    store::{Appended, JoinRequest, Left, MessageDraft},
};

/// The sessions this socket has joined, for its disconnect.
#[derive(Default)]
pub struct Memberships(Vec<SessionId>);

impl Memberships {
    fn add(&mut self, id: &SessionId) {
        if !self.0.contains(id) {
            self.0.push(id.clone());
        }
    }

    fn remove(&mut self, id: &SessionId) {
        self.0.retain(|s| s != id);
    }
}

/// Decodes an event's payload; a payload of the wrong shape is `BAD_REQUEST`.
pub fn decode<A: Adapter>(
    kind: EventKind,
    s: &Arc<Socket<A>>,
    data: &mut Value,
    ack_id: &Option<i64>,
) -> Result<ClientEvent, AppError> {
    let mut event = ClientEvent::decode(kind, &mut Packet { s, data, ack_id })?;
    match &mut event {
        ClientEvent::JoinSession(p) => p.acked = ack_id.is_some(),
        ClientEvent::SendMessage(p) => {
            if let Value::Str(_, Some(bins)) = data {
                let bins: Vec<_> = bins.iter().cloned().collect();
                let (encrypted, attachments) = Attachments::of(p.encrypted.clone(), &bins)
                    .map_err(|e| AppError::bad_request(format!("encrypted: {e}")))?;
                (p.encrypted, p.attachments) = (encrypted, attachments);
                if let Some(plain) = p.original_content.take() {
                    let (plain, attachments) = Attachments::of(plain, &bins)
                        .map_err(|e| AppError::bad_request(format!("originalContent: {e}")))?;
                    (p.original_content, p.original_attachments) = (Some(plain), attachments);
                }
            }
        }
        _ => {}
    }
    Ok(event)
}

/// An event's data as socketioxide hands it over: its payload must be one object.
struct Packet<'a, A: Adapter> {
    s: &'a Arc<Socket<A>>,
    data: &'a mut Value,
    ack_id: &'a Option<i64>,
}

impl<A: Adapter> PayloadSource for Packet<'_, A> {
    fn payload<T: DeserializeOwned>(&mut self) -> Result<T, AppError> {
        let Ok(TryData(result)) =
            TryData::<ObjectOnly<T>>::from_message_parts(self.s, self.data, self.ack_id);
        result
            .map(|ObjectOnly(payload)| payload)
            .map_err(|e| AppError::bad_request(format!("Invalid payload: {e}")))
    }
}

pub async fn handle<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    joined: &mut Memberships,
    event: ClientEvent,
) -> Result<AckBody, AppError> {
    match event {
        ClientEvent::JoinSession(p) => join(state, socket, joined, p).await,
        ClientEvent::SavePublicKey(p) => save_public_key(state, socket, p).await,
        ClientEvent::GetPublicKeys(p) => get_public_keys(state, socket, p).await,
        ClientEvent::SendMessage(p) => send_message(state, socket, p).await,
        ClientEvent::SetSessionKey(p) => set_session_key(state, socket, p).await,
        ClientEvent::Typing(p) => typing(state, socket, p, "user-typing").await,
        ClientEvent::StoppedTyping(p) => typing(state, socket, p, "user-stopped-typing").await,
        ClientEvent::FileDownloaded(p) => file_downloaded(state, socket, p).await,
        ClientEvent::LeaveSession(p) => leave(state, socket, joined, p).await,
        ClientEvent::CloseSession(p) => close(state, socket, joined, p).await,
        ClientEvent::RemoveMember(p) => remove_member(state, socket, p).await,
        ClientEvent::ResetLink(p) => reset_link(state, socket, p).await,
        ClientEvent::MessageDelivered(p) => message_delivered(state, socket, p).await,
    }
}

fn ok() -> Result<AckBody, AppError> {
    Ok(AckBody::Empty(Empty {}))
}

fn check_public_key(key: Option<&serde_json::value::RawValue>) -> Result<(), AppError> {
    match key {
        Some(k) if k.get().len() > limits::PUBLIC_KEY_BYTES => {
            Err(AppError::too_large("publicKey", limits::PUBLIC_KEY_BYTES))
        }
        _ => Ok(()),
    }
}

async fn join<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    joined: &mut Memberships,
    p: JoinSession,
) -> Result<AckBody, AppError> {
    check_public_key(p.public_key.as_deref())?;
    // An explicit authKey wins over the one carried in sessionId.
    let credential = match p.auth_key.filter(|k| !k.is_empty()) {
        Some(k) => Some(parse_credential_field(&k).map_err(AppError::bad_request)?),
        None => p.session_id.credential,
    };
    let resume = match p.resume_token.filter(|t| !t.is_empty()) {
        Some(t) => Some(parse_credential_field(&t).map_err(AppError::bad_request)?),
        None => None,
    };
    let session = p.session_id.id;
    let user = p.user_id;
    let p_public_key_given = p.public_key.is_some();
    let request = JoinRequest {
        session: session.clone(),
        user: user.clone(),
        display_name: p.display_name,
        public_key: p.public_key,
        is_creator: p.is_creator.unwrap_or(false),
        credential,
        chat_mode: p.chat_mode,
        resume,
        acked: p.acked,
        conn: socket.id,
    };
    let done = join_when_free(state, socket, request).await?;
    socket.join(vec![
        rooms::session(&session),
        rooms::member(&session, &user),
    ]);
    joined.add(&session);
    tracing::info!(socket = %ConnTag::of(socket.id), session = %SessionTag::of(&session), new_member = done.new_member, "joined");
    let tell = Tell::new(socket, &session);
    metrics::counter!(crate::telemetry::JOINS_TOTAL, "mode" => done.mode.as_str()).increment(1);

    if done.key_changed {
        let notice = MemberNamed {
            user_id: &user,
            display_name: &done.display_name,
        };
        tell.others("public-key-changed", &notice).await;
    }
    if done.new_member {
        let notice = UserJoined {
            user_id: &user,
            display_name: &done.display_name,
            timestamp: now_ms(),
        };
        tell.others("user-joined", &notice).await;
    }
    // A member back on a new connection without a new key is the app's reconnect: it
    // kept its own messages, which a history entry would replace with a text-less copy.
    let own = if p_public_key_given || done.repeat {
        OwnMessages::Placeholder
    } else {
        OwnMessages::Omit
    };
    let history = done.history.for_reader(&user, own);
    if !super::replay::send_history(state, socket, &history, done.history.bytes()).await {
        // The socket was disconnected, so no ack reaches it: the join stands, and the
        // client's reconnect joins again.
        return Err(AppError::new(
            ErrorCode::RateLimited,
            "The history could not be sent; reconnect to receive it",
        ));
    }
    drop(history);
    let key = done.group_key.as_deref();
    let metadata = SessionMetadata {
        chat_mode: done.mode,
        encrypted_session_key: key,
        session_key: key,
    };
    tell.me("session-metadata", &metadata);
    tell.everyone("public-keys-updated", &done.keys).await;
    Ok(AckBody::Joined(JoinAck {
        session_id: session.to_string(),
        user_id: user,
        chat_mode: done.mode,
        is_creator: done.is_creator,
        resume_token: done.resume_token,
        created: done.created,
        restored: done.restored,
    }))
}

/// How often a join without a resume token looks whether the member's other connection
/// is gone (it waits a heartbeat at most, see [`join_when_free`]).
const TAKEOVER_POLL: Duration = Duration::from_millis(250);

/// Joins; a tokenless join naming a member that holds no token (one made by a join
/// without an ack, as the End2End Chat app's) and is present on another connection waits
/// until that connection is gone (a dead one is dropped within a heartbeat) and is refused
/// if it is still there: a stranger cannot take a present member's place. A member that
/// holds a token is refused at once without it (`store/resume.rs`): no wait.
async fn join_when_free<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    request: JoinRequest,
) -> Result<crate::store::Joined, AppError> {
    // A dead connection is dropped within a heartbeat; a little more for the drop to land.
    let config = &state.config;
    let wait = config.ping_interval + config.ping_timeout + Duration::from_secs(2);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match state.store.join(request.clone()).await {
            Err(e) if e.error == ErrorCode::MemberPresent => {
                if tokio::time::Instant::now() >= deadline || !socket.connected() {
                    return Err(AppError::forbidden(
                        "This person is already in the room on another connection. Close the other tab or window, or wait a moment and try again.",
                    ));
                }
                tokio::time::sleep(TAKEOVER_POLL).await;
            }
            result => return result,
        }
    }
}

async fn save_public_key<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    p: SavePublicKey,
) -> Result<AckBody, AppError> {
    check_public_key(Some(&p.public_key))?;
    let session = p.session_id.id;
    let keys = state
        .store
        .save_public_key(
            &session,
            socket.id,
            p.user_id.as_ref(),
            p.public_key,
            // The name stays the one the member joined with (see `SavePublicKey`).
            None,
        )
        .await?;
    Tell::new(socket, &session)
        .everyone("public-keys-updated", &keys)
        .await;
    ok()
}

async fn get_public_keys<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    p: SessionUser,
) -> Result<AckBody, AppError> {
    let keys = state
        .store
        .peer_keys(&p.session_id.id, socket.id, p.user_id.as_ref())
        .await?;
    let _ = socket.emit("public-keys-updated", &keys);
    Ok(AckBody::Keys { keys })
}

fn message_id(state: &AppState, client_id: Option<String>) -> Result<Arc<str>, AppError> {
    match client_id {
        None => Ok(state.next_message_id()),
        Some(id) => check_message_id(&id).map(|()| id.into()),
    }
}

/// A message id a client chose: 1-128 bytes, no control characters.
fn check_message_id(id: &str) -> Result<(), AppError> {
    if id.is_empty() || id.len() > limits::CLIENT_MESSAGE_ID_BYTES {
        return Err(AppError::bad_request(format!(
            "clientMessageId must be 1-{} bytes",
            limits::CLIENT_MESSAGE_ID_BYTES
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(AppError::bad_request(
            "clientMessageId must not hold control characters",
        ));
    }
    Ok(())
}

async fn send_message<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    p: SendMessage,
) -> Result<AckBody, AppError> {
    let kind: Arc<str> = match p.kind {
        None => "text".into(),
        Some(k) if k.is_empty() || k.len() > limits::MESSAGE_TYPE_BYTES => {
            return Err(AppError::bad_request(format!(
                "type must be 1-{} bytes",
                limits::MESSAGE_TYPE_BYTES
            )));
        }
        Some(k) => k.into(),
    };
    let id = message_id(state, p.client_message_id)?;
    let session = p.session_id.id;
    let draft = MessageDraft {
        id: id.clone(),
        to: p.to,
        encrypted: p.encrypted,
        attachments: p.attachments,
        kind,
        timestamp: now_ms(),
    };
    let published = state.store.publishes(&draft);
    let appended = state
        .store
        .append_message(&session, socket.id, p.from.as_ref(), draft)
        .await?;
    let (message, first_of_id) = match appended {
        Appended::Duplicate { timestamp } => {
            return Ok(AckBody::Sent(SendAck {
                id,
                timestamp,
                duplicate: true,
            }));
        }
        Appended::Stored {
            message,
            first_of_id,
        } => (message, first_of_id),
    };
    // Serialised once: the relay and the sender's confirmation reuse the same text.
    let wire = match message.attachments.is_empty() {
        true => Some(
            serde_json::value::to_raw_value(&*message)
                .map_err(|_| AppError::bad_request("message cannot be encoded"))?,
        ),
        false => None,
    };
    let to_you = delivery::to_you_json();
    let relayed = |content| Relayed::new(&message, wire.as_deref(), content);
    // The store's script published it to the other nodes (crate::bus) with the same
    // step that stored it: this node's sockets remain. Otherwise the adapter relays it
    // everywhere, and if that fails, the ack says so (an acked message reached every node).
    let only_here = |ops: BroadcastOperators<A>| match published {
        true => ops.local(),
        false => ops,
    };
    let relay = match &message.to {
        None | Some(Recipient::All) => {
            only_here(socket.to(rooms::session(&session)))
                .emit("new-message", &relayed(None))
                .await
        }
        Some(Recipient::User(to)) => {
            let to_you = WithAttachments {
                json: &to_you,
                attachments: &[],
            };
            only_here(socket.within(rooms::member(&session, to)))
                .emit("new-message", &relayed(Some(to_you)))
                .await
        }
    };
    if first_of_id {
        let plain = p.original_content.as_deref().map(|json| WithAttachments {
            json,
            attachments: p.original_attachments.as_slice(),
        });
        let _ = socket.emit("message-sent", &relayed(plain));
    }
    // A local socket that cannot take it (a full buffer) is its own problem: it is
    // cut off, and reads the message in the history when it joins again.
    if let Err(socketioxide::BroadcastError::Adapter(e)) = relay {
        tracing::warn!(error = %e, "a message was stored but not published to the other nodes");
        return Err(AppError::not_relayed());
    }
    crate::telemetry::message_relayed(message.encrypted.get().len());
    Ok(AckBody::Sent(SendAck {
        id,
        timestamp: message.timestamp,
        duplicate: false,
    }))
}

async fn set_session_key<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    p: SetSessionKey,
) -> Result<AckBody, AppError> {
    if p.encrypted_keys.len() > limits::GROUP_KEYS {
        return Err(AppError::new(
            crate::protocol::ErrorCode::PayloadTooLarge,
            format!(
                "encryptedKeys holds more than {} entries",
                limits::GROUP_KEYS
            ),
        ));
    }
    if p.encrypted_keys
        .values()
        .any(|k| k.get().len() > limits::GROUP_KEY_BYTES)
    {
        return Err(AppError::too_large(
            "An encrypted group key",
            limits::GROUP_KEY_BYTES,
        ));
    }
    let session = p.session_id.id;
    state
        .store
        .set_group_keys(&session, socket.id, &p.encrypted_keys)
        .await?;
    let notice = SessionKeyAvailable {
        encrypted_keys: &p.encrypted_keys,
    };
    Tell::new(socket, &session)
        .everyone("session-key-available", &notice)
        .await;
    ok()
}

async fn typing<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    p: SessionUser,
    event: &'static str,
) -> Result<AckBody, AppError> {
    let session = p.session_id.id;
    let (user, name) = state
        .store
        .member(&session, socket.id, p.user_id.as_ref())
        .await?;
    let notice = MemberNamed {
        user_id: &user,
        display_name: &name,
    };
    Tell::new(socket, &session).others(event, &notice).await;
    ok()
}

async fn file_downloaded<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    p: FileDownloaded,
) -> Result<AckBody, AppError> {
    if p.file_name.len() > limits::FILE_NAME_BYTES {
        return Err(AppError::too_large("fileName", limits::FILE_NAME_BYTES));
    }
    let session = p.session_id.id;
    let (user, name) = state.store.member(&session, socket.id, None).await?;
    let downloaded_by = match name.as_str() {
        "" => user.as_str(),
        name => name,
    };
    let file_name = crate::protocol::clean_file_name(&p.file_name);
    let notice = DownloadNotification {
        downloaded_by,
        user_id: &user,
        file_name: &file_name,
        timestamp: p
            .timestamp
            .filter(|t| t.is_finite())
            .unwrap_or(now_ms() as f64),
    };
    Tell::new(socket, &session)
        .member(&p.sender_id, "download-notification", &notice)
        .await;
    ok()
}

/// Message ids one `message-delivered` may name (a page batches what arrived together).
const DELIVERED_IDS_MAX: usize = 64;

/// `message-delivered`: a member's page tells the sender which of its messages arrived.
/// The server cannot see what a page did, but it checks what it knows: only ids of
/// messages `senderId` sent that reached this member (addressed to it or to everyone) are
/// relayed, the others dropped (`UNKNOWN_MESSAGE` when none is left, which also says
/// nothing about messages between others). One receipt is at most one event to each of
/// the sender's sockets in this session, and never to the claimant's own.
async fn message_delivered<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    p: MessageDelivered,
) -> Result<AckBody, AppError> {
    if p.ids.is_empty() || p.ids.len() > DELIVERED_IDS_MAX {
        return Err(AppError::bad_request(format!(
            "ids must hold 1-{DELIVERED_IDS_MAX} message ids"
        )));
    }
    for id in &p.ids {
        check_message_id(id)?;
    }
    let session = p.session_id.id;
    let (user, ids) = state
        .store
        .receipt(&session, socket.id, &p.sender_id, &p.ids)
        .await?;
    if ids.is_empty() {
        return Err(AppError::new(
            ErrorCode::UnknownMessage,
            "None of these ids is a message of that member that reached you",
        ));
    }
    let notice = DeliveredNotice {
        ids: &ids,
        user_id: &user,
        timestamp: now_ms(),
    };
    Tell::new(socket, &session)
        .member(&p.sender_id, "message-delivered", &notice)
        .await;
    Ok(AckBody::Delivered { relayed: ids })
}

/// Tells the others that a member left, when its last connection did. `to_room`
/// addresses the session's room: from the leaving socket (which is then left out), or
/// from the server when a dead node's members are swept.
pub async fn announce_left<A: Adapter>(
    to_room: impl Fn(String) -> BroadcastOperators<A>,
    session: &SessionId,
    left: &Left,
) {
    if !left.member_gone || left.session_deleted {
        return;
    }
    let notice = UserLeft {
        user_id: &left.user,
        timestamp: now_ms(),
    };
    let _ = to_room(rooms::session(session))
        .emit("user-left", &notice)
        .await;
    let _ = to_room(rooms::session(session))
        .emit("public-keys-updated", &left.keys)
        .await;
}

async fn leave<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    joined: &mut Memberships,
    p: SessionUser,
) -> Result<AckBody, AppError> {
    let session = p.session_id.id;
    let left = state
        .store
        .leave(&session, socket.id, p.user_id.as_ref())
        .await?;
    socket.leave(vec![
        rooms::session(&session),
        rooms::member(&session, &left.user),
    ]);
    joined.remove(&session);
    tracing::info!(socket = %ConnTag::of(socket.id), session = %SessionTag::of(&session), deleted = left.session_deleted, "left");
    announce_left(|room| socket.to(room), &session, &left).await;
    ok()
}

async fn close<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    joined: &mut Memberships,
    p: SessionUser,
) -> Result<AckBody, AppError> {
    let session = p.session_id.id;
    let members = state.store.close(&session, socket.id).await?;
    joined.remove(&session);
    let notice = SessionClosed {
        session_id: session.as_str(),
        timestamp: now_ms(),
    };
    let tell = Tell::new(socket, &session);
    tell.everyone("session-closed", &notice).await;
    tell.unbind_everyone(&members).await;
    tell.log("closed");
    ok()
}

/// `remove-member`: the room (the removed member included) is told, then the removed
/// member's sockets, on any node, leave the room.
async fn remove_member<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    p: RemoveMember,
) -> Result<AckBody, AppError> {
    let session = p.session_id.id;
    let removed = state
        .store
        .remove_member(&session, socket.id, &p.user_id)
        .await?;
    let notice = MemberRemoved {
        user_id: &p.user_id,
        display_name: &removed.display_name,
        timestamp: now_ms(),
    };
    let tell = Tell::new(socket, &session);
    tell.everyone("member-removed", &notice).await;
    tell.unbind_member(&p.user_id).await;
    tell.everyone("public-keys-updated", &removed.keys).await;
    tell.log("member removed");
    ok()
}

/// `reset-link`: joins need the new credential from now on (members present keep
/// theirs through their resume tokens).
async fn reset_link<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    p: ResetLink,
) -> Result<AckBody, AppError> {
    if p.auth_key.is_empty() {
        return Err(AppError::bad_request("authKey: the new key is missing"));
    }
    let key = parse_credential_field(&p.auth_key).map_err(AppError::bad_request)?;
    let session = p.session_id.id;
    state.store.reset_key(&session, socket.id, key).await?;
    let notice = LinkReset {
        timestamp: now_ms(),
    };
    let tell = Tell::new(socket, &session);
    tell.everyone("link-reset", &notice).await;
    tell.log("link reset");
    ok()
}

/// Sends the socket its sessions' keys and history again (see [`super::resync_all`]).
pub async fn resync<A: Adapter>(state: &AppState, socket: &SocketRef<A>, joined: &Memberships) {
    for session in &joined.0 {
        match state.store.resync(session, socket.id).await {
            Ok(Some((user, keys, history))) => {
                let bytes = history.bytes();
                let history = history.for_reader(&user, OwnMessages::Omit);
                if !super::replay::send_history(state, socket, &history, bytes).await {
                    return;
                }
                let _ = socket.emit("public-keys-updated", &keys);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::info!(socket = %ConnTag::of(socket.id), session = %SessionTag::of(session), error = e.error.as_str(), "resync failed")
            }
        }
    }
}

/// How long a disconnect that could not be recorded is retried.
const DISCONNECT_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(600);

async fn retry_disconnect<A: Adapter>(state: AppState, socket: SocketRef<A>, session: SessionId) {
    let started = std::time::Instant::now();
    let mut wait = std::time::Duration::from_millis(500);
    while started.elapsed() < DISCONNECT_RETRY_FOR {
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_secs(10));
        match state.store.disconnect(&session, socket.id).await {
            Ok(Some(left)) => return announce_departure(&state, &socket, session, left),
            Ok(None) => return,
            Err(_) => {}
        }
    }
    tracing::warn!(socket = %ConnTag::of(socket.id), session = %SessionTag::of(&session), "gave up recording a disconnect");
}

/// After a disconnect: `user-left` and the key list, unless the member is back within
/// `PRESENCE_GRACE_SECS` (a blip, a reload: nobody sees it leave and return).
fn announce_departure<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    session: SessionId,
    left: Left,
) {
    if !left.member_gone || left.session_deleted {
        return;
    }
    let (state, socket) = (state.clone(), socket.clone());
    tokio::spawn(async move {
        tokio::time::sleep(state.config.presence_grace).await;
        let keys = match state.store.departed(&session, &left.user).await {
            Ok(Some(keys)) => keys,
            Ok(None) => return,
            // Redis out of reach: tell what was true at the disconnect.
            Err(_) => left.keys.clone(),
        };
        let left = Left { keys, ..left };
        announce_left(|room| socket.to(room), &session, &left).await;
    });
}

/// The socket is gone: it leaves every session it joined.
pub async fn disconnect<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    joined: &mut Memberships,
) {
    for session in std::mem::take(&mut joined.0) {
        match state.store.disconnect(&session, socket.id).await {
            Ok(Some(left)) => announce_departure(state, socket, session, left),
            Ok(None) => {}
            // Redis is out of reach: retried in the background, so the member does not
            // stay present in the others' view once it returns.
            Err(_) => {
                tokio::spawn(retry_disconnect(state.clone(), socket.clone(), session));
            }
        }
    }
    // Rooms joined by an event handled after the transport closed would otherwise stay.
    socket.leave_all();
}
