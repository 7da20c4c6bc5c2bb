//! A response body fed from a blocking task, for answers too large to hold
//! in memory: `GET /v1/backup` writes the snapshot into a [`ChannelWriter`]
//! on the blocking pool as it reads it, and hyper sends each chunk as it
//! comes. The channel is small, so a slow client slows the writer instead
//! of growing a buffer; a client that stops reading for [`STALL_TIMEOUT`]
//! ends the stream (the writer holds a read transaction open).

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

/// Bytes gathered before a chunk is sent.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight between the writer and hyper.
const CHANNEL_CHUNKS: usize = 4;
/// Longest wait for the client to take a chunk.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The receiving end: a hyper body.
pub struct ChannelBody {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
}

/// The sending end: `io::Write` for a blocking task (not for async code:
/// it blocks while the channel is full).
pub struct ChannelWriter {
    chunks: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
    runtime: Handle,
}

/// A connected body and writer. Call from inside the runtime.
pub fn channel() -> (ChannelBody, ChannelWriter) {
    let (sender, receiver) = mpsc::channel(CHANNEL_CHUNKS);
    (
        ChannelBody { chunks: receiver },
        ChannelWriter {
            chunks: sender,
            buffer: Vec::with_capacity(CHUNK_BYTES),
            runtime: Handle::current(),
        },
    )
}

impl ChannelWriter {
    /// Ends the body with an error: hyper closes the connection without
    /// the end of the chunked body, so the client sees a cut transfer, never
    /// a short answer that looks whole.
    pub fn fail(self, error: io::Error) {
        let _ = self.chunks.try_send(Err(error));
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        let sent = self.runtime.block_on(tokio::time::timeout(
            STALL_TIMEOUT,
            self.chunks.send(Ok(chunk)),
        ));
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client went away",
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {}s", STALL_TIMEOUT.as_secs()),
            )),
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(Frame::data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chunks_arrive_in_order_and_a_failure_cuts_the_body() {
        let (body, mut writer) = channel();
        let writing = tokio::task::spawn_blocking(move || {
            for i in 0..200u32 {
                writer
                    .write_all(&[u8::try_from(i % 251).unwrap(); 1000])
                    .unwrap();
            }
            writer.flush().unwrap();
        });
        let collected = body.collect().await.unwrap().to_bytes();
        writing.await.unwrap();
        assert_eq!(collected.len(), 200_000);
        assert!(collected[..1000].iter().all(|&b| b == 0));
        assert!(collected[199_000..].iter().all(|&b| b == 199));

        let (body, mut writer) = channel();
        tokio::task::spawn_blocking(move || {
            writer.write_all(b"partial").unwrap();
            writer.flush().unwrap();
            writer.fail(io::Error::other("snapshot failed"));
        })
        .await
        .unwrap();
        assert!(body.collect().await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_stops_when_the_client_goes_away() {
        let (body, mut writer) = channel();
        drop(body);
        let result = tokio::task::spawn_blocking(move || writer.write_all(&[0; CHUNK_BYTES]))
            .await
            .unwrap();
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }
}
