//! Per-core memo of the `/ingest` label work for label sets seen before.
//!
//! Owns: remembering, per receiver per core, what `receive_http`'s label stage made of a `name`
//! query value ([`labels::receive_stage`]) and what each `pyroscope.write` on a path without
//! relabelling made of those labels ([`labels::write_stage`]), so that an SDK sending the same
//! label set every ten seconds costs one hash lookup instead of two parses, a validation and a
//! render per upload. Bounded by [`MAX_PLAN_BYTES`]; emptied when a reload swaps the receiver's
//! configuration. Does not own: the label rules (`labels`), the other query parameters (`from`,
//! `until` and the rest change with every upload and are re-encoded each time by `ingest`), or
//! the relabel stages (which keep their own per-core cache and count their own metrics, so a
//! relabelled path is computed per upload). Pure per-core state: `Rc`/`RefCell`, no borrow held
//! past a call.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::labels::{self, IngestLabels, InvalidLabels};

/// Bytes of `name` values and rendered label sets one receiver keeps per core before it
/// starts over. A fleet of 1,000 services with 5 profile types and ~150-byte label sets fills
/// about 1.5 MiB; past the bound the memo is emptied and refills with what is sent next, so
/// memory stays bounded whatever clients send.
pub const MAX_PLAN_BYTES: usize = 512 * 1024;

/// Bookkeeping charged per plan on top of its strings (map entry, `Rc`, label spans).
const PLAN_OVERHEAD_BYTES: usize = 160;

/// One writer's upstream `name`, `QueryEscape`d, or why it rejected the labels.
type Written = Result<Box<str>, InvalidLabels>;

/// What one `name` value turns into on one receiver's current configuration.
#[derive(Debug)]
pub struct Plan {
    /// `receive_http`'s labels for the value.
    pub received: IngestLabels,
    /// The upstream `name` (escaped) of each pipeline path whose writer gets `received`
    /// unchanged, by path index; computed the first time that path is taken.
    written: Box<[OnceCell<Written>]>,
}

impl Plan {
    /// The writer on `path`'s `name` for the received labels (`external_labels` are that
    /// writer's), `QueryEscape`d for the upstream query: computed once, then shared by every upload with this `name` value. `None`
    /// for a path index outside the graph the plan was made for.
    pub fn written(
        &self,
        path: usize,
        external_labels: &[(String, String)],
    ) -> Option<Result<&str, InvalidLabels>> {
        let cell = self.written.get(path)?;
        let written = cell.get_or_init(|| {
            labels::write_stage(&self.received, external_labels)
                .map(|name| labels::escaped_name(&name).into())
        });
        Some(written.as_deref().map_err(Clone::clone))
    }
}

/// The memo of one receiver on one core.
#[derive(Debug, Default)]
pub struct IngestPlans {
    plans: RefCell<HashMap<Box<[u8]>, Rc<Plan>>>,
    bytes: Cell<usize>,
}

impl IngestPlans {
    /// The plan for the decoded `name` value `name` on a pipeline of `paths` writer paths.
    pub fn plan(&self, name: &[u8], paths: usize) -> Rc<Plan> {
        if let Some(plan) = self.plans.borrow().get(name) {
            return plan.clone();
        }
        let received = labels::receive_stage_of(name);
        let cost = PLAN_OVERHEAD_BYTES + name.len() + received.text_len() * (1 + paths);
        let plan = Rc::new(Plan {
            received,
            written: (0..paths).map(|_| OnceCell::new()).collect(),
        });
        if cost > MAX_PLAN_BYTES {
            return plan;
        }
        let mut plans = self.plans.borrow_mut();
        if self.bytes.get() + cost > MAX_PLAN_BYTES {
            plans.clear();
            plans.shrink_to_fit();
            self.bytes.set(0);
        }
        plans.insert(name.into(), plan.clone());
        self.bytes.set(self.bytes.get() + cost);
        plan
    }

    /// Forgets every plan (the receiver's configuration changed).
    pub fn clear(&self) {
        let mut plans = self.plans.borrow_mut();
        plans.clear();
        plans.shrink_to_fit();
        self.bytes.set(0);
    }

    /// Plans kept now.
    pub fn len(&self) -> usize {
        self.plans.borrow().len()
    }

    /// Whether no plan is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes charged against [`MAX_PLAN_BYTES`] now.
    pub fn charged_bytes(&self) -> usize {
        self.bytes.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn second_upload_of_a_label_set_gets_the_same_plan() {
        let plans = IngestPlans::default();
        let a = plans.plan(b"app{pod=p1}", 2);
        let b = plans.plan(b"app{pod=p1}", 2);
        let other = plans.plan(b"app{pod=p2}", 2);
        assert!(Rc::ptr_eq(&a, &b));
        assert!(!Rc::ptr_eq(&a, &other));
        assert_eq!(plans.len(), 2);
        assert_eq!(a.received, labels::receive_stage_of(b"app{pod=p1}"));
    }

    #[test]
    fn written_name_is_the_write_stage_of_each_paths_writer() {
        let plans = IngestPlans::default();
        let plan = plans.plan(b"app{pod=p1}", 2);
        let prod = ext(&[("env", "prod")]);
        let dev = ext(&[("env", "dev")]);
        assert_eq!(
            plan.written(0, &prod),
            Some(Ok("app%7Benv%3Dprod%2Cpod%3Dp1%2Cservice_name%3Dapp%7D"))
        );
        assert_eq!(
            plan.written(1, &dev),
            Some(Ok("app%7Benv%3Ddev%2Cpod%3Dp1%2Cservice_name%3Dapp%7D"))
        );
        // Kept per path: path 0's writer is the one it was computed for.
        assert_eq!(
            plan.written(0, &dev),
            Some(Ok("app%7Benv%3Dprod%2Cpod%3Dp1%2Cservice_name%3Dapp%7D"))
        );
        assert_eq!(plan.written(2, &prod), None, "outside the graph");
    }

    #[test]
    fn rejected_label_set_keeps_its_error() {
        let plans = IngestPlans::default();
        let plan = plans.plan(b"", 1);
        let expected = labels::write_stage(&labels::receive_stage_of(b""), &[]).map(|_| "");
        assert!(expected.is_err());
        assert_eq!(plan.written(0, &[]), Some(expected.clone()));
        assert_eq!(plan.written(0, &[]), Some(expected));
    }

    #[test]
    fn memo_starts_over_past_its_byte_bound() {
        let plans = IngestPlans::default();
        let mut n = 0;
        while plans.charged_bytes() + 1024 < MAX_PLAN_BYTES {
            plans.plan(format!("app{{pod=p{n}}}").as_bytes(), 1);
            n += 1;
        }
        let before = plans.len();
        assert_eq!(before, n);
        for i in 0..64 {
            plans.plan(format!("other{{pod=p{i}}}").as_bytes(), 1);
        }
        assert!(plans.len() < before, "emptied once full: {}", plans.len());
        assert!(plans.charged_bytes() <= MAX_PLAN_BYTES);
        let (kept, charged) = (plans.len(), plans.charged_bytes());
        let huge = vec![b'a'; MAX_PLAN_BYTES];
        plans.plan(&huge, 1);
        assert_eq!(
            (plans.len(), plans.charged_bytes()),
            (kept, charged),
            "a value over the bound is not kept"
        );
    }
}
