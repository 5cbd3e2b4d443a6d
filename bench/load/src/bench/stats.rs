//! Figures of a phase: latency histograms, seen-sequence bitsets, counts, rounding.

use serde_json::{Value, json};

/// Rounded to 2 decimals (the figures of the JSON lines).
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
/// Rounded to 3 decimals (seconds).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
/// `n` per second over `secs`, rounded to 2 decimals (0 without time).
pub fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        round2(n as f64 / secs)
    } else {
        0.0
    }
}

// ---------------------------------------------------------------------------------------
// Latency histogram (log-linear: exact below 128 µs, then 64 buckets per power of two,
// < 1 % error) and seen-sequence bitsets
// ---------------------------------------------------------------------------------------

const HIST_BUCKETS: usize = 128 + 25 * 64;

#[derive(Default)]
pub struct Hist {
    counts: Vec<u64>,
    pub n: u64,
    pub max: u32,
}

impl Hist {
    fn index(v: u32) -> usize {
        if v < 128 {
            v as usize
        } else {
            let e = 31 - v.leading_zeros(); // 7..=31
            let m = (v >> (e - 6)) - 64; // 0..64
            (128 + (e - 7) * 64 + m) as usize
        }
    }

    /// Middle of bucket `i`.
    fn value(i: usize) -> u32 {
        if i < 128 {
            i as u32
        } else {
            let j = (i - 128) as u32;
            let e = j / 64 + 7;
            let m = j % 64 + 64;
            let lo = (m as u64) << (e - 6);
            let hi = ((m as u64 + 1) << (e - 6)) - 1;
            ((lo + hi) / 2).min(u32::MAX as u64) as u32
        }
    }

    pub fn record(&mut self, v: u32) {
        if self.counts.is_empty() {
            self.counts = vec![0; HIST_BUCKETS];
        }
        self.counts[Self::index(v)] += 1;
        self.n += 1;
        self.max = self.max.max(v);
    }

    pub fn record_ns(&mut self, ns: u64) {
        self.record((ns / 1000).min(u32::MAX as u64) as u32);
    }

    pub fn merge(&mut self, o: &Hist) {
        if o.n == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; HIST_BUCKETS];
        }
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.n += o.n;
        self.max = self.max.max(o.max);
    }

    pub fn pct(&self, q: f64) -> Option<u32> {
        if self.n == 0 {
            return None;
        }
        let target = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut acc = 0;
        for (i, c) in self.counts.iter().enumerate() {
            acc += c;
            if acc >= target {
                return Some(Self::value(i).min(self.max));
            }
        }
        Some(self.max)
    }

    pub fn json(&self) -> Value {
        json!({
            "samples": self.n,
            "p50": self.pct(0.50),
            "p90": self.pct(0.90),
            "p99": self.pct(0.99),
            "max": (self.n > 0).then_some(self.max),
        })
    }

    /// The column names of [`Hist::row`].
    pub fn header() -> String {
        format!(
            "{:>7} {:>7} {:>7} {:>8}",
            "p50µs", "p90µs", "p99µs", "maxµs"
        )
    }

    /// p50, p90, p99 and max, as table columns.
    pub fn row(&self) -> String {
        let f = |v: Option<u32>| v.map_or("-".to_owned(), |v| v.to_string());
        format!(
            "{:>7} {:>7} {:>7} {:>8}",
            f(self.pct(0.5)),
            f(self.pct(0.9)),
            f(self.pct(0.99)),
            f((self.n > 0).then_some(self.max))
        )
    }
}

/// Sequence numbers of one sender seen by one recipient.
#[derive(Default)]
pub struct Seen {
    bits: Vec<u64>,
    pub unique: u64,
}

impl Seen {
    /// True when `seq` is new.
    pub fn mark(&mut self, seq: u64) -> bool {
        let w = (seq / 64) as usize;
        if w >= self.bits.len() {
            self.bits.resize(w + 1, 0);
        }
        let bit = 1u64 << (seq % 64);
        if self.bits[w] & bit != 0 {
            return false;
        }
        self.bits[w] |= bit;
        self.unique += 1;
        true
    }
}

/// Figures of one measured phase, merged over tasks.
#[derive(Default)]
pub struct Stats {
    pub sent: u64,
    pub delivered: u64,
    /// Delivered before the phase's deadline (for rates).
    pub in_window: u64,
    pub dup: u64,
    pub lost: u64,
    /// new-message frames of another phase, sender or an unknown format.
    pub unexpected: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub lat: Hist,
    /// Fixed rate: actual send time - scheduled send time.
    pub lag: Hist,
}

impl Stats {
    pub fn merge(&mut self, o: Stats) {
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.in_window += o.in_window;
        self.dup += o.dup;
        self.lost += o.lost;
        self.unexpected += o.unexpected;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        self.lat.merge(&o.lat);
        self.lag.merge(&o.lag);
    }

    pub fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }
}
