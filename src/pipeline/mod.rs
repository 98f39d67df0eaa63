//! The component graph of one receiver, resolved once per core: which `pyroscope.relabel`
//! stages an upload's labels go through and which `pyroscope.write` components (with their
//! destinations) they reach.
//!
//! Owns: the per-core component instances ([`Components`]: one [`Writer`] per
//! `pyroscope.write`, one [`Relabel`] per `pyroscope.relabel`, each with its cache and
//! metrics), a receiver's [`Pipeline`], and [`Pipeline::route`], which walks the graph for one
//! label set and yields every writer reached with the labels the rules left ([`Hop`]). Does not
//! own: the relabelling rules (`relabel`), the label rules of the upload APIs (`labels`),
//! building upstream requests (`server`), or queueing them ([`deliver`], `fanout`).
//!
//! Semantics follow Alloy's components: a relabel stage counts every profile it sees
//! (`processed`), passes an empty label set through untouched, and forwards the relabelled
//! labels to each of its `forward_to` targets in order or drops the profile (a dropped profile
//! is a success for the client: Alloy's `Append` returns nil). A writer reached by two paths
//! receives the profile twice, as Alloy's fan-out appends to every path. Hot path: one graph
//! walk per label set; a cached relabel result costs a hash lookup and an `Rc` clone.

pub mod deliver;

use std::cell::RefCell;
use std::rc::Rc;

use crate::config::{Config, Target};
use crate::metrics::{RelabelMetrics, WriterMetrics};
use crate::relabel::Labels;
use crate::relabel::cache::{Outcome, Relabeler};
use crate::upstream::Destination;

/// One `pyroscope.write` on one core: its label rules' arguments and its destinations.
#[derive(Debug)]
pub struct Writer {
    label: String,
    external_labels: Vec<(String, String)>,
    destinations: Vec<Rc<Destination>>,
    /// The component's own metrics (`pyroscope_write_latency` `*_total`).
    metrics: Rc<WriterMetrics>,
}

impl Writer {
    /// The component's label (`backend` for `pyroscope.write "backend"`).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `external_labels`, sorted by name; an empty value deletes.
    pub fn external_labels(&self) -> &[(String, String)] {
        &self.external_labels
    }

    /// One per `endpoint`, in the order written.
    pub fn destinations(&self) -> &[Rc<Destination>] {
        &self.destinations
    }

    pub fn metrics(&self) -> &Rc<WriterMetrics> {
        &self.metrics
    }
}

/// One `pyroscope.relabel` on one core: its rules with their result cache, where it forwards,
/// and its metrics.
#[derive(Debug)]
pub struct Relabel {
    label: String,
    /// The configuration the cache was built for (a reload keeps the cache when it is
    /// unchanged).
    spec: RelabelSpec,
    relabeler: Rc<RefCell<Relabeler>>,
    forward_to: Vec<Stage>,
    /// Shared with the component of the same label after a reload, so counters continue.
    metrics: Rc<RelabelMetrics>,
}

/// What a relabel component's results depend on.
#[derive(Debug, Clone, PartialEq)]
struct RelabelSpec {
    rules: Vec<crate::relabel::Rule>,
    max_cache_size: usize,
}

impl Relabel {
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn metrics(&self) -> &RelabelMetrics {
        &self.metrics
    }

    /// Runs the rules on `labels` (sorted by name): `None` when the profile is dropped,
    /// `Some(None)` when it goes on unchanged (an empty label set bypasses the rules, as in
    /// Alloy), `Some(Some(labels))` with the relabelled set otherwise.
    fn apply(&self, labels: &[(&str, &str)]) -> Option<Option<Rc<Labels>>> {
        if labels.is_empty() {
            self.metrics.record(true);
            return Some(None);
        }
        // The borrow ends before this function returns: never held across an await.
        let mut relabeler = self.relabeler.borrow_mut();
        let (outcome, hit) = relabeler.relabel(labels);
        self.metrics.record_lookup(hit, relabeler.len());
        match outcome {
            Outcome::Keep(l) => {
                self.metrics.record(true);
                Some(Some(l))
            }
            Outcome::Drop => {
                self.metrics.record(false);
                None
            }
        }
    }
}

/// A component that receives profiles: what a `forward_to` element resolves to.
#[derive(Debug, Clone)]
pub enum Stage {
    Write(Rc<Writer>),
    Relabel(Rc<Relabel>),
}

/// A writer reached by one label set.
#[derive(Debug)]
pub struct Hop<'p> {
    /// The position, in the receiver's `forward_to`, of the component this path starts at
    /// (Alloy's "appendable" index in Push errors).
    pub appendable: usize,
    /// Which leaf of the receiver's graph this is, `0..Pipeline::paths()`: stable for a given
    /// configuration, so the series of one Push that take the same path can be grouped.
    pub path: usize,
    pub writer: &'p Rc<Writer>,
    /// Whether the path starts at a relabel stage: Alloy's fan-out inside a relabel component
    /// collects its writers' errors into one `go-multierror` list, which the client then reads.
    pub through_relabel: bool,
    /// The labels the relabel stages left; `None` when no stage changed them (no relabel on
    /// the path, or an empty label set).
    pub labels: Option<Rc<Labels>>,
}

impl Hop<'_> {
    /// The labels for the writer: the relabelled set, or `input` when unchanged.
    pub fn labels<'a>(&'a self, input: &'a [(&'a str, &'a str)]) -> HopLabels<'a> {
        match &self.labels {
            Some(l) => HopLabels::Relabelled(l),
            None => HopLabels::Input(input),
        }
    }
}

/// The labels a writer receives on one [`Hop`].
#[derive(Debug, Clone, Copy)]
pub enum HopLabels<'a> {
    Input(&'a [(&'a str, &'a str)]),
    Relabelled(&'a Labels),
}

impl<'a> HopLabels<'a> {
    /// The pairs, sorted by name.
    pub fn pairs(self) -> Vec<(&'a str, &'a str)> {
        match self {
            HopLabels::Input(l) => l.to_vec(),
            HopLabels::Relabelled(l) => l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        }
    }
}

/// The graph one receiver's uploads go through on this core.
#[derive(Debug, Default)]
pub struct Pipeline {
    forward_to: Vec<Stage>,
    paths: usize,
}

fn count_paths(stages: &[Stage]) -> usize {
    stages
        .iter()
        .map(|s| match s {
            Stage::Write(_) => 1,
            Stage::Relabel(r) => count_paths(&r.forward_to),
        })
        .sum()
}

impl Pipeline {
    fn new(forward_to: Vec<Stage>) -> Self {
        let paths = count_paths(&forward_to);
        Pipeline { forward_to, paths }
    }

    /// How many distinct paths from the receiver end at a writer (the most [`Hop`]s one label
    /// set can produce).
    pub fn paths(&self) -> usize {
        self.paths
    }

    /// Every destination reachable from the receiver: the endpoints of every writer in
    /// `forward_to` order, depth first through relabel stages (whose rules do not apply: no
    /// labels travel with debug-info calls), each once. Alloy's receive_http asks its
    /// `forward_to` elements for their debug-info clients the same way
    /// (`receive_http/debuginfo.go`, `getDebugInfoClients`) and uses the first.
    pub fn reachable_destinations(&self) -> Vec<Rc<Destination>> {
        fn collect(stages: &[Stage], out: &mut Vec<Rc<Destination>>) {
            for stage in stages {
                match stage {
                    Stage::Write(w) => {
                        for d in &w.destinations {
                            if !out.iter().any(|o| Rc::ptr_eq(o, d)) {
                                out.push(d.clone());
                            }
                        }
                    }
                    Stage::Relabel(r) => collect(&r.forward_to, out),
                }
            }
        }
        let mut out = Vec::new();
        collect(&self.forward_to, &mut out);
        out
    }

    /// Walks the graph for `labels` (sorted by name) and appends one [`Hop`] per writer
    /// reached, in `forward_to` order, depth first.
    pub fn route<'p>(&'p self, labels: &[(&str, &str)], hops: &mut Vec<Hop<'p>>) {
        let mut path = 0;
        for (appendable, stage) in self.forward_to.iter().enumerate() {
            let through_relabel = matches!(stage, Stage::Relabel(_));
            let at = Start {
                appendable,
                through_relabel,
            };
            walk(stage, at, &mut path, labels, None, hops);
        }
    }
}

/// Where a walk started: the receiver's `forward_to` element.
#[derive(Clone, Copy)]
struct Start {
    appendable: usize,
    through_relabel: bool,
}

fn walk<'p>(
    stage: &'p Stage,
    at: Start,
    path: &mut usize,
    input: &[(&str, &str)],
    current: Option<Rc<Labels>>,
    hops: &mut Vec<Hop<'p>>,
) {
    match stage {
        Stage::Write(writer) => {
            hops.push(Hop {
                appendable: at.appendable,
                path: *path,
                writer,
                through_relabel: at.through_relabel,
                labels: current,
            });
            *path += 1;
        }
        Stage::Relabel(r) => {
            let outcome = match &current {
                Some(l) => {
                    let view: Vec<(&str, &str)> =
                        l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    r.apply(&view)
                }
                None => r.apply(input),
            };
            match outcome {
                Some(next) => {
                    let next = next.or(current);
                    for s in &r.forward_to {
                        walk(s, at, path, input, next.clone(), hops);
                    }
                }
                // Dropped: the paths below this stage are skipped but keep their numbers.
                None => *path += count_paths(&r.forward_to),
            }
        }
    }
}

/// Every component instance of one configuration on one core.
#[derive(Debug, Default)]
pub struct Components {
    writers: Vec<Rc<Writer>>,
    relabels: Vec<Rc<Relabel>>,
}

impl Components {
    /// Builds the instances: `destinations[w]` are the destinations of `config.writers[w]`.
    /// The graph has no cycle (the config builder rejects them), so every relabel stage is
    /// built after the stages it forwards to.
    pub fn build(config: &Config, destinations: Vec<Vec<Rc<Destination>>>) -> Self {
        Self::rebuild(config, destinations, None)
    }

    /// [`Components::build`] with a destination per endpoint that has no resolved address and
    /// belongs to core 0: for tests and benches that queue uploads but never send them.
    pub fn unresolved(config: &Config) -> std::io::Result<Self> {
        let destinations = config
            .writers
            .iter()
            .map(|w| {
                w.endpoints
                    .iter()
                    .map(|e| Destination::new(e, 0, vec![]).map(Rc::new))
                    .collect::<std::io::Result<Vec<_>>>()
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self::build(config, destinations))
    }

    /// [`Components::build`] for a reloaded configuration: a relabel component whose label
    /// existed in `previous` keeps its metrics, and its result cache too when its rules and
    /// `max_cache_size` are unchanged. Writers are always new (their `external_labels` may
    /// have changed) but keep their metrics when their label existed; the destinations passed
    /// in may be `previous`'s own.
    pub fn rebuild(
        config: &Config,
        destinations: Vec<Vec<Rc<Destination>>>,
        previous: Option<&Components>,
    ) -> Self {
        let writers: Vec<Rc<Writer>> = config
            .writers
            .iter()
            .zip(destinations)
            .map(|(w, destinations)| {
                // A writer that existed keeps its series (its `pyroscope_write_latency`
                // `*_total` histograms continue across the reload, as the counters do).
                let metrics = previous
                    .and_then(|p| p.writers.iter().find(|old| old.label == w.label))
                    .map_or_else(Rc::default, |old| old.metrics.clone());
                Rc::new(Writer {
                    label: w.label.clone(),
                    external_labels: w.external_labels.clone(),
                    destinations,
                    metrics,
                })
            })
            .collect();
        let mut built: Vec<Option<Rc<Relabel>>> = vec![None; config.relabels.len()];
        let previous = previous.map_or(&[][..], |p| p.relabels.as_slice());
        for i in 0..config.relabels.len() {
            build_relabel(config, i, &writers, previous, &mut built);
        }
        Components {
            writers,
            relabels: built.into_iter().flatten().collect(),
        }
    }

    /// The pipeline of a receiver whose `forward_to` is `targets`.
    pub fn pipeline(&self, targets: &[Target]) -> Pipeline {
        Pipeline::new(targets.iter().filter_map(|t| self.stage(*t)).collect())
    }

    fn stage(&self, t: Target) -> Option<Stage> {
        match t {
            Target::Writer(i) => self.writers.get(i).cloned().map(Stage::Write),
            Target::Relabel(i) => self.relabels.get(i).cloned().map(Stage::Relabel),
        }
    }

    /// Every destination, writer order then endpoint order (the metrics order).
    pub fn destinations(&self) -> impl Iterator<Item = &Rc<Destination>> {
        self.writers.iter().flat_map(|w| w.destinations.iter())
    }

    /// Every writer, in `Config::writers` order.
    pub fn writers(&self) -> &[Rc<Writer>] {
        &self.writers
    }

    /// Every relabel component, in `Config::relabels` order.
    pub fn relabels(&self) -> &[Rc<Relabel>] {
        &self.relabels
    }
}

fn build_relabel(
    config: &Config,
    i: usize,
    writers: &[Rc<Writer>],
    previous: &[Rc<Relabel>],
    built: &mut [Option<Rc<Relabel>>],
) -> Option<Rc<Relabel>> {
    if let Some(r) = built.get(i)?.clone() {
        return Some(r);
    }
    let spec = config.relabels.get(i)?;
    let forward_to = spec
        .forward_to
        .iter()
        .filter_map(|t| match *t {
            Target::Writer(w) => writers.get(w).cloned().map(Stage::Write),
            Target::Relabel(j) => {
                build_relabel(config, j, writers, previous, built).map(Stage::Relabel)
            }
        })
        .collect();
    let wanted = RelabelSpec {
        rules: spec.rules.clone(),
        max_cache_size: spec.max_cache_size,
    };
    let before = previous.iter().find(|p| p.label == spec.label);
    let relabeler = match before {
        Some(p) if p.spec == wanted => p.relabeler.clone(),
        _ => Rc::new(RefCell::new(Relabeler::new(
            spec.rules.clone(),
            spec.max_cache_size,
        ))),
    };
    let r = Rc::new(Relabel {
        label: spec.label.clone(),
        spec: wanted,
        relabeler,
        forward_to,
        metrics: before.map_or_else(Rc::default, |p| p.metrics.clone()),
    });
    built[i] = Some(r.clone());
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, ProcessEnvironment};
    use crate::metrics::{CoreSnapshot, RelabelSnapshot};

    fn config_with_rule(regex: &str, env: &str) -> Config {
        let text = format!(
            r#"
pyroscope.receive_http "default" {{
  forward_to = [pyroscope.relabel.clean.receiver]
}}
pyroscope.relabel "clean" {{
  forward_to = [pyroscope.write.a.receiver]
  rule {{
    action = "labeldrop"
    regex  = "{regex}"
  }}
}}
pyroscope.write "a" {{
  endpoint {{
    url = "http://127.0.0.1:1"
  }}
  external_labels = {{ env = "{env}" }}
}}
"#
        );
        config::load_str("t.alloy", &text, &ProcessEnvironment)
            .expect("valid config")
            .config
    }

    fn relabel_counts(c: &Components) -> RelabelSnapshot {
        let snap = CoreSnapshot::capture(
            std::iter::empty(),
            std::iter::empty(),
            c.relabels().iter().map(|r| r.metrics()),
            0,
        );
        snap.relabels[0]
    }

    /// Routes one label set through the receiver's pipeline; returns the writer's external
    /// `env` and the labels it receives.
    fn route_once(c: &Components, cfg: &Config) -> (String, Vec<(String, String)>) {
        let pipeline = c.pipeline(&cfg.receivers[0].forward_to);
        let mut hops = Vec::new();
        let input = [("pod", "p1"), ("service_name", "app")];
        pipeline.route(&input, &mut hops);
        assert_eq!(hops.len(), 1);
        let env = hops[0].writer.external_labels()[0].1.clone();
        let labels = hops[0]
            .labels(&input)
            .pairs()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (env, labels)
    }

    #[test]
    fn a_rebuild_keeps_destinations_relabel_counters_and_an_unchanged_cache() {
        let v1 = config_with_rule("pod", "one");
        let dest =
            Rc::new(Destination::new(&v1.writers[0].endpoints[0], 0, vec![]).expect("destination"));
        let first = Components::build(&v1, vec![vec![dest.clone()]]);
        let (env, labels) = route_once(&first, &v1);
        assert_eq!(env, "one");
        assert_eq!(labels, [("service_name".to_string(), "app".to_string())]);
        let s = relabel_counts(&first);
        assert_eq!((s.processed, s.cache_hits, s.cache_misses), (1, 0, 1));

        // Same rules, new external labels: the cache and counters carry on.
        let v2 = config_with_rule("pod", "two");
        let second = Components::rebuild(&v2, vec![vec![dest.clone()]], Some(&first));
        assert!(Rc::ptr_eq(second.destinations().next().unwrap(), &dest));
        let (env, _) = route_once(&second, &v2);
        assert_eq!(env, "two");
        let s = relabel_counts(&second);
        assert_eq!((s.processed, s.cache_hits, s.cache_misses), (2, 1, 1));

        // New rules: a new cache (a miss), the counters still carry on.
        let v3 = config_with_rule("nothing", "two");
        let third = Components::rebuild(&v3, vec![vec![dest]], Some(&second));
        let (_, labels) = route_once(&third, &v3);
        assert_eq!(labels.len(), 2, "pod kept by the new rule: {labels:?}");
        let s = relabel_counts(&third);
        assert_eq!((s.processed, s.cache_hits, s.cache_misses), (3, 1, 2));
    }
}
