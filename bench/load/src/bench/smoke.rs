//! --smoke: a tiny run of every scenario, a few seconds in all (scripts/test.sh runs it
//! against a debug server): 4 rooms, 1 s phases, a 5-member fanout, 20 idle connections
//! held 1 s, churn 1 s with 4 workers, 2 groups of 5. The other flags (--url, --acks,
//! --server-pid) still apply; a scenario that delivered nothing fails the run.

use super::plan::Plan;
use super::{Args, pairs};

/// The smoke sizes.
pub fn plan(args: &Args) -> Plan {
    Plan {
        scenario: args.scenario,
        all: true,
        skip: args.skip.clone(),
        pairs: pairs::Params {
            rooms: 4,
            window: 4,
            duration: 1.0,
            rates: vec![200.0],
        },
        duration: 1.0,
        fanout_rate: 50.0,
        fanout_members: vec![5],
        idle_connections: 20,
        hold: 1,
        churn_concurrency: 4,
        fill_groups: 2,
        fill_members: 5,
        key_bytes: args.key_bytes,
    }
}
