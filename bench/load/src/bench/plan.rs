//! What a run does: the scenarios and their sizes, from the flags.
//!
//! --smoke: a tiny run of every scenario, a few seconds in all (scripts/test.sh runs it
//! against a debug server): 4 rooms, 1 s phases, a 5-member fanout, 20 idle connections
//! held 1 s, churn 1 s with 4 workers, 2 groups of 5. The other flags (--url, --acks,
//! --server-pid) still apply; a scenario that delivered nothing fails the run.

use super::{Args, Scenario, pairs};

/// The scenarios to run and their sizes.
pub struct Plan {
    /// --scenario as given.
    pub scenario: Scenario,
    /// Every scenario: `--scenario all`, or --smoke.
    pub all: bool,
    /// --skip: not run even in `all`.
    pub skip: Vec<Scenario>,
    pub pairs: pairs::Params,
    /// fanout (each run) and churn, in seconds.
    pub duration: f64,
    /// fanout: messages per second of its sender.
    pub fanout_rate: f64,
    /// fanout: one run per size.
    pub fanout_members: Vec<usize>,
    pub idle_connections: usize,
    /// idle: seconds held.
    pub hold: u64,
    pub churn_concurrency: usize,
    pub fill_groups: usize,
    pub fill_members: usize,
    /// groupfill: length of each publicKey.
    pub key_bytes: usize,
}

impl Plan {
    pub fn new(args: &Args) -> Plan {
        if args.smoke {
            return Plan::smoke(args);
        }
        let s = args.scenario;
        Plan {
            scenario: s,
            all: s == Scenario::All,
            skip: args.skip.clone(),
            pairs: pairs::Params {
                rooms: args.rooms.max(1),
                window: args.window.max(1),
                duration: args.duration,
                rates: args.rate.map_or(vec![2000.0, 1000.0], |r| vec![r]),
            },
            duration: args.duration,
            fanout_rate: args.rate.unwrap_or(200.0),
            fanout_members: match (args.members, s) {
                (Some(m), _) => vec![m],
                (None, Scenario::All) => vec![50, 500],
                (None, _) => vec![50],
            },
            idle_connections: args.connections,
            hold: args.hold,
            churn_concurrency: args.concurrency,
            fill_groups: args.groups.max(1),
            fill_members: if s == Scenario::Groupfill {
                args.members.unwrap_or(64)
            } else {
                64
            },
            key_bytes: args.key_bytes,
        }
    }

    /// The --smoke sizes.
    fn smoke(args: &Args) -> Plan {
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

    /// Whether scenario `s` runs.
    pub fn runs(&self, s: Scenario) -> bool {
        (self.all || self.scenario == s) && !self.skip.contains(&s)
    }

    /// The most connections open at once (groupfill's when `fill`).
    pub fn connections(&self, fill: bool) -> usize {
        let mut need = 0;
        if self.runs(Scenario::Idle) {
            need = need.max(self.idle_connections);
        }
        if self.runs(Scenario::Fanout) {
            need = need.max(self.fanout_members.iter().copied().max().unwrap_or(0));
        }
        if self.runs(Scenario::Pairs) {
            need = need.max(self.pairs.rooms * 2);
        }
        if fill {
            need = need.max(self.fill_groups * self.fill_members);
        }
        need
    }
}
