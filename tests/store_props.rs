//! Property tests of the session store and its bounded history, against the reference
//! model in `tests/support/store_model.rs` (the fuzz target `store_model` runs the same
//! model on libFuzzer's inputs). The sequences drive every store operation a socket
//! handler or an HTTP route calls (the list, and where the stores may differ by design,
//! are in the model's doc). Case counts are bounded so `cargo test` stays fast (about
//! 30 s for this file on two cores); `STORE_PROPS_CASES=<n>` runs n cases where the
//! in-memory tests run 256 by default, and the Redis tests in proportion, for a longer
//! hunt.
//!
//! Both stores are held to the model: the session rules exist twice, in Rust for memory
//! and in Lua for Redis, and the `redis_*` tests run the same operation sequences and
//! the same assertions against the Redis store on a private `redis-server`, and on a
//! private three-primary Redis Cluster (`redis-server` and `redis-cli` must be
//! installed: they fail without them).

#[path = "support/store_model.rs"]
mod model;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;

use blindrelay::{
    protocol::{DisplayName, UserId},
    secret::Secret,
    store::{Appended, DigestKey, History, RedisStore, Store, message_cost},
};
use model::{MAppended, MHistory, MMessage, Op, To, USERS};
use proptest::{prelude::*, test_runner::TestRunner};

fn op() -> impl Strategy<Value = Op> {
    let small = |n: u8| 0..n;
    let claimed = || proptest::option::weighted(0.2, 0..5u8);
    // Operations collide: most on two sessions, most joins with the key "k0" (that most
    // sessions get), and a connection past CONNS is one bound in the session (`Op`).
    let session = || prop_oneof![3 => 0..2u8, 1 => 0..4u8];
    let credential = || prop_oneof![3 => Just(1u8), 2 => 0..9u8];
    let bound = || 0..2 * model::CONNS as u8;
    prop_oneof![
        1 => (session(), prop_oneof![Just(0u8), small(6)], small(3))
            .prop_map(|(session, key, mode)| Op::Reserve { session, key, mode }),
        10 => (
            (session(), small(5), small(6), proptest::bool::weighted(0.35)),
            (credential(), proptest::option::of(small(3)), proptest::option::of(small(3))),
            (
                proptest::option::of(small(3)),
                proptest::bool::weighted(0.2),
                proptest::option::weighted(0.15, proptest::bool::weighted(0.8)),
            ),
        )
            .prop_map(
                |((session, user, conn, creator), (credential, mode, name), (public_key, acked, resume))| {
                    Op::Join { session, user, conn, creator, credential, mode, name, public_key, acked, resume }
                },
            ),
        4 => (
            session(),
            bound(),
            claimed(),
            small(3),
            proptest::option::of(small(6)),
            any::<u8>(),
        )
            .prop_map(|(session, conn, claimed, id, to, size)| Op::Append {
                session, conn, claimed, id, to, size: size / 2,
            }),
        // Leaving and closing aim at a bound connection less often: sessions live on.
        2 => (session(), small(8), claimed())
            .prop_map(|(session, conn, claimed)| Op::Leave { session, conn, claimed }),
        2 => (session(), bound()).prop_map(|(session, conn)| Op::Disconnect { session, conn }),
        1 => (session(), small(8)).prop_map(|(session, conn)| Op::Close { session, conn }),
        1 => Just(Op::Reap),
        1 => (session(), bound(), claimed())
            .prop_map(|(session, conn, claimed)| Op::Member { session, conn, claimed }),
        2 => (session(), bound(), small(10), small(16))
            .prop_map(|(session, conn, sender, ids)| Op::Receipt { session, conn, sender, ids }),
        1 => (session(), bound(), claimed(), small(3), proptest::option::weighted(0.3, small(3)))
            .prop_map(|(session, conn, claimed, key, name)| Op::SavePublicKey {
                session, conn, claimed, key, name,
            }),
        1 => (session(), bound(), claimed())
            .prop_map(|(session, conn, claimed)| Op::PeerKeys { session, conn, claimed }),
        1 => (session(), bound()).prop_map(|(session, conn)| Op::Resync { session, conn }),
        1 => (session(), bound(), small(32))
            .prop_map(|(session, conn, users)| Op::SetGroupKeys { session, conn, users }),
        1 => (session(), small(5)).prop_map(|(session, user)| Op::Departed { session, user }),
        2 => (session(), credential())
            .prop_map(|(session, credential)| Op::Status { session, credential }),
        2 => (session(), bound(), small(10))
            .prop_map(|(session, conn, target)| Op::RemoveMember { session, conn, target }),
        1 => (session(), bound(), small(4))
            .prop_map(|(session, conn, key)| Op::ResetKey { session, conn, key }),
        1 => Just(Op::Summaries),
    ]
}

/// An operation sequence: a few joins with the key most sessions get (creators first,
/// so that rooms with several members exist early), then any operations.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let opening = (
        0..2u8,
        0..5u8,
        0..6u8,
        proptest::bool::weighted(0.4),
        0..3u8,
        any::<bool>(),
    )
        .prop_map(|(session, user, conn, creator, mode, acked)| Op::Join {
            session,
            user,
            conn,
            creator,
            credential: 1,
            mode: Some(mode),
            name: Some(user % 3),
            public_key: Some(user % 2),
            acked,
            resume: None,
        });
    (
        prop::collection::vec(opening, 0..8),
        prop::collection::vec(op(), 1..80),
    )
        .prop_map(|(mut opening, ops)| {
            opening.sort_by_key(|op| !matches!(op, Op::Join { creator: true, .. }));
            opening.extend(ops);
            opening
        })
}

/// `default`, or `STORE_PROPS_CASES` times `default / 256` when that is set (the in-memory
/// tests run 256 cases by default): a longer hunt than the default's, on demand.
fn cases(default: u32) -> u32 {
    match std::env::var("STORE_PROPS_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        Some(n) => (n * default / 256).max(1),
        None => default,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    /// Nothing expires during the run (TTL of one hour).
    #[test]
    fn store_matches_the_model(ops in ops()) {
        model::run(&ops, false);
    }

    /// A session with no connected member is expired at once (TTL zero): reservations,
    /// rejoins after a disconnect and `reap` all meet expired sessions.
    #[test]
    fn store_matches_the_model_when_empty_sessions_expire(ops in ops()) {
        model::run(&ops, true);
    }
}

/// Operation sequences each Redis test runs (each on a fresh key prefix): together they
/// take 20 to 30 s of a debug `cargo test` on two cores, by load (they run side by side;
/// the memory tests run 256 each in a few seconds). An operation is two round trips or
/// more (its script, then `stats`; `summaries` one per session); where empty sessions
/// expire, one that leaves its session empty also waits out the TTL (2 ms in all).
const REDIS_CASES: u32 = 128;

/// The TTL the Redis store gets where the memory store gets zero, waited out after each
/// operation (see `model::run_on`): a session with no connected member is expired by
/// the next operation in both. Redis has no TTL of zero (`PX 0` is an error; the
/// configuration takes whole seconds, at least one).
const REDIS_TTL_WHEN_EMPTY: std::time::Duration = std::time::Duration::from_millis(1);

/// Runs `cases` operation sequences against the Redis store and the model, each on
/// a fresh key prefix (no key, index or history total of another case) of one private
/// redis-server, connected to as the server connects (`Cluster::connect`).
fn redis_store_matches_the_model_with(expire_when_empty: bool, cases: u32) {
    let server = redis_server::RedisServer::start();
    redis_store_matches_the_model_on(&server.url(), expire_when_empty, cases);
    drop(server);
}

/// The same against the store on Redis at `url` (one server, or a cluster).
fn redis_store_matches_the_model_on(url: &str, expire_when_empty: bool, cases: u32) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let cluster = rt
        .block_on(blindrelay::cluster::Cluster::connect(url))
        .expect("the private redis-server");
    let digests = DigestKey::new(&Secret::from("store-props digest key"));
    let case = std::cell::Cell::new(0u32);
    let mut limits = model::limits(expire_when_empty, REDIS_TTL_WHEN_EMPTY);
    if cluster.commands.is_cluster() {
        // See `model::limits`: a cluster's total is the reaper's.
        limits.history_total_max_bytes = 0;
    }
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        // Not beside the memory tests' seeds: those are replayed against memory.
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&ops(), |ops| {
        case.set(case.get() + 1);
        let store = RedisStore::new(
            cluster.commands.clone(),
            cluster.pubsub.health.clone(),
            &format!("props:{}:{}:", u8::from(expire_when_empty), case.get()),
            Arc::from("props-node"),
            limits.clone(),
            digests.clone(),
        );
        rt.block_on(async {
            store.sync_clock().await.expect("Redis's clock");
            let store = Store::Redis(Box::new(store));
            model::run_on(&store, &ops, expire_when_empty).await;
        });
        Ok(())
    });
    drop(rt);
    if let Err(e) = result {
        panic!("the Redis store differs from the model: {e}");
    }
}

/// The Redis store, nothing expiring during the run (TTL of one hour).
#[test]
fn redis_store_matches_the_model() {
    redis_store_matches_the_model_with(false, cases(REDIS_CASES));
}

/// The Redis store, a session with no connected member expired by the next operation.
#[test]
fn redis_store_matches_the_model_when_empty_sessions_expire() {
    redis_store_matches_the_model_with(true, cases(REDIS_CASES));
}

/// A message for the history properties: (id, sender, recipient, ciphertext length).
fn history_message() -> impl Strategy<Value = (usize, usize, Option<To>, usize)> {
    (
        0usize..4,
        0usize..3,
        proptest::option::of(prop_oneof![
            Just(To::All),
            (0usize..USERS.len()).prop_map(To::User)
        ]),
        0usize..300,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `History::append` and `visible_to` against the model: same outcome for every
    /// append (stored, first of its id, or duplicate of a stored (id, from, to) with its
    /// timestamp), both bounds hold after every append, the byte count is exact, and
    /// `visible_to` returns, in order, exactly the messages to everyone, to the reader or
    /// from it: never another recipient's private copy.
    #[test]
    fn history_bounds_dedup_and_visibility(
        messages in prop::collection::vec(history_message(), 0..60),
        max_messages in 1usize..8,
        extra_bytes in 0usize..1500,
    ) {
        // Every message fits the byte bound alone (the store refuses larger ones first).
        let largest = message_cost(&build(3, 2, None, 299, 0));
        let max_bytes = largest + extra_bytes;
        let mut real = History::default();
        let mut model = MHistory::default();
        for (i, (id, from, to, len)) in messages.into_iter().enumerate() {
            let m = build(id, from, to, len, i as u64);
            let cost = message_cost(&m);
            let got = match real.append(m, max_messages, max_bytes) {
                Appended::Stored { first_of_id, .. } => MAppended::Stored { first_of_id },
                Appended::Duplicate { timestamp } => MAppended::Duplicate { timestamp },
            };
            let want = model.append(
                MMessage { id, from, to, cost, timestamp: i as u64 },
                max_messages,
                max_bytes,
            );
            prop_assert_eq!(got, want);
            prop_assert!(real.len() <= max_messages);
            prop_assert!(real.bytes() <= max_bytes);
            prop_assert_eq!(real.bytes(), model.bytes());
            prop_assert_eq!(real.len(), model.entries.len());
            for (reader, name) in USERS.iter().enumerate() {
                let user = UserId::parse(name).unwrap();
                let seen = real.visible_to(&user);
                for m in &seen {
                    if let Some(blindrelay::protocol::Recipient::User(to)) = &m.to {
                        prop_assert!(*to == user || m.from == user, "another's private copy");
                    }
                }
                prop_assert_eq!(triples(&seen), model.visible_to(reader));
            }
        }
    }
}

/// History ids are "h0".."h3" here (the store model's table has three).
fn build(
    id: usize,
    from: usize,
    to: Option<To>,
    len: usize,
    ts: u64,
) -> blindrelay::protocol::Message {
    blindrelay::protocol::Message {
        id: format!("h{id}").into(),
        from: UserId::parse(USERS[from]).unwrap(),
        to: model::to_recipient(to),
        encrypted: serde_json::value::to_raw_value(&"y".repeat(len))
            .unwrap()
            .into(),
        attachments: Default::default(),
        timestamp: ts,
        kind: "text".into(),
        sender_display_name: DisplayName::default(),
    }
}

fn triples(
    list: &[std::sync::Arc<blindrelay::protocol::Message>],
) -> Vec<(usize, usize, Option<To>)> {
    list.iter()
        .map(|m| {
            (
                m.id[1..].parse().unwrap(),
                model::user_index(&m.from),
                model::to_model(&m.to),
            )
        })
        .collect()
}

/// The Redis store on a three-primary Redis Cluster: sessions spread over the shards,
/// the global index kept through the ledger (see `store/redis/mod.rs`).
#[test]
fn redis_cluster_store_matches_the_model() {
    let cluster = redis_server::RedisCluster::start(3);
    redis_store_matches_the_model_on(&cluster.url(), false, cases(REDIS_CASES / 2));
    redis_store_matches_the_model_on(&cluster.url(), true, cases(REDIS_CASES / 2));
    drop(cluster);
}
