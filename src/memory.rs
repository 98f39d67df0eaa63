//! Giving memory freed after a burst back to the operating system: the allocator call kept in
//! this file behind a safe [`release_free_memory`].
//!
//! Why: mimalloc (the global allocator, `src/main.rs`) keeps freed pages for reuse and returns
//! them (`madvise`) only once they have been free for `purge_delay` (1 s) *and* the thread
//! calls into the allocator again. A core that goes quiet after a burst (thousands of SDKs
//! connecting and uploading at once, then sitting idle on their keep-alive connections) would
//! keep the burst's buffers resident for as long as it stays quiet. The worker calls
//! [`release_free_memory`] once a core has been quiet for a while after activity; measured with
//! `loadtest idle` (tuning.md, "Idle keep-alive connections").
//!
//! Owns: the call. Does not own: deciding when (the worker's housekeeping task).
#![allow(unsafe_code)]

/// Frees what the calling thread's mimalloc heap holds unused and returns free pages to the
/// operating system. Costs a walk over the thread's pages: call it when the thread is quiet,
/// not per request.
pub fn release_free_memory() {
    // SAFETY: `mi_collect` takes no pointers and only touches the calling thread's heap and
    // mimalloc's own (internally synchronised) arenas; it is safe to call from any thread at
    // any time, whether or not mimalloc is the global allocator.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
