//! Small I/O pieces shared by the server, the TLS record layer and the upstream client.
//!
//! Owns: appending a socket read to the end of a `BytesMut` with monoio's owned-buffer API
//! ([`read_more`]), the zero-copy vectored write of `Bytes` pieces ([`iovec`], the crate's one
//! module with `unsafe` code), and the choice of monoio driver ([`Driver`]). Does not own: any
//! protocol logic or the runtime itself (`worker`). Hot path: yes. A leaf: depends on nothing
//! else in the crate.

mod driver;
pub mod iovec;

pub use driver::Driver;

use bytes::BytesMut;
use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::AsyncReadRent;

/// Appends at most the spare capacity of `buf` (growing it to at least `min_spare` first) with
/// one read. Returns the bytes read (0 = end of stream) and the buffer.
pub async fn read_more<S: AsyncReadRent>(
    stream: &mut S,
    mut buf: BytesMut,
    min_spare: usize,
) -> (std::io::Result<usize>, BytesMut) {
    if buf.capacity() - buf.len() < min_spare {
        buf.reserve(min_spare);
    }
    let len = buf.len();
    let cap = buf.capacity();
    let slice: SliceMut<BytesMut> = buf.slice_mut(len..cap);
    let (res, slice) = stream.read(slice).await;
    (res, slice.into_inner())
}
