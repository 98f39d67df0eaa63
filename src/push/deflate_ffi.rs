//! Whole-buffer raw DEFLATE inflation (RFC 1951) with libdeflate, for gzip'd Push bodies whose
//! inflated size the gzip trailer announces.
//!
//! Owns: calling libdeflate's C API (`libdeflate-sys`), the `unsafe` kept in this file behind a
//! safe [`inflate_exact`], and one decompressor per thread (a core thread keeps its own; no
//! lock). Does not own: the gzip framing, the limit or the fallback ([`super::gzip`]).
//!
//! Why: on the Python SDK's shape (a 61 KB pprof, the request gzip'd to 18 KB) inflating is
//! about half of the gateway's CPU (tuning.md, "Every upload shape side by side with nginx"),
//! and libdeflate inflates a whole buffer faster than a streaming inflater
//! (`cargo bench --bench push -- push_gzip`). Its safe binding has no call that reports where
//! the DEFLATE data ends, which Go's gzip rules need (the trailer follows it, then only another
//! member may), so this file calls `libdeflate_deflate_decompress_ex` directly.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ptr::NonNull;

use libdeflate_sys::{
    libdeflate_alloc_decompressor, libdeflate_decompressor, libdeflate_deflate_decompress_ex,
    libdeflate_free_decompressor, libdeflate_result_LIBDEFLATE_SUCCESS,
};

/// An owned libdeflate decompressor (~10 KB of tables, reused for every body on its thread).
struct Decompressor(NonNull<libdeflate_decompressor>);

impl Decompressor {
    fn new() -> Option<Decompressor> {
        // SAFETY: no preconditions; returns NULL only when out of memory (checked).
        NonNull::new(unsafe { libdeflate_alloc_decompressor() }).map(Decompressor)
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `libdeflate_alloc_decompressor` and is freed once,
        // here; nothing else holds it (the type is neither Clone nor Send).
        unsafe { libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

thread_local! {
    static DECOMPRESSOR: RefCell<Option<Decompressor>> = const { RefCell::new(None) };
}

/// Inflates the raw DEFLATE stream at the start of `input` into all of `out`: `Some(consumed)`
/// (the input bytes the stream took, the rest being what follows it) when it decompresses to
/// exactly `out.len()` bytes; `None` when the data is not valid DEFLATE, inflates to more or
/// fewer bytes, or no decompressor could be allocated. `out` may be partly written on `None`.
pub fn inflate_exact(input: &[u8], out: &mut [u8]) -> Option<usize> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        if slot.is_none() {
            *slot = Decompressor::new();
        }
        let d = slot.as_ref()?;
        let mut consumed = 0usize;
        // SAFETY: `d` is a live decompressor used by this thread alone; `input` and `out` are
        // valid for reads of `input.len()` and writes of `out.len()` bytes for the duration of
        // the call, and libdeflate touches nothing beyond them; passing NULL for the actual
        // output size asks for exactly `out.len()` bytes (else LIBDEFLATE_SHORT_OUTPUT or
        // LIBDEFLATE_INSUFFICIENT_SPACE); `consumed` is a valid place for the input size.
        let result = unsafe {
            libdeflate_deflate_decompress_ex(
                d.0.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut consumed,
                std::ptr::null_mut(),
            )
        };
        (result == libdeflate_result_LIBDEFLATE_SUCCESS && consumed <= input.len())
            .then_some(consumed)
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::inflate_exact;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn a_stream_inflates_to_exactly_its_size_and_reports_where_it_ends() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut input = deflate(&data);
        let len = input.len();
        input.extend_from_slice(b"trailer!");
        let mut out = vec![0u8; data.len()];
        assert_eq!(inflate_exact(&input, &mut out), Some(len));
        assert_eq!(out, data);
    }

    #[test]
    fn a_wrong_size_or_bad_data_is_none() {
        let data = vec![42u8; 10_000];
        let input = deflate(&data);
        assert_eq!(inflate_exact(&input, &mut vec![0u8; 9_999]), None);
        assert_eq!(inflate_exact(&input, &mut vec![0u8; 10_001]), None);
        assert_eq!(inflate_exact(&[0xff, 0xff, 0xff], &mut [0u8; 4]), None);
        assert_eq!(inflate_exact(&[], &mut [0u8; 4]), None);
    }
}
