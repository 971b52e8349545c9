//! Proxying TCP to TCP in the kernel with splice(2) (Linux).
//!
//! The user-space copy reads every byte into a buffer and writes it out again: on a bulk
//! transfer the proxy's core spends its time copying. Between two plain TCP sockets the
//! kernel can move the data itself: each direction has a pipe, `splice` moves what the
//! source socket received into the pipe (page references, no copy into user space) and then
//! from the pipe into the destination socket.
//!
//! Each direction alternates two steps, driven by tokio's readiness so one task serves both
//! directions: when the source is readable, splice up to the pipe's capacity into the
//! (empty) pipe; then, while the pipe holds bytes, splice them into the destination whenever
//! it is writable. The pipe is always empty before a read, so `EAGAIN` on a read means the
//! socket has nothing and `EAGAIN` on a write means the socket's send buffer is full: each
//! clears exactly the readiness it concerns (`try_io`). A read of 0 bytes is the peer's FIN:
//! it is passed on with `shutdown(Write)` while the other direction keeps flowing. The
//! first error of either direction ends both.
//!
//! Off by default (`L4Limits::tcp_splice`): on the loopback benchmark (`bench/l4.sh`, one
//! iperf3 stream, the proxy pinned to one core and iperf3 to the other) the proxy's core
//! had a third of its time idle but one stream was slower than the user-space copy, as the
//! endpoints' core then did more work (twice the wake-up interrupts towards the proxy's core,
//! and fresh pages for the sender while spliced ones are still referenced). See the README's
//! L4 figures.
//!
//! Pipes cost two descriptors each and count against the user's pipe buffer quota
//! (`/proc/sys/fs/pipe-user-pages-soft`: past it the kernel hands out one- or two-page
//! pipes); [`Pipes::new`] refuses pipes smaller than [`MIN_PIPE_SIZE`] so the caller falls
//! back to the user-space copy instead of crawling through tiny pipes.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::pipe::{PipeFlags, SpliceFlags, fcntl_getpipe_size, fcntl_setpipe_size, pipe_with};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::tcp::Activity;

/// Capacity asked for each pipe (`F_SETPIPE_SZ`); the kernel's default is 64 KiB and its
/// limit for unprivileged users `/proc/sys/fs/pipe-max-size` (1 MiB by default). Chosen by
/// measurement, see the README's L4 figures.
pub(crate) const PIPE_SIZE: usize = 256 * 1024;

/// Smallest pipe worth splicing through: the kernel's default capacity. Smaller pipes mean
/// the user's pipe quota is exhausted; the user-space copy with its larger buffers is faster
/// then.
pub(crate) const MIN_PIPE_SIZE: usize = 64 * 1024;

/// `SPLICE_F_MOVE` is a hint (pages are moved where the kernel can); `SPLICE_F_NONBLOCK`
/// keeps the pipe side from blocking, the sockets are non-blocking already.
const FLAGS: SpliceFlags = SpliceFlags::MOVE.union(SpliceFlags::NONBLOCK);

/// One pipe: a direction's bytes between the two sockets.
#[derive(Debug)]
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (read, write) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        // Larger is best effort: a refusal (quota, pipe-max-size) leaves the default.
        let capacity = match fcntl_setpipe_size(&write, PIPE_SIZE) {
            Ok(size) => size,
            Err(_) => fcntl_getpipe_size(&write)?,
        };
        if capacity < MIN_PIPE_SIZE {
            return Err(io::Error::other(format!(
                "pipe of {capacity} bytes only (pipe buffer quota reached)"
            )));
        }
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }
}

/// The two pipes of a spliced connection.
#[derive(Debug)]
pub(crate) struct Pipes {
    a_to_b: Pipe,
    b_to_a: Pipe,
}

impl Pipes {
    /// Creates both pipes, or says why not (descriptor limit, pipe quota): the caller then
    /// copies in user space.
    pub(crate) fn new() -> io::Result<Pipes> {
        Ok(Pipes {
            a_to_b: Pipe::new()?,
            b_to_a: Pipe::new()?,
        })
    }
}

/// Bytes moved by a splice copy, per direction, kept outside the copy future so they are
/// known even when the copy is cut short (idle timeout, drain deadline).
#[derive(Debug, Default)]
pub(crate) struct Spliced {
    /// Read from `a` (and written, or in the pipe, towards `b`).
    pub(crate) a_to_b: AtomicU64,
    /// Read from `b`.
    pub(crate) b_to_a: AtomicU64,
}

/// Moves bytes from `a` to `b` and from `b` to `a` until both directions have ended, each
/// side's EOF passed on as `shutdown(Write)` of the other. The first error ends both.
pub(crate) async fn splice_bidirectional(
    a: &TcpStream,
    b: &TcpStream,
    pipes: &Pipes,
    counts: &Spliced,
    activity: &Activity,
) -> io::Result<()> {
    tokio::try_join!(
        one_way(a, b, &pipes.a_to_b, &counts.a_to_b, activity),
        one_way(b, a, &pipes.b_to_a, &counts.b_to_a, activity),
    )?;
    Ok(())
}

async fn one_way(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &Pipe,
    count: &AtomicU64,
    activity: &Activity,
) -> io::Result<()> {
    loop {
        // The pipe is empty here, so EAGAIN can only mean that `from` has nothing.
        let read = loop {
            from.readable().await?;
            match from.try_io(Interest::READABLE, || {
                rustix::pipe::splice(from, None, &pipe.write, None, pipe.capacity, FLAGS)
                    .map_err(io::Error::from)
            }) {
                Ok(n) => break n,
                Err(e) if retry(&e) => {}
                Err(e) => return Err(e),
            }
        };
        if read == 0 {
            return socket2::SockRef::from(to).shutdown(std::net::Shutdown::Write);
        }
        count.fetch_add(read as u64, Ordering::Relaxed);
        activity.touch();
        // The pipe holds bytes here, so EAGAIN can only mean that `to` is full.
        let mut left = read;
        while left > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || {
                rustix::pipe::splice(&pipe.read, None, to, None, left, FLAGS)
                    .map_err(io::Error::from)
            }) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => left = left.saturating_sub(n),
                Err(e) if retry(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// `EAGAIN` (readiness was cleared by `try_io`: wait again) or `EINTR`.
fn retry(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
