//! Every client connection's bytes, bounded both ways: reads at a pace per connection
//! (`CONN_READ_BYTES_PER_SEC`) and for the whole process (`READ_BYTES_PER_SEC`), and
//! writes that make no progress for `PING_TIMEOUT_SECS` fail the connection.
//!
//! The byte budgets of `limits` count an event once it has been read and parsed. Until
//! then, a WebSocket message or a polling body is buffered whole by the transport, before
//! any budget sees it: sixty clients each sending a 20 MiB message at once had the
//! process hold gigabytes of half-read frames. Pacing the reads bounds that memory: what
//! the process has read but not yet handled is at most a few seconds of the total rate,
//! and a client that stalls in the middle of a frame cannot answer Engine.IO's ping (its
//! pong would come after the frame), so its connection and buffer are dropped within a
//! heartbeat round. Bytes beyond the pace stay in the kernel, and TCP slows the sender.
//!
//! Writes: a client that stops reading fills its TCP window, and the transport's writer
//! then waits on it for ever, holding every packet queued for that client (Engine.IO
//! closes the session at the heartbeat, but its writer task stays blocked in the write).
//! A write that has waited as long as a pong may take (`PING_TIMEOUT_SECS`) fails
//! instead, and every later read and write of that connection too: the writer drops what
//! is queued, the reader sees the end of the stream, and the connection closes. A client
//! that takes no byte for that long would miss Engine.IO's next ping anyway.
//!
//! A read is charged after it happens (its size is known only then), in chunks no larger
//! than any burst, and the next read waits until the debt is paid.

use std::{
    future::Future,
    io,
    num::NonZeroU32,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::time::{Instant, Sleep};

use governor::{DefaultDirectRateLimiter, Quota, clock::Clock};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Debts are paid in pieces of this many bytes (every burst holds one).
const CHUNK: u32 = 64 * 1024;
/// How far ahead of its rate a connection, and the process, may read.
const CONN_BURST: u32 = 1024 * 1024;
const TOTAL_BURST: u32 = 8 * 1024 * 1024;

/// The process's read pace (shared by every connection) and write stall limit.
#[derive(Clone)]
pub struct ReadPace {
    per_conn: Option<Quota>,
    total: Option<Arc<DefaultDirectRateLimiter>>,
    write_stall: Duration,
}

impl ReadPace {
    /// Rates in bytes per second; 0 turns that limit off. A write waiting `write_stall`
    /// fails the connection.
    pub fn new(per_conn: u32, total: u32, write_stall: Duration) -> Self {
        let quota = |rate: u32, burst: u32| {
            NonZeroU32::new(rate).map(|r| Quota::per_second(r).allow_burst(nz(burst.max(CHUNK))))
        };
        ReadPace {
            per_conn: quota(per_conn, CONN_BURST),
            total: quota(total, TOTAL_BURST).map(|q| Arc::new(DefaultDirectRateLimiter::direct(q))),
            write_stall,
        }
    }

    /// `io`, read at this pace.
    pub fn wrap<T>(&self, io: T) -> Paced<T> {
        Paced {
            io,
            conn: self.per_conn.map(DefaultDirectRateLimiter::direct),
            total: self.total.clone(),
            owed_conn: 0,
            owed_total: 0,
            wait: None,
            write_stall: self.write_stall,
            stalled: None,
            failed: false,
        }
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// A connection read at a [`ReadPace`].
pub struct Paced<T> {
    io: T,
    conn: Option<DefaultDirectRateLimiter>,
    total: Option<Arc<DefaultDirectRateLimiter>>,
    /// Bytes read but not yet charged to each bucket.
    owed_conn: u32,
    owed_total: u32,
    wait: Option<Pin<Box<Sleep>>>,
    write_stall: Duration,
    /// Set while a write waits: fires when it has waited `write_stall`.
    stalled: Option<Pin<Box<Sleep>>>,
    /// A write stalled out: the connection is dead both ways.
    failed: bool,
}

fn stalled_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the client took no data for a ping timeout",
    )
}

/// Charges `owed` to `limiter`, a chunk at a time: `None` once all is paid, or how long
/// until the next chunk can be.
fn charge(limiter: Option<&DefaultDirectRateLimiter>, owed: &mut u32) -> Option<Duration> {
    let Some(limiter) = limiter else {
        *owed = 0;
        return None;
    };
    while let Some(n) = NonZeroU32::new((*owed).min(CHUNK)) {
        match limiter.check_n(n) {
            Ok(Err(not_until)) => return Some(not_until.wait_time_from(limiter.clock().now())),
            // Ok, or a chunk beyond the burst (ruled out by the bursts' floor): paid.
            Ok(Ok(())) | Err(_) => *owed -= n.get(),
        }
    }
    None
}

impl<T> Paced<T> {
    /// Pays what earlier reads owe; `Pending` (with a wake-up set) until it is paid.
    fn pay(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if let Some(wait) = &mut self.wait {
                if wait.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.wait = None;
            }
            let due = charge(self.conn.as_ref(), &mut self.owed_conn)
                .or_else(|| charge(self.total.as_deref(), &mut self.owed_total));
            match due {
                None => return Poll::Ready(()),
                Some(d) => self.wait = Some(Box::pin(tokio::time::sleep(d))),
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Paced<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(Ok(())); // the end of the stream
        }
        if this.conn.is_none() && this.total.is_none() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        if this.pay(cx).is_pending() {
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        let n = u32::try_from(buf.filled().len() - before).unwrap_or(u32::MAX);
        this.owed_conn = this.owed_conn.saturating_add(n);
        this.owed_total = this.owed_total.saturating_add(n);
        result
    }
}

impl<T> Paced<T> {
    /// After a write returned `Pending`: `Ready(Err)` once it has waited `write_stall`.
    fn write_waits(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let stall = self.write_stall;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + stall)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.failed = true;
        Poll::Ready(stalled_out())
    }

    /// Wraps one write-side call: progress clears the stall timer, a wait arms it.
    fn write_op<R>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>>
    where
        T: Unpin,
    {
        if self.failed {
            return Poll::Ready(Err(stalled_out()));
        }
        match op(Pin::new(&mut self.io), cx) {
            Poll::Pending => self.write_waits(cx).map(Err),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Paced<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write_op(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .write_op(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().write_op(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Closing is never held up by a stall.
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
