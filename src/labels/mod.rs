//! placeholder: replaced by the labels work.
