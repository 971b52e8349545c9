//! A stream whose reads are shown to an observer on their way through.
//!
//! Several parts of the data plane need to see the bytes a client sends without changing
//! them: the TCP proxy notes activity and counts bytes, the HTTP/1.1 server follows request
//! framing. [`Observed`] passes reads and writes through unchanged and hands each read's new
//! bytes to a [`ReadObserver`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Sees every byte read through an [`Observed`] stream, in order.
pub(crate) trait ReadObserver {
    /// `bytes` were just read (never empty).
    fn observe(&mut self, bytes: &[u8]);
}

/// `io` with its reads shown to `observer`; writes pass straight through.
pub(crate) struct Observed<IO, O> {
    pub(crate) io: IO,
    pub(crate) observer: O,
}

impl<IO: AsyncRead + Unpin, O: ReadObserver + Unpin> AsyncRead for Observed<IO, O> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Some(read) = buf.filled().get(before..).filter(|r| !r.is_empty()) {
            this.observer.observe(read);
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin, O: Unpin> AsyncWrite for Observed<IO, O> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
