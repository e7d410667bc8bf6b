//! File bodies of the local sources: a range of a file on disk, or bytes in memory.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::{ByteStream, FileBody};
use crate::error::ServiceError;

/// Read size of file bodies.
const CHUNK: u64 = 1 << 20;

/// A file opened (and checked) when its head was decided: every range is read from that open
/// file, positionally, in chunks on blocking threads, one at a time (memory stays flat). A file
/// that ends early ends the body with an error.
pub(crate) struct DiskBody {
    file: Arc<File>,
    /// For messages only.
    path: PathBuf,
}

impl DiskBody {
    pub(crate) fn new(file: File, path: PathBuf) -> Self {
        Self {
            file: Arc::new(file),
            path,
        }
    }
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(f, buf, at)
}

#[cfg(windows)]
fn read_at(f: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(f, buf, at)
}

/// Fills `buf` from `at` on; an early end of file is an error.
fn read_exact_at(f: &File, mut buf: &mut [u8], mut at: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(f, buf, at) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file ended early",
                ));
            }
            Ok(n) => {
                buf = &mut buf[n..];
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[async_trait]
impl FileBody for DiskBody {
    async fn open(&self, start: u64, end: u64) -> Result<ByteStream, ServiceError> {
        let file = self.file.clone();
        let path = self.path.clone();
        let s = futures::stream::try_unfold((file, start), move |(file, at)| {
            let path = path.clone();
            async move {
                if at > end {
                    return Ok(None);
                }
                let n = (end - at + 1).min(CHUNK) as usize;
                let (file, buf) = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; n];
                    read_exact_at(&file, &mut buf, at).map_err(|e| {
                        io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                    })?;
                    Ok::<_, io::Error>((file, buf))
                })
                .await
                .map_err(io::Error::other)??;
                Ok(Some((Bytes::from(buf), (file, at + n as u64))))
            }
        });
        Ok(s.boxed())
    }

    /// Local bytes: nothing comes from the upstream.
    fn cached(&self) -> Option<bool> {
        Some(true)
    }
}

/// Bytes held in memory (a small git blob).
pub(crate) struct InlineBody(pub(crate) Bytes);

#[async_trait]
impl FileBody for InlineBody {
    async fn open(&self, start: u64, end: u64) -> Result<ByteStream, ServiceError> {
        let (a, b) = (start as usize, end as usize);
        if b >= self.0.len() || a > b {
            return Err(ServiceError::internal("range outside an in-memory file"));
        }
        let piece = self.0.slice(a..=b);
        Ok(futures::stream::once(async move { Ok(piece) }).boxed())
    }

    /// Local bytes: nothing comes from the upstream.
    fn cached(&self) -> Option<bool> {
        Some(true)
    }
}
