//! Every client connection's bytes, bounded both ways: reads at a pace per connection
//! (`CONN_READ_BYTES_PER_SEC`) and for the whole process (`READ_BYTES_PER_SEC`), no
//! reads while a write waits, and writes that must keep progressing at
//! `MIN_PROGRESS_BYTES_PER_SEC`. Every byte moved either way is counted in the
//! connection's [`ConnectionWatch`], which the Engine.IO session above reads to judge
//! liveness by progress instead of by a pong's punctuality.
//!
//! Reads. The byte budgets of `limits` count an event once it has been read and parsed.
//! Until then, a WebSocket message or a polling body is buffered whole by the transport,
//! before any budget sees it: sixty clients each sending a 20 MiB message at once had
//! the process hold gigabytes of half-read frames. Pacing the reads bounds that memory:
//! what the process has read but not yet handled is at most a few seconds of the total
//! rate. Bytes beyond the pace stay in the kernel, and TCP slows the sender. A client
//! that stalls in the middle of a frame moves no bytes, so its session finds it dead
//! at the heartbeat; one that trickles below the floor too.
//!
//! Reads wait while writes have been held up for a moment ([`READ_HOLD_AFTER`]): what a
//! client sends may oblige replies (WebSocket pongs and close frames, Engine.IO
//! answers), and a client that does not read them would otherwise make the process
//! hold every one. Its requests stay in the kernel
//! until it reads; a browser reads and writes independently, so it never waits on this.
//!
//! Writes. A client that stops reading fills its TCP window, and the transport's writer
//! then waits on it for ever, holding every packet queued for that client. While writes
//! wait, the connection must move at least `MIN_PROGRESS_BYTES_PER_SEC` over each window
//! of `PING_TIMEOUT_SECS` (and something at all); if it does not, that write fails, and
//! every later read and write of that connection too: the writer drops what is queued,
//! the reader sees the end of the stream, and the connection closes. A slow but honest
//! reader (a photo downloaded over a slow link) keeps its connection.
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

use engineioxide::watch::{ConnectionWatch, WatchLimits};
use governor::{DefaultDirectRateLimiter, Quota, clock::Clock};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Debts are paid in pieces of this many bytes (every burst holds one).
const CHUNK: u32 = 64 * 1024;
/// How far ahead of its rate a connection, and the process, may read.
const CONN_BURST: u32 = 1024 * 1024;
const TOTAL_BURST: u32 = 8 * 1024 * 1024;

/// The process's read pace (shared by every connection), the write progress rule, and
/// the limits each connection's [`ConnectionWatch`] carries.
#[derive(Clone)]
pub struct ReadPace {
    per_conn: Option<Quota>,
    total: Option<Arc<DefaultDirectRateLimiter>>,
    /// The window over which a waiting write must have made progress.
    write_window: Duration,
    limits: WatchLimits,
}

impl ReadPace {
    /// Rates in bytes per second; 0 turns that limit off. While writes wait, each
    /// `write_window` must move `limits.min_bytes_per_sec` (and at least a byte).
    pub fn new(per_conn: u32, total: u32, write_window: Duration, limits: WatchLimits) -> Self {
        let quota = |rate: u32, burst: u32| {
            NonZeroU32::new(rate).map(|r| Quota::per_second(r).allow_burst(nz(burst.max(CHUNK))))
        };
        ReadPace {
            per_conn: quota(per_conn, CONN_BURST),
            total: quota(total, TOTAL_BURST).map(|q| Arc::new(DefaultDirectRateLimiter::direct(q))),
            write_window,
            limits,
        }
    }

    /// `io`, paced; its watch goes into every request read from it.
    pub fn wrap<T>(&self, io: T) -> Paced<T> {
        Paced {
            io,
            conn: self.per_conn.map(DefaultDirectRateLimiter::direct),
            total: self.total.clone(),
            owed_conn: 0,
            owed_total: 0,
            wait: None,
            watch: ConnectionWatch::new(self.limits),
            write_window: self.write_window,
            floor: self.limits.min_bytes_per_sec,
            written: 0,
            blocked: None,
            write_waits: false,
            failed: false,
        }
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// A connection paced as its [`ReadPace`] says.
pub struct Paced<T> {
    io: T,
    conn: Option<DefaultDirectRateLimiter>,
    total: Option<Arc<DefaultDirectRateLimiter>>,
    /// Bytes read but not yet charged to each bucket.
    owed_conn: u32,
    owed_total: u32,
    wait: Option<Pin<Box<Sleep>>>,
    watch: ConnectionWatch,
    write_window: Duration,
    floor: u64,
    /// Bytes written so far.
    written: u64,
    /// Set while writes are held up (from a write that waited until one that wrote all
    /// it was given): the window they must progress in.
    blocked: Option<Blocked>,
    /// The last write call waited: reads wait for the connection to take bytes again.
    write_waits: bool,
    /// A write made too little progress: the connection is dead both ways.
    failed: bool,
}

/// A window of held-up writes: what was written at its start, and its end.
struct Blocked {
    written: u64,
    started: Instant,
    ends: Pin<Box<Sleep>>,
}

/// How long writes may be held up before reads wait for them. Under load a write often
/// waits a moment for the kernel; parking the reader at once cost ~10 % more CPU per
/// message at saturation. A client that does not read is held up far longer.
const READ_HOLD_AFTER: Duration = Duration::from_millis(50);

impl Blocked {
    /// Writes have been held up long enough for reads to wait on them.
    fn held_long(&self) -> bool {
        self.started.elapsed() >= READ_HOLD_AFTER
    }

    fn new(written: u64, window: Duration) -> Self {
        let started = Instant::now();
        Blocked {
            written,
            started,
            ends: Box::pin(tokio::time::sleep_until(started + window)),
        }
    }
}

impl<T> Paced<T> {
    /// The connection's watch, for the requests read from it.
    pub fn watch(&self) -> &ConnectionWatch {
        &self.watch
    }
}

fn too_slow() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the client took data slower than MIN_PROGRESS_BYTES_PER_SEC",
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

/// A transport that can say when it takes bytes again (without writing any).
pub trait WriteReady {
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl WriteReady for tokio::net::TcpStream {
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_write_ready(self, cx)
    }
}

impl<T: AsyncRead + WriteReady + Unpin> AsyncRead for Paced<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(Ok(())); // the end of the stream
        }
        if this.write_waits && this.blocked.as_ref().is_some_and(Blocked::held_long) {
            // Woken when the client takes bytes again (the writer is woken too).
            match this.io.poll_write_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(_) => this.write_waits = false,
            }
        }
        // Without limiters `pay` is ready at once (`charge` forgives what is owed).
        if this.pay(cx).is_pending() {
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        this.watch.moved(n);
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        this.owed_conn = this.owed_conn.saturating_add(n);
        this.owed_total = this.owed_total.saturating_add(n);
        result
    }
}

impl<T> Paced<T> {
    /// After a write returned `Pending`: `Ready(Err)` once a window ends in which the
    /// held-up writes moved less than the floor.
    fn write_waits(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        self.write_waits = true;
        let (written, window, floor) = (self.written, self.write_window, self.floor);
        let blocked = self
            .blocked
            .get_or_insert_with(|| Blocked::new(written, window));
        loop {
            if blocked.ends.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let moved = written - blocked.written;
            let owed = floor as f64 * blocked.started.elapsed().as_secs_f64();
            if moved == 0 || (moved as f64) < owed {
                self.failed = true;
                crate::telemetry::refused("write_too_slow");
                return Poll::Ready(too_slow());
            }
            *blocked = Blocked::new(written, window);
        }
    }

    /// Wraps one write-side call that was handed `len` bytes.
    fn write_op(
        &mut self,
        cx: &mut Context<'_>,
        len: usize,
        op: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>>
    where
        T: Unpin,
    {
        if self.failed {
            return Poll::Ready(Err(too_slow()));
        }
        match op(Pin::new(&mut self.io), cx) {
            Poll::Pending => self.write_waits(cx).map(Err),
            Poll::Ready(Ok(n)) => {
                self.write_waits = false;
                self.written += n as u64;
                self.watch.moved(n);
                if n >= len {
                    self.blocked = None; // all taken: nothing is held up
                }
                Poll::Ready(Ok(n))
            }
            err => err,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Paced<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .write_op(cx, buf.len(), |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.get_mut()
            .write_op(cx, len, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(Err(too_slow()));
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Closing is never held up by a stall.
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
