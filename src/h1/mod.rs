//! placeholder: replaced by the h1 work.
