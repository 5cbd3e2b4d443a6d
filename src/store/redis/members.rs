//! Sessions and their members: reserve, join, keys, leave, close, the creator's
//! powers, and the connections each node lists under its lease.

use super::*;

/// How many absent members a session remembers (as in memory).
const MAX_ABSENT_MEMBERS: usize = 64;

impl RedisStore {
    pub async fn reserve(
        &self,
        id: &SessionId,
        key: &Secret,
        mode: ChatMode,
    ) -> Result<(), ReserveError> {
        let digest = |s: &str| self.digests.digest(id.as_str(), s);
        let (kh, ph) = (digest(key.expose()), digest(key.password_part()));
        let (now, ttl) = (
            now_ms().to_string(),
            ms(self.limits.session_ttl).to_string(),
        );
        let max = self.limits.max_sessions.to_string();
        let unused_ttl = ms(self.limits.unused_session_ttl).to_string();
        let args: [&[u8]; 7] = [
            kh.as_bytes(),
            ph.as_bytes(),
            mode.as_str().as_bytes(),
            now.as_bytes(),
            ttl.as_bytes(),
            max.as_bytes(),
            unused_ttl.as_bytes(),
        ];
        let reply = self
            .run_creating(&self.scripts.reserve, id.as_str(), &args, true)
            .await
            .map_err(|_| ReserveError::Unavailable)?;
        match Reply::new(reply).map(|r| r.status().to_owned()).as_deref() {
            Ok("OK") => Ok(()),
            Ok("EXISTS") => Err(ReserveError::Exists),
            Ok("LIMIT_REACHED") => Err(ReserveError::LimitReached),
            _ => Err(ReserveError::Unavailable),
        }
    }

    pub async fn join(&self, req: JoinRequest) -> Result<Joined, AppError> {
        let digest = |s: &str| self.digests.digest(req.session.as_str(), s);
        let credential = req.credential.as_ref().filter(|c| !c.is_empty());
        let kh = credential.map(|c| digest(c.expose())).unwrap_or_default();
        let joiner_ph = credential
            .and_then(Secret::joiner_password)
            .map(digest)
            .unwrap_or_default();
        let created_ph = credential
            .map(|c| digest(c.password_part()))
            .unwrap_or_default();
        let conn = self.digests.conn(req.session.as_str(), req.conn);
        let name = req.display_name.as_ref().map(DisplayName::as_str);
        let public_key = req.public_key.as_ref().map_or("", |k| k.get());
        let (now, ttl) = (
            now_ms().to_string(),
            ms(self.limits.session_ttl).to_string(),
        );
        let max_group = self.limits.max_group_members.to_string();
        let max_sessions = self.limits.max_sessions.to_string();
        let max_absent = MAX_ABSENT_MEMBERS.to_string();
        let presented = req
            .resume
            .as_ref()
            .map(|t| digest(t.expose()))
            .unwrap_or_default();
        // A token only for a join that can receive it (its ack).
        let (token, new_digest) = match req.acked {
            true => {
                let (token, _) = resume::issue();
                let d = digest(&token);
                (token, d)
            }
            false => (String::new(), String::new()),
        };
        let grace = ms(self.limits.presence_grace).to_string();
        let unused_ttl = ms(self.limits.unused_session_ttl).to_string();
        let args: [&[u8]; 20] = [
            req.user.as_str().as_bytes(),
            conn.as_bytes(),
            self.node.as_bytes(),
            if req.is_creator { b"1" } else { b"0" },
            kh.as_bytes(),
            joiner_ph.as_bytes(),
            created_ph.as_bytes(),
            req.chat_mode.unwrap_or_default().as_str().as_bytes(),
            if name.is_some() { b"1" } else { b"0" },
            name.unwrap_or_default().as_bytes(),
            public_key.as_bytes(),
            now.as_bytes(),
            ttl.as_bytes(),
            max_group.as_bytes(),
            max_sessions.as_bytes(),
            max_absent.as_bytes(),
            presented.as_bytes(),
            new_digest.as_bytes(),
            grace.as_bytes(),
            unused_ttl.as_bytes(),
        ];
        // On a cluster this node lists the connection before the script binds it (see
        // common.lua's node_add), and takes it back if the join is refused.
        let listed = match self.conn.is_cluster() {
            true => Some(self.list_conn(&req.session, &conn).await?),
            false => None,
        };
        // Subscribed before the script, so nothing published after its history is missed.
        let subscribed = match &self.channels {
            Some(bus) => bus
                .acquire(&req.session, req.conn)
                .await
                .map_err(|_| AppError::unavailable())?,
            None => false,
        };
        let reply = self
            .run_creating(
                &self.scripts.join,
                req.session.as_str(),
                &args,
                req.is_creator,
            )
            .await
            .and_then(Reply::new);
        let mut r = match reply.and_then(|r| match r.status() {
            "OK" => Ok(r),
            code => Err(refusal(code, &self.limits)),
        }) {
            Ok(r) => r,
            Err(e) => {
                if let Some(entry) = listed
                    && e.error != ErrorCode::Unavailable
                {
                    self.unlist_conn(entry).await;
                }
                if subscribed && let Some(bus) = &self.channels {
                    bus.release(&req.session, req.conn).await;
                }
                return Err(e);
            }
        };
        let mode = r.mode()?;
        let is_creator = r.int()? == 1;
        let new_member = r.int()? == 1;
        let display_name = r.display_name()?;
        let has_group_key = r.int()? == 1;
        let group_key = r.string()?;
        let group_key = match has_group_key {
            true => Some(RawValue::from_string(group_key).map_err(|_| AppError::unavailable())?),
            false => None,
        };
        let history = visible_history(r.rows()?, &req.user)?;
        let keys = public_keys(r.rows()?)?;
        let repeat = r.int()? == 1;
        let issued = r.int()? == 1;
        let key_changed = r.int()? == 1;
        let created = r.int()? == 1;
        Ok(Joined {
            created,
            restored: false,
            mode,
            is_creator,
            new_member,
            repeat,
            resume_token: issued.then_some(token),
            key_changed,
            display_name,
            history: HistoryView::Raw(history),
            group_key,
            keys,
        })
    }

    /// What a connection may read of its session: user, name, and as `view` asks, the
    /// present members' keys and the history visible to it.
    async fn view(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
        view: View,
    ) -> Result<(UserId, DisplayName, Vec<PublicKeyEntry>, Vec<RawMessage>), AppError> {
        let conn = self.digests.conn(id.as_str(), conn);
        let claimed = claimed.map_or("", UserId::as_str);
        let flag: &[u8] = match view {
            View::Member => b"0",
            View::Keys => b"1",
            View::Everything => b"2",
        };
        let args: [&[u8]; 3] = [conn.as_bytes(), claimed.as_bytes(), flag];
        let mut r = self
            .run_ok(&self.scripts.member, id.as_str(), &args)
            .await?;
        let user = r.user()?;
        let name = r.display_name()?;
        let keys = public_keys(r.rows()?)?;
        let history = visible_history(r.rows()?, &user)?;
        Ok((user, name, keys, history))
    }

    /// The present members' keys if `user` has no connection in the session (it did not
    /// come back), `None` if it is present again.
    pub async fn departed(
        &self,
        id: &SessionId,
        user: &UserId,
    ) -> Result<Option<Vec<PublicKeyEntry>>, AppError> {
        let mut r = self
            .run_ok(
                &self.scripts.departed,
                id.as_str(),
                &[user.as_str().as_bytes()],
            )
            .await?;
        let gone = r.int()? == 1;
        let keys = public_keys(r.rows()?)?;
        Ok(gone.then_some(keys))
    }

    pub async fn member(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
    ) -> Result<(UserId, DisplayName), AppError> {
        let (user, name, _, _) = self.view(id, conn, claimed, View::Member).await?;
        Ok((user, name))
    }

    /// See [`Store::receipt`](super::Store::receipt): `lua/receipt.lua` looks each id up
    /// in the session's dedup index.
    pub async fn receipt(
        &self,
        id: &SessionId,
        conn: ConnId,
        sender: &UserId,
        ids: &[String],
    ) -> Result<(UserId, Vec<String>), AppError> {
        let conn = self.digests.conn(id.as_str(), conn);
        let mut args: Vec<&[u8]> = vec![conn.as_bytes(), sender.as_str().as_bytes()];
        args.extend(ids.iter().map(|m| m.as_bytes()));
        let mut r = self
            .run_ok(&self.scripts.receipt, id.as_str(), &args)
            .await?;
        let user = r.user()?;
        let received = r
            .rows()?
            .map(|row| row.into_string())
            .collect::<Result<_, _>>()?;
        Ok((user, received))
    }

    pub async fn peer_keys(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
    ) -> Result<Vec<PublicKeyEntry>, AppError> {
        let (user, _, mut keys, _) = self.view(id, conn, claimed, View::Keys).await?;
        keys.retain(|k| k.user_id != user);
        Ok(keys)
    }

    /// The present members' keys and the history the connection may read, to send
    /// again after this node missed broadcasts.
    pub async fn resync(
        &self,
        id: &SessionId,
        conn: ConnId,
    ) -> Result<(UserId, Vec<PublicKeyEntry>, Vec<RawMessage>), AppError> {
        let (user, _, keys, history) = self.view(id, conn, None, View::Everything).await?;
        Ok((user, keys, history))
    }

    pub async fn save_public_key(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
        key: Opaque,
        name: Option<DisplayName>,
    ) -> Result<Vec<PublicKeyEntry>, AppError> {
        let conn = self.digests.conn(id.as_str(), conn);
        let claimed = claimed.map_or("", UserId::as_str);
        let now = now_ms().to_string();
        let args: [&[u8]; 6] = [
            conn.as_bytes(),
            claimed.as_bytes(),
            key.get().as_bytes(),
            if name.is_some() { b"1" } else { b"0" },
            name.as_ref().map_or("", DisplayName::as_str).as_bytes(),
            now.as_bytes(),
        ];
        let mut r = self
            .run_ok(&self.scripts.save_key, id.as_str(), &args)
            .await?;
        public_keys(r.rows()?)
    }

    pub async fn set_group_keys(
        &self,
        id: &SessionId,
        conn: ConnId,
        keys: &BTreeMap<UserId, Box<RawValue>>,
    ) -> Result<(), AppError> {
        let conn = self.digests.conn(id.as_str(), conn);
        let now = now_ms().to_string();
        let mut args: Vec<&[u8]> = vec![conn.as_bytes(), now.as_bytes()];
        for (user, key) in keys {
            args.push(user.as_str().as_bytes());
            args.push(key.get().as_bytes());
        }
        self.run_ok(&self.scripts.set_group_keys, id.as_str(), &args)
            .await?;
        Ok(())
    }

    /// Unbinds `conn` (bound through `node`): an explicit leave when `forget`.
    async fn remove_conn(
        &self,
        id: &SessionId,
        conn: &str,
        claimed: Option<&UserId>,
        forget: bool,
        node: &str,
    ) -> Result<Left, AppError> {
        let claimed = claimed.map_or("", UserId::as_str);
        let (now, ttl) = (
            now_ms().to_string(),
            ms(self.limits.session_ttl).to_string(),
        );
        let max_absent = MAX_ABSENT_MEMBERS.to_string();
        let args: [&[u8]; 7] = [
            conn.as_bytes(),
            claimed.as_bytes(),
            if forget { b"1" } else { b"0" },
            node.as_bytes(),
            now.as_bytes(),
            ttl.as_bytes(),
            max_absent.as_bytes(),
        ];
        let mut r = self.run_ok(&self.scripts.leave, id.as_str(), &args).await?;
        Ok(Left {
            user: r.user()?,
            member_gone: r.int()? == 1,
            session_deleted: r.int()? == 1,
            keys: public_keys(r.rows()?)?,
        })
    }

    pub async fn leave(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
    ) -> Result<Left, AppError> {
        let node = self.node.clone();
        let left = self
            .remove_conn(
                id,
                &self.digests.conn(id.as_str(), conn),
                claimed,
                true,
                &node,
            )
            .await?;
        self.unsubscribe(id, conn).await;
        Ok(left)
    }

    pub async fn disconnect(&self, id: &SessionId, conn: ConnId) -> Result<Option<Left>, AppError> {
        let node = self.node.clone();
        // The socket is gone whatever Redis answers (a failure is retried for the others).
        self.unsubscribe(id, conn).await;
        self.disconnect_on(id, &self.digests.conn(id.as_str(), conn), &node)
            .await
    }

    /// `conn` left session `id`: this node may stop reading its channel.
    async fn unsubscribe(&self, id: &SessionId, conn: ConnId) {
        if let Some(bus) = &self.channels {
            bus.release(id, conn).await;
        }
    }

    /// A connection of `node` (this one, or a dead one being swept) is gone. `conn` is
    /// its name in Redis ([`DigestKey::conn`]), as the node's list holds it.
    pub async fn disconnect_on(
        &self,
        id: &SessionId,
        conn: &str,
        node: &str,
    ) -> Result<Option<Left>, AppError> {
        match self.remove_conn(id, conn, None, false, node).await {
            Ok(left) => Ok(Some(left)),
            Err(e) if e.error == ErrorCode::NotInSession => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn close(&self, id: &SessionId, conn: ConnId) -> Result<Vec<UserId>, AppError> {
        let sid = self.digests.conn(id.as_str(), conn);
        let mut r = self
            .run_ok(&self.scripts.close, id.as_str(), &[sid.as_bytes()])
            .await?;
        self.unsubscribe(id, conn).await;
        r.rows()?.map(|mut row| row.user()).collect()
    }

    pub async fn status(
        &self,
        id: &SessionId,
        credential: Option<&Secret>,
    ) -> Result<(ChatMode, bool), AppError> {
        let digest = |s: &str| self.digests.digest(id.as_str(), s);
        let credential = credential.filter(|c| !c.is_empty());
        let kh = credential.map(|c| digest(c.expose())).unwrap_or_default();
        let ph = credential
            .and_then(Secret::joiner_password)
            .map(digest)
            .unwrap_or_default();
        let args: [&[u8]; 2] = [kh.as_bytes(), ph.as_bytes()];
        let mut r = self
            .run_ok(&self.scripts.status, id.as_str(), &args)
            .await?;
        Ok((r.mode()?, r.string()? == "1"))
    }

    pub async fn remove_member(
        &self,
        id: &SessionId,
        conn: ConnId,
        target: &UserId,
    ) -> Result<Removed, AppError> {
        let (conn, now) = (self.digests.conn(id.as_str(), conn), now_ms().to_string());
        let max_removed = crate::store::session::MAX_REMOVED.to_string();
        let args: [&[u8]; 4] = [
            conn.as_bytes(),
            target.as_str().as_bytes(),
            now.as_bytes(),
            max_removed.as_bytes(),
        ];
        let mut r = self
            .run_ok(&self.scripts.remove, id.as_str(), &args)
            .await?;
        Ok(Removed {
            display_name: r.display_name()?,
            keys: public_keys(r.rows()?)?,
        })
    }

    pub async fn reset_key(
        &self,
        id: &SessionId,
        conn: ConnId,
        key: &Secret,
    ) -> Result<(), AppError> {
        let digest = |s: &str| self.digests.digest(id.as_str(), s);
        let (kh, ph) = (digest(key.expose()), digest(key.password_part()));
        let has_password: &[u8] = if key.expose().contains(':') {
            b"1"
        } else {
            b"0"
        };
        let (conn, now) = (self.digests.conn(id.as_str(), conn), now_ms().to_string());
        let args: [&[u8]; 5] = [
            conn.as_bytes(),
            kh.as_bytes(),
            ph.as_bytes(),
            has_password,
            now.as_bytes(),
        ];
        self.run_ok(&self.scripts.reset, id.as_str(), &args).await?;
        Ok(())
    }

    /// On a cluster: lists `conn` under this node, for the sweep if the node dies.
    async fn list_conn(&self, session: &SessionId, conn: &str) -> Result<String, AppError> {
        let entry = format!("{}|{conn}", session.as_str());
        redis::cmd("SADD")
            .arg(self.node_conns())
            .arg(&entry)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|_| AppError::unavailable())?;
        Ok(entry)
    }

    async fn unlist_conn(&self, entry: String) {
        let removed = redis::cmd("SREM")
            .arg(self.node_conns())
            .arg(entry)
            .query_async::<()>(&mut self.conn.clone())
            .await;
        if let Err(e) = removed {
            tracing::warn!(error = %e, "cannot unlist a refused join's connection; the node's sweep ignores it");
        }
    }

    fn node_conns(&self) -> String {
        format!("{}n:{}:c", self.global, self.node)
    }
}

/// What [`RedisStore::view`] reads.
enum View {
    Member,
    Keys,
    Everything,
}

/// Flat `userId, name, key, joinedAt` quadruples into entries.
fn public_keys(mut rows: impl Iterator<Item = Row>) -> Result<Vec<PublicKeyEntry>, AppError> {
    let mut out = Vec::new();
    while let Some(mut user) = rows.next() {
        let (Some(mut name), Some(key), Some(joined)) = (rows.next(), rows.next(), rows.next())
        else {
            return Err(AppError::unavailable());
        };
        let key = RawValue::from_string(key.into_string()?).map_err(|_| AppError::unavailable())?;
        out.push(PublicKeyEntry {
            user_id: user.user()?,
            display_name: name.display_name()?,
            public_key: Opaque::from(key),
            joined_at: joined.into_string()?.parse().unwrap_or_default(),
        });
    }
    Ok(out)
}
