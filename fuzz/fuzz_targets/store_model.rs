//! The in-memory store against the reference model of `tests/support/store_model.rs`
//! (shared with the property tests in `tests/store_props.rs`): libFuzzer's bytes become a
//! TTL choice and a sequence of up to 128 operations on 4 session ids, 5 users and 6
//! connections; the model asserts after each operation that the store answered exactly
//! as it should and that its counts and invariants hold.

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

fn op(u: &mut Unstructured) -> Result<Op> {
    Ok(match u.int_in_range(0u8..=15)? {
        0 => Op::Reserve {
            session: u.arbitrary()?,
            key: u.arbitrary()?,
            mode: u.arbitrary()?,
        },
        1..=5 => Op::Join {
            session: u.arbitrary()?,
            user: u.arbitrary()?,
            conn: u.arbitrary()?,
            creator: u.arbitrary()?,
            credential: u.arbitrary()?,
            mode: opt(u)?,
            name: opt(u)?,
            public_key: u.arbitrary()?,
            acked: u.ratio(1u8, 5u8)?,
        },
        6..=9 => Op::Append {
            session: u.arbitrary()?,
            conn: u.arbitrary()?,
            claimed: if u.ratio(1u8, 5u8)? {
                Some(u.arbitrary()?)
            } else {
                None
            },
            id: u.arbitrary()?,
            to: opt(u)?,
            size: u.arbitrary()?,
        },
        10 | 11 => Op::Leave {
            session: u.arbitrary()?,
            conn: u.arbitrary()?,
            claimed: if u.ratio(1u8, 5u8)? {
                Some(u.arbitrary()?)
            } else {
                None
            },
        },
        12 | 13 => Op::Disconnect {
            session: u.arbitrary()?,
            conn: u.arbitrary()?,
        },
        14 => Op::Close {
            session: u.arbitrary()?,
            conn: u.arbitrary()?,
        },
        _ => Op::Reap,
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
