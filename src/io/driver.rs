//! Which monoio I/O driver a core thread runs.
//!
//! Owns: the [`Driver`] choice as the command line names it and its resolution on this machine
//! (`auto` means io_uring where the kernel allows it, else epoll). Does not own: building the
//! runtime (`worker`) or parsing the flag (`cli`). Cold path.

/// Which monoio driver a core runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Auto,
    Uring,
    Legacy,
}

impl Driver {
    /// The driver `Auto` resolves to on this machine.
    pub fn resolve(self) -> Driver {
        match self {
            Driver::Auto if monoio::utils::detect_uring() => Driver::Uring,
            Driver::Auto => Driver::Legacy,
            d => d,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Driver::Auto => "auto",
            Driver::Uring => "uring",
            Driver::Legacy => "legacy",
        }
    }
}
