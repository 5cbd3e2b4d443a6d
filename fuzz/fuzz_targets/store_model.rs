//! The in-memory store against the reference model of `tests/support/store_model.rs`
//! (shared with the property tests in `tests/store_props.rs`): libFuzzer's bytes become a
//! TTL choice and a sequence of up to 128 operations (every one the handlers and routes
//! call) on 4 session ids, 5 users and 6 connections; the model asserts after each
//! operation that the store answered exactly as it should and that its counts and
//! invariants hold.

#![no_main]

#[path = "../../tests/support/store_model.rs"]
mod model;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use model::Op;

fn opt(u: &mut Unstructured) -> Result<Option<u8>> {
    Ok(if u.arbitrary::<bool>()? {
        Some(u.arbitrary()?)
    } else {
        None
    })
}

fn claimed(u: &mut Unstructured) -> Result<Option<u8>> {
    Ok(if u.ratio(1u8, 5u8)? {
        Some(u.arbitrary()?)
    } else {
        None
    })
}

fn op(u: &mut Unstructured) -> Result<Op> {
    Ok(match u.int_in_range(0u8..=29)? {
        0 => Op::Reserve {
            session: u.arbitrary()?,
            key: u.arbitrary()?,
            mode: u.arbitrary()?,
        },
        1..=7 => Op::Join {
            session: u.arbitrary()?,
            user: u.arbitrary()?,
            conn: u.arbitrary()?,
            creator: u.arbitrary()?,
            credential: u.arbitrary()?,
            mode: opt(u)?,
            name: opt(u)?,
            public_key: opt(u)?,
            acked: u.ratio(1u8, 5u8)?,
            resume: if u.ratio(1u8, 6u8)? {
                Some(u.ratio(4u8, 5u8)?)
            } else {
                None
            },
        },
        8..=11 => Op::Append {
            session: u.arbitrary()?,
            conn: u.arbitrary()?,
            claimed: claimed(u)?,
            id: u.arbitrary()?,
            to: opt(u)?,
            size: u.arbitrary()?,
        },
        12 | 13 => Op::Leave {
            session: u.arbitrary()?,
            conn: u.arbitrary()?,
            claimed: claimed(u)?,
        },
        14 | 15 => Op::Disconnect {
            session: u.arbitrary()?,
            conn: u.arbitrary()?,
        },
        16 => Op::Close {
            session: u.arbitrary()?,
            conn: u.arbitrary()?,
        },
        17 => Op::Reap,
        18 => Op::Member {
            session: u.arbitrary()?,
            conn: u.arbitrary()?,
            claimed: claimed(u)?,
        },
        19 | 20 => Op::Receipt {
            session: u.arbitrary()?,
            conn: u.arbitrary()?,
            sender: u.arbitrary()?,
            ids: u.arbitrary()?,
        },
        21 => Op::SavePublicKey {
            session: u.arbitrary()?,
            conn: u.arbitrary()?,
            claimed: claimed(u)?,
            key: u.arbitrary()?,
            name: opt(u)?,
        },
        22 => Op::PeerKeys {
            session: u.arbitrary()?,
            conn: u.arbitrary()?,
            claimed: claimed(u)?,
        },
        23 => Op::Resync {
            session: u.arbitrary()?,
            conn: u.arbitrary()?,
        },
        24 => Op::SetGroupKeys {
            session: u.arbitrary()?,
            conn: u.arbitrary()?,
            users: u.arbitrary()?,
        },
        25 => Op::Departed {
            session: u.arbitrary()?,
            user: u.arbitrary()?,
        },
        26 => Op::Status {
            session: u.arbitrary()?,
            credential: u.arbitrary()?,
        },
        27 => Op::RemoveMember {
            session: u.arbitrary()?,
            conn: u.arbitrary()?,
            target: u.arbitrary()?,
        },
        28 => Op::ResetKey {
            session: u.arbitrary()?,
            conn: u.arbitrary()?,
            key: u.arbitrary()?,
        },
        _ => Op::Summaries,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(expire_when_empty) = u.arbitrary::<bool>() else {
        return;
    };
    let mut ops = Vec::new();
    while ops.len() < 128 && !u.is_empty() {
        match op(&mut u) {
            Ok(o) => ops.push(o),
            Err(_) => break,
        }
    }
    model::run(&ops, expire_when_empty);
});
