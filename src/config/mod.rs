//! placeholder: replaced by the config work.
pub mod model;
