//! The per-core result cache of one `pyroscope.relabel` component: an LRU keyed by the input
//! label set, so a fleet that sends the same label sets pays for the rules once.
//!
//! Owns: the cache (capacity, lookup, eviction) and the component-level behaviour around
//! [`super::process`]. Does not own: the rules themselves (see `super`).
//!
//! Shaped like Alloy's (grafana/alloy `internal/component/pyroscope/relabel/relabel.go`): an LRU
//! of `max_cache_size` entries keyed by a 64-bit hash of the label set, each entry a short list
//! of `(original, result)` so hash collisions resolve by comparing the labels. Differences, on
//! purpose:
//! - Alloy stores a drop as an empty label set and reads any cached empty set back as a drop,
//!   so a rule chain that keeps a profile with no labels left answers "keep" once and "drop"
//!   from the cache after. Here the cache never changes a result: drops and empty keeps are
//!   distinct [`Outcome`]s.
//! - the hash is foldhash, seeded per cache, over the name/value bytes with `0xFF` framing (a
//!   byte UTF-8 never contains), instead of Prometheus' `model.LabelSet.Fingerprint`; each
//!   collision list holds at most [`MAX_COLLISIONS`] label sets (Alloy's grows without bound).
//!
//! Kept from Alloy: an empty label set bypasses the rules (Alloy's `Append` forwards it
//! unchanged before relabelling), and the capacity counts hash keys, as Alloy's LRU does.

use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::num::NonZeroUsize;
use std::rc::Rc;

use lru::LruCache;

use super::{Labels, Rule};

/// What the rules made of one label set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The label set to forward (may equal the input).
    Keep(Rc<Labels>),
    /// A rule dropped the profile.
    Drop,
}

/// Label sets kept per hash value; a further colliding set replaces the oldest.
pub const MAX_COLLISIONS: usize = 4;

/// Alloy's check on `max_cache_size` (hashicorp/golang-lru v2 `lru.New`, which
/// `pyroscope.relabel`'s `New` calls): the size must be positive. Returns it as a capacity.
pub fn validate_cache_size(size: i64) -> Result<usize, String> {
    if size <= 0 {
        return Err("must provide a positive size".to_owned());
    }
    usize::try_from(size).map_err(|_| "must provide a positive size".to_owned())
}

/// The cache key is already a hash: use it as is.
#[derive(Debug, Default, Clone, Copy)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug)]
struct Entry {
    original: Labels,
    outcome: Outcome,
}

/// A component's rules plus its LRU cache of `max_cache_size` entries.
#[derive(Debug)]
pub struct Relabeler {
    rules: Vec<Rule>,
    capacity: usize,
    cache: Option<LruCache<u64, Vec<Entry>, BuildHasherDefault<IdentityHasher>>>,
    seed: foldhash::fast::RandomState,
}

impl Relabeler {
    /// `capacity` 0 caches nothing (Alloy refuses it at config time; see
    /// [`validate_cache_size`]).
    pub fn new(rules: Vec<Rule>, capacity: usize) -> Self {
        let cache = NonZeroUsize::new(capacity)
            .map(|cap| LruCache::with_hasher(cap, BuildHasherDefault::default()));
        Self {
            rules,
            capacity,
            cache,
            seed: foldhash::fast::RandomState::default(),
        }
    }

    /// The rules this relabeler applies.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The most entries the cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn key(&self, labels: &[(&str, &str)]) -> u64 {
        let mut h = self.seed.build_hasher();
        for (name, value) in labels {
            h.write(name.as_bytes());
            h.write_u8(0xFF);
            h.write(value.as_bytes());
            h.write_u8(0xFF);
        }
        h.finish()
    }

    /// The outcome for `labels` (sorted by name, no empty values) and whether it came from the
    /// cache. The cache never changes a result.
    pub fn relabel(&mut self, labels: &[(&str, &str)]) -> (Outcome, bool) {
        if labels.is_empty() {
            // Alloy's Append forwards an empty label set without relabelling.
            return (Outcome::Keep(Rc::new(Labels::new())), false);
        }
        let key = self.key(labels);
        self.relabel_keyed(labels, key)
    }

    fn relabel_keyed(&mut self, labels: &[(&str, &str)], key: u64) -> (Outcome, bool) {
        if let Some(e) = self
            .cache
            .as_mut()
            .and_then(|c| c.get(&key))
            .and_then(|entries| entries.iter().find(|e| same(&e.original, labels)))
        {
            return (e.outcome.clone(), true);
        }
        let original: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut owned = original.clone();
        let outcome = if super::process(&self.rules, &mut owned) {
            Outcome::Keep(Rc::new(owned))
        } else {
            Outcome::Drop
        };
        if let Some(cache) = self.cache.as_mut() {
            let entry = Entry {
                original,
                outcome: outcome.clone(),
            };
            match cache.get_mut(&key) {
                Some(entries) => {
                    if entries.len() >= MAX_COLLISIONS {
                        entries.remove(0);
                    }
                    entries.push(entry);
                }
                None => {
                    cache.push(key, vec![entry]);
                }
            }
        }
        (outcome, false)
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, LruCache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn same(original: &Labels, labels: &[(&str, &str)]) -> bool {
    original.len() == labels.len()
        && original
            .iter()
            .zip(labels)
            .all(|((n, v), (ln, lv))| n == ln && v == lv)
}

#[cfg(test)]
mod tests {
    use super::super::{Action, RuleSpec};
    use super::*;

    fn rule(spec: RuleSpec) -> Rule {
        Rule::new(spec).expect("valid rule")
    }

    fn drop_env_dev() -> Rule {
        rule(RuleSpec {
            source_labels: vec!["env".into()],
            regex: "dev".into(),
            action: Action::Drop,
            ..RuleSpec::default()
        })
    }

    fn labels(env: &str) -> Vec<(&'static str, String)> {
        vec![("env", env.to_owned()), ("service_name", "api".to_owned())]
    }

    fn borrow<'a>(l: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        l.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    #[test]
    fn second_lookup_of_the_same_labels_is_a_hit_with_the_same_result() {
        let mut r = Relabeler::new(vec![drop_env_dev()], 10);
        let prod = labels("prod");
        let (first, hit1) = r.relabel(&borrow(&prod));
        let (second, hit2) = r.relabel(&borrow(&prod));
        assert!(!hit1);
        assert!(hit2);
        assert_eq!(first, second);
        let Outcome::Keep(out) = second else {
            panic!("kept")
        };
        assert_eq!(
            *out,
            vec![
                ("env".to_owned(), "prod".to_owned()),
                ("service_name".to_owned(), "api".to_owned())
            ]
        );
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn hit_shares_the_cached_labels() {
        let mut r = Relabeler::new(vec![drop_env_dev()], 10);
        let prod = labels("prod");
        let (Outcome::Keep(a), _) = r.relabel(&borrow(&prod)) else {
            panic!("kept")
        };
        let (Outcome::Keep(b), true) = r.relabel(&borrow(&prod)) else {
            panic!("kept from cache")
        };
        assert!(Rc::ptr_eq(&a, &b));
    }

    #[test]
    fn drops_are_cached() {
        let mut r = Relabeler::new(vec![drop_env_dev()], 10);
        let dev = labels("dev");
        assert_eq!(r.relabel(&borrow(&dev)), (Outcome::Drop, false));
        assert_eq!(r.relabel(&borrow(&dev)), (Outcome::Drop, true));
    }

    #[test]
    fn kept_empty_result_stays_a_keep_from_the_cache() {
        // Alloy would answer "drop" on the second call; we keep the real result.
        let drop_all = rule(RuleSpec {
            regex: ".*".into(),
            action: Action::LabelDrop,
            ..RuleSpec::default()
        });
        let mut r = Relabeler::new(vec![drop_all], 10);
        let prod = labels("prod");
        let empty = Outcome::Keep(Rc::new(Labels::new()));
        assert_eq!(r.relabel(&borrow(&prod)), (empty.clone(), false));
        assert_eq!(r.relabel(&borrow(&prod)), (empty, true));
    }

    #[test]
    fn least_recently_used_entry_is_evicted_at_capacity() {
        let mut r = Relabeler::new(vec![drop_env_dev()], 2);
        let (a, b, c) = (labels("a"), labels("b"), labels("c"));
        r.relabel(&borrow(&a));
        r.relabel(&borrow(&b));
        assert!(r.relabel(&borrow(&a)).1); // a is now most recent
        r.relabel(&borrow(&c)); // evicts b
        assert_eq!(r.len(), 2);
        assert!(r.relabel(&borrow(&a)).1);
        assert!(r.relabel(&borrow(&c)).1);
        assert!(!r.relabel(&borrow(&b)).1);
    }

    #[test]
    fn colliding_label_sets_resolve_by_comparing_labels() {
        let mut r = Relabeler::new(vec![drop_env_dev()], 10);
        let (prod, dev) = (labels("prod"), labels("dev"));
        assert!(!r.relabel_keyed(&borrow(&prod), 7).1);
        assert_eq!(r.relabel_keyed(&borrow(&dev), 7), (Outcome::Drop, false));
        assert_eq!(r.len(), 1);
        assert!(matches!(
            r.relabel_keyed(&borrow(&prod), 7),
            (Outcome::Keep(_), true)
        ));
        assert_eq!(r.relabel_keyed(&borrow(&dev), 7), (Outcome::Drop, true));
    }

    #[test]
    fn empty_label_set_bypasses_the_rules() {
        let add = rule(RuleSpec {
            target_label: "x".into(),
            replacement: "y".into(),
            ..RuleSpec::default()
        });
        let mut r = Relabeler::new(vec![add], 10);
        assert_eq!(
            r.relabel(&[]),
            (Outcome::Keep(Rc::new(Labels::new())), false)
        );
        assert!(r.is_empty());
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let mut r = Relabeler::new(vec![drop_env_dev()], 0);
        let prod = labels("prod");
        r.relabel(&borrow(&prod));
        assert!(!r.relabel(&borrow(&prod)).1);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn cache_size_must_be_positive() {
        assert_eq!(validate_cache_size(10_000), Ok(10_000));
        assert_eq!(
            validate_cache_size(0),
            Err("must provide a positive size".to_owned())
        );
        assert_eq!(
            validate_cache_size(-1),
            Err("must provide a positive size".to_owned())
        );
    }
}
