//! Copying a proxied stream both ways, with buffers that grow with the flow.
//!
//! A fixed buffer is a bad trade either way: a small one costs a system call per few
//! kilobytes on bulk transfers, a large one holds memory for every mostly idle connection.
//! Each direction here starts small and doubles its buffer whenever a read fills it, up to a
//! maximum, so an interactive or idle connection keeps a few kilobytes while a bulk transfer
//! soon moves large chunks per call. A buffer never shrinks: a flow that was bulk once tends
//! to be bulk again, and the connection's end frees it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Buffer sizes of one copy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BufferSizes {
    /// Size each direction starts with.
    pub(crate) initial: usize,
    /// Size a direction's buffer may grow to.
    pub(crate) max: usize,
}

/// Copies `a` to `b` and `b` to `a` until both directions have ended. When one side ends
/// its stream (EOF), the other side's writing half is shut down (the FIN is passed on) while
/// the opposite direction keeps flowing. The first error of either direction ends the copy.
/// Returns the bytes copied from `a` to `b` and from `b` to `a`.
pub(crate) async fn copy_bidirectional<A, B>(
    a: &mut A,
    b: &mut B,
    sizes: BufferSizes,
) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    Bidirectional {
        a,
        b,
        a_to_b: Direction::new(sizes),
        b_to_a: Direction::new(sizes),
    }
    .await
}

struct Bidirectional<'a, A: ?Sized, B: ?Sized> {
    a: &'a mut A,
    b: &'a mut B,
    a_to_b: Direction,
    b_to_a: Direction,
}

impl<A, B> Future for Bidirectional<'_, A, B>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    type Output = io::Result<(u64, u64)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let forward = this
            .a_to_b
            .poll_copy(cx, Pin::new(&mut *this.a), Pin::new(&mut *this.b))?;
        let backward = this
            .b_to_a
            .poll_copy(cx, Pin::new(&mut *this.b), Pin::new(&mut *this.a))?;
        if forward.is_ready() && backward.is_ready() {
            Poll::Ready(Ok((this.a_to_b.copied, this.b_to_a.copied)))
        } else {
            Poll::Pending
        }
    }
}

/// One direction of the copy.
struct Direction {
    /// Allocated at the first read, resized as `size` grows.
    buf: Vec<u8>,
    /// Size of the next allocation or growth step.
    size: usize,
    max: usize,
    /// Bytes `buf[start..end]` are read and not yet written.
    start: usize,
    end: usize,
    /// The reader returned EOF.
    eof: bool,
    /// Written since the last flush.
    unflushed: bool,
    /// The writer was shut down: this direction is over.
    finished: bool,
    copied: u64,
}

impl Direction {
    fn new(sizes: BufferSizes) -> Direction {
        let max = sizes.max.max(1);
        Direction {
            buf: Vec::new(),
            size: sizes.initial.clamp(1, max),
            max,
            start: 0,
            end: 0,
            eof: false,
            unflushed: false,
            finished: false,
            copied: 0,
        }
    }

    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        if self.finished {
            return Poll::Ready(Ok(()));
        }
        loop {
            if self.start == self.end && !self.eof {
                if self.buf.len() < self.size {
                    self.buf.resize(self.size, 0);
                }
                let mut read = ReadBuf::new(&mut self.buf);
                match reader.as_mut().poll_read(cx, &mut read) {
                    Poll::Ready(Ok(())) => {
                        let n = read.filled().len();
                        self.start = 0;
                        self.end = n;
                        if n == 0 {
                            self.eof = true;
                        } else if n == self.buf.len() && self.size < self.max {
                            // The read filled the buffer: more is waiting, take bigger bites.
                            self.size = self.size.saturating_mul(2).min(self.max);
                        }
                    }
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Pending => {
                        // Nothing more to read for now: push out what was written (TLS
                        // streams buffer) before sleeping.
                        if self.unflushed {
                            ready!(writer.as_mut().poll_flush(cx))?;
                            self.unflushed = false;
                        }
                        return Poll::Pending;
                    }
                }
            }
            while self.start < self.end {
                let n = ready!(
                    writer
                        .as_mut()
                        .poll_write(cx, &self.buf[self.start..self.end])
                )?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.start += n;
                self.copied += n as u64;
                self.unflushed = true;
            }
            if self.eof {
                ready!(writer.as_mut().poll_flush(cx))?;
                ready!(writer.as_mut().poll_shutdown(cx))?;
                self.finished = true;
                self.buf = Vec::new();
                return Poll::Ready(Ok(()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    /// Both directions carry their bytes in order, EOF on one side reaches the other while
    /// the opposite direction keeps flowing, and the buffers grow to the maximum only.
    #[tokio::test]
    async fn copies_both_ways_with_half_close() {
        let (mut client, mut proxy_client) = duplex(1 << 20);
        let (mut proxy_upstream, mut upstream) = duplex(1 << 20);
        let sizes = BufferSizes {
            initial: 16,
            max: 4096,
        };
        let proxy = tokio::spawn(async move {
            copy_bidirectional(&mut proxy_client, &mut proxy_upstream, sizes).await
        });
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        client.write_all(&payload).await.unwrap();
        client.shutdown().await.unwrap();
        let mut seen = Vec::new();
        upstream.read_to_end(&mut seen).await.unwrap();
        assert_eq!(seen, payload, "client → upstream bytes, then EOF");
        // The other direction still flows after the client's FIN.
        upstream.write_all(b"reply").await.unwrap();
        upstream.shutdown().await.unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"reply");
        let (up, down) = proxy.await.unwrap().unwrap();
        assert_eq!((up, down), (200_000, 5));
    }

    /// A bulk flow grows its buffer to the maximum and no further; a quiet direction keeps
    /// the initial size.
    #[tokio::test]
    async fn buffer_grows_with_the_flow_up_to_the_maximum() {
        let (mut client, mut proxy_client) = duplex(1 << 20);
        let (mut proxy_upstream, mut upstream) = duplex(1 << 20);
        let sizes = BufferSizes {
            initial: 1000,
            max: 3000,
        };
        let mut forward = Direction::new(sizes);
        let mut backward = Direction::new(sizes);
        client.write_all(&[7u8; 100_000]).await.unwrap();
        std::future::poll_fn(|cx| {
            let _ = forward.poll_copy(
                cx,
                Pin::new(&mut proxy_client),
                Pin::new(&mut proxy_upstream),
            )?;
            let _ = backward.poll_copy(
                cx,
                Pin::new(&mut proxy_upstream),
                Pin::new(&mut proxy_client),
            )?;
            if forward.copied == 100_000 {
                Poll::Ready(Ok::<(), io::Error>(()))
            } else {
                Poll::Pending
            }
        })
        .await
        .unwrap();
        assert_eq!(forward.buf.len(), 3000);
        assert_eq!(
            backward.buf.len(),
            1000,
            "a quiet direction keeps its initial size"
        );
        let mut seen = vec![0u8; 100_000];
        upstream.read_exact(&mut seen).await.unwrap();
        assert!(seen.iter().all(|&b| b == 7));
    }
}
