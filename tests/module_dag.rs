//! The crate's top-level modules depend on each other without cycles.
//!
//! Intended order, top-down: `gateway` → `admin`/`worker` → `server` → `fanout` → `upstream` →
//! leaves (`h1`, `labels`, `push`, `config`, `tls`, `io`, `metrics`, `sync`, `budget`,
//! `secrets`, `capture`, `upload`, ...). An edge `A → B` is any reference from a file of module
//! `A` to module `B`: `use crate::B…`, grouped `use crate::{…, B::x, …}` (over any number of
//! lines), an inline `crate::B::…` path, and `super::…` chains that climb to the crate root.
//! Comments, strings and character literals are skipped. The top-level modules are the `mod`
//! declarations of `src/lib.rs`; `src/main.rs` is a separate crate and is not scanned.
//!
//! `#[cfg(test)]` code is INCLUDED: a test helper that reaches up closes a cycle just as well
//! (a module's tests are compiled into the module). Edges seen only in `#[cfg(test)]` items
//! (inline or out-of-line `mod`s, and any other item carrying exactly `#[cfg(test)]`) are
//! marked `(test)` in the report so they are easy to tell apart.
//!
//! On a cycle the test fails naming, for each cycle, the edge that closes it in a depth-first
//! walk (modules and their dependencies visited in name order) and where that edge is written.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

/// Edges known to close a cycle that is being removed elsewhere. Each entry is `(from, to)`.
/// The test also fails when a listed edge no longer exists, so the list cannot go stale.
/// Empty: the modules form a DAG.
const PENDING_CYCLE_EDGES: &[(&str, &str)] = &[];

/// Where one reference from a module to another is written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Site {
    file: String,
    line: usize,
    test_only: bool,
}

/// `from → to → every site`, all in name order.
type Graph = BTreeMap<String, BTreeMap<String, Vec<Site>>>;

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Rust source to identifiers, `::` and single punctuation characters, without comments,
/// string, byte-string, raw-string and character literals, numbers and lifetimes.
fn tokenize(src: &str) -> Vec<Token> {
    let s: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    while i < s.len() {
        let c = s[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '/' if at(i + 1) == '/' => {
                while i < s.len() && s[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                let mut nest = 0;
                while i < s.len() {
                    if s[i] == '/' && at(i + 1) == '*' {
                        nest += 1;
                        i += 2;
                    } else if s[i] == '*' && at(i + 1) == '/' {
                        nest -= 1;
                        i += 2;
                        if nest == 0 {
                            break;
                        }
                    } else {
                        if s[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            '"' => i = skip_string(&s, i, &mut line),
            '\'' => {
                // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
                if at(i + 1) == '\\' {
                    i += 3;
                    while i < s.len() && s[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if at(i + 2) == '\'' {
                    i += 3;
                } else {
                    i += 1;
                    while i < s.len() && is_ident_continue(s[i]) {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit() => {
                while i < s.len() && is_ident_continue(s[i]) {
                    i += 1;
                }
            }
            c if is_ident_start(c) => {
                // Literal prefixes: b"", b'', r"", r#""#, br"", c"", cr"".
                let start = i;
                let mut j = i;
                while j < s.len() && is_ident_continue(s[j]) {
                    j += 1;
                }
                let word: String = s[start..j].iter().collect();
                let next = at(j);
                let raw_prefix = matches!(word.as_str(), "r" | "br" | "cr");
                if matches!(word.as_str(), "b" | "c") && next == '"' {
                    i = skip_string(&s, j, &mut line);
                } else if word == "b" && next == '\'' {
                    i = j + 1;
                    if at(i) == '\\' {
                        i += 1;
                    }
                    i += 1;
                    while i < s.len() && s[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if raw_prefix && (next == '"' || (next == '#' && at(j + 1) != '[')) {
                    // `r#ident` is a raw identifier, `r#"…"#` a raw string.
                    let mut hashes = 0;
                    let mut k = j;
                    while at(k) == '#' {
                        hashes += 1;
                        k += 1;
                    }
                    if at(k) != '"' {
                        // Raw identifier: `r#name`.
                        let id_start = k;
                        let mut e = k;
                        while e < s.len() && is_ident_continue(s[e]) {
                            e += 1;
                        }
                        out.push(Token {
                            tok: Tok::Ident(s[id_start..e].iter().collect()),
                            line,
                        });
                        i = e;
                        continue;
                    }
                    k += 1;
                    loop {
                        if k >= s.len() {
                            break;
                        }
                        if s[k] == '\n' {
                            line += 1;
                        }
                        if s[k] == '"' && (1..=hashes).all(|h| at(k + h) == '#') {
                            k += 1 + hashes;
                            break;
                        }
                        k += 1;
                    }
                    i = k;
                } else {
                    out.push(Token {
                        tok: Tok::Ident(word),
                        line,
                    });
                    i = j;
                }
            }
            ':' if at(i + 1) == ':' => {
                out.push(Token {
                    tok: Tok::PathSep,
                    line,
                });
                i += 2;
            }
            c => {
                out.push(Token {
                    tok: Tok::Punct(c),
                    line,
                });
                i += 1;
            }
        }
    }
    out
}

/// Skips a `"…"` literal starting at `s[i] == '"'`; returns the index after it.
fn skip_string(s: &[char], mut i: usize, line: &mut usize) -> usize {
    i += 1;
    while i < s.len() {
        match s[i] {
            '\\' => {
                if s.get(i + 1) == Some(&'\n') {
                    *line += 1;
                }
                i += 2;
            }
            '"' => return i + 1,
            '\n' => {
                *line += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    i
}

// ---------------------------------------------------------------------------------------------
// Edges
// ---------------------------------------------------------------------------------------------

/// The module path a file defines: `src/a.rs` and `src/a/mod.rs` → `[a]`, `src/a/b.rs` →
/// `[a, b]`, `src/lib.rs` → `[]`. `None` for files that are not part of the library.
fn module_path(rel: &str) -> Option<Vec<String>> {
    let rel = rel.strip_prefix("src/")?.strip_suffix(".rs")?;
    if rel == "main" || rel.starts_with("bin/") {
        return None;
    }
    if rel == "lib" {
        return Some(Vec::new());
    }
    let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    Some(parts)
}

/// The `mod` items declared at the top level of `lib.rs`.
fn top_level_modules(lib: &str) -> BTreeSet<String> {
    let toks = tokenize(lib);
    let mut depth = 0usize;
    let mut out = BTreeSet::new();
    for (i, t) in toks.iter().enumerate() {
        match &t.tok {
            Tok::Punct('{' | '(' | '[') => depth += 1,
            Tok::Punct('}' | ')' | ']') => depth = depth.saturating_sub(1),
            Tok::Ident(m) if m == "mod" && depth == 0 => {
                if let Some(Token {
                    tok: Tok::Ident(name),
                    ..
                }) = toks.get(i + 1)
                {
                    out.insert(name.clone());
                }
            }
            _ => {}
        }
    }
    out
}

/// The first identifier of each item directly inside the `{…}` group starting at `toks[open]`.
fn group_heads(toks: &[Token], open: usize) -> Vec<(String, usize)> {
    let mut heads = Vec::new();
    let mut nest = 0usize;
    let mut expect_head = true;
    for t in &toks[open..] {
        match &t.tok {
            Tok::Punct('{') => {
                nest += 1;
                if nest > 1 {
                    expect_head = false;
                }
            }
            Tok::Punct('}') => {
                nest -= 1;
                if nest == 0 {
                    break;
                }
            }
            Tok::Punct(',') if nest == 1 => expect_head = true,
            Tok::Ident(name) if nest == 1 && expect_head => {
                heads.push((name.clone(), t.line));
                expect_head = false;
            }
            _ if nest == 1 => expect_head = false,
            _ => {}
        }
    }
    heads
}

/// What one file says: its references to crate-root modules, and the out-of-line modules it
/// declares under `#[cfg(test)]`.
#[derive(Debug, Default)]
struct FileScan {
    /// `(target top-level module, line, inside #[cfg(test)])`
    refs: Vec<(String, usize, bool)>,
    /// Module paths of `#[cfg(test)] mod name;` declarations.
    test_mods: Vec<Vec<String>>,
}

fn is_cfg_test(attr: &[Token]) -> bool {
    let words: Vec<&Tok> = attr.iter().map(|t| &t.tok).collect();
    words
        == [
            &Tok::Ident("cfg".into()),
            &Tok::Punct('('),
            &Tok::Ident("test".into()),
            &Tok::Punct(')'),
        ]
}

fn scan_file(path: &[String], src: &str) -> FileScan {
    let toks = tokenize(src);
    let mut scan = FileScan::default();
    let mut depth = 0usize;
    // Inline `mod name {` blocks: (name, depth outside the block).
    let mut inline: Vec<(String, usize)> = Vec::new();
    // Inside a `#[cfg(test)]` item that began at this depth.
    let mut test_item: Option<usize> = None;
    let mut pending_test = false;
    let mut file_test = false;
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        // Attributes: `#[…]` and `#![…]`, skipped whole.
        if t.tok == Tok::Punct('#') {
            let inner = toks.get(i + 1).map(|t| &t.tok) == Some(&Tok::Punct('!'));
            let open = i + 1 + usize::from(inner);
            if toks.get(open).map(|t| &t.tok) == Some(&Tok::Punct('[')) {
                let mut nest = 0usize;
                let mut close = open;
                for (k, t) in toks.iter().enumerate().skip(open) {
                    match t.tok {
                        Tok::Punct('[') => nest += 1,
                        Tok::Punct(']') => {
                            nest -= 1;
                            if nest == 0 {
                                close = k;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                if is_cfg_test(&toks[open + 1..close]) {
                    if inner && depth == 0 && inline.is_empty() {
                        file_test = true;
                    } else if !inner {
                        pending_test = true;
                    }
                }
                i = close + 1;
                continue;
            }
        }
        if pending_test {
            pending_test = false;
            if test_item.is_none() {
                test_item = Some(depth);
            }
        }
        let in_test = file_test || test_item.is_some();
        let here: Vec<String> = path
            .iter()
            .cloned()
            .chain(inline.iter().map(|(n, _)| n.clone()))
            .collect();
        match &t.tok {
            Tok::Punct('{' | '(' | '[') => depth += 1,
            Tok::Punct(c @ ('}' | ')' | ']')) => {
                depth = depth.saturating_sub(1);
                if *c == '}' {
                    if inline.last().is_some_and(|(_, d)| *d == depth) {
                        inline.pop();
                    }
                    if test_item == Some(depth) {
                        test_item = None;
                    }
                }
            }
            Tok::Punct(';') if test_item == Some(depth) => test_item = None,
            Tok::Ident(w) if w == "mod" => {
                if let Some(Tok::Ident(name)) = toks.get(i + 1).map(|t| &t.tok) {
                    match toks.get(i + 2).map(|t| &t.tok) {
                        Some(Tok::Punct('{')) => inline.push((name.clone(), depth)),
                        Some(Tok::Punct(';')) if in_test => {
                            let mut p = here.clone();
                            p.push(name.clone());
                            scan.test_mods.push(p);
                        }
                        _ => {}
                    }
                }
            }
            Tok::Ident(w)
                if (w == "crate" || w == "super")
                    && (i == 0 || toks[i - 1].tok != Tok::PathSep) =>
            {
                // `crate::`, or a `super::` chain that climbs to the crate root.
                let mut k = i;
                let at_root = if w == "crate" {
                    k += 1;
                    true
                } else {
                    let mut ups = 0;
                    while toks.get(k).map(|t| &t.tok) == Some(&Tok::Ident("super".into()))
                        && toks.get(k + 1).map(|t| &t.tok) == Some(&Tok::PathSep)
                    {
                        ups += 1;
                        k += 2;
                    }
                    // `k` is now after the last `::`; step back onto it.
                    k = k.saturating_sub(1);
                    ups > 0 && ups == here.len()
                };
                if at_root && toks.get(k).map(|t| &t.tok) == Some(&Tok::PathSep) {
                    match toks.get(k + 1).map(|t| &t.tok) {
                        Some(Tok::Ident(name)) => {
                            scan.refs.push((name.clone(), toks[k + 1].line, in_test))
                        }
                        Some(Tok::Punct('{')) => {
                            for (name, line) in group_heads(&toks, k + 1) {
                                scan.refs.push((name, line, in_test));
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    scan
}

/// Builds the module graph from `(path relative to the crate root, contents)` pairs.
fn graph_of(files: &[(String, String)]) -> Graph {
    let lib = files
        .iter()
        .find(|(p, _)| p == "src/lib.rs")
        .map(|(_, s)| s.as_str())
        .expect("src/lib.rs is among the files");
    let modules = top_level_modules(lib);
    let mut scans = Vec::new();
    let mut test_mods: Vec<Vec<String>> = Vec::new();
    for (rel, src) in files {
        let Some(path) = module_path(rel) else {
            continue;
        };
        let scan = scan_file(&path, src);
        test_mods.extend(scan.test_mods.iter().cloned());
        scans.push((rel, path, scan));
    }
    let mut graph = Graph::new();
    for m in &modules {
        graph.entry(m.clone()).or_default();
    }
    for (rel, path, scan) in scans {
        let Some(from) = path.first() else {
            continue; // lib.rs: the root is not a module of the graph.
        };
        if !modules.contains(from) {
            continue;
        }
        let file_is_test = test_mods.iter().any(|t| path.starts_with(t));
        for (to, line, test_only) in scan.refs {
            if &to == from || !modules.contains(&to) {
                continue;
            }
            graph
                .entry(from.clone())
                .or_default()
                .entry(to)
                .or_default()
                .push(Site {
                    file: rel.clone(),
                    line,
                    test_only: test_only || file_is_test,
                });
        }
    }
    graph
}

// ---------------------------------------------------------------------------------------------
// Cycles
// ---------------------------------------------------------------------------------------------

/// One cycle, as found by the depth-first walk: the modules in order (the first repeated at
/// the end) and the edge that closed it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cycle {
    path: Vec<String>,
    closing: (String, String),
}

/// Every back edge of a depth-first walk that starts from each module in name order and
/// follows dependencies in name order. Removing these edges leaves a DAG; none means the
/// graph is one.
fn find_cycles(graph: &Graph, skip: &[(&str, &str)]) -> Vec<Cycle> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    fn visit(
        graph: &Graph,
        skip: &[(&str, &str)],
        node: &str,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
        out: &mut Vec<Cycle>,
    ) {
        marks.insert(node.to_string(), Mark::OnStack);
        stack.push(node.to_string());
        for to in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
            if skip.contains(&(node, to.as_str())) {
                continue;
            }
            match marks.get(to).copied().unwrap_or(Mark::New) {
                Mark::New => visit(graph, skip, to, marks, stack, out),
                Mark::OnStack => {
                    let start = stack.iter().position(|m| m == to).expect("on the stack");
                    let mut path = stack[start..].to_vec();
                    path.push(to.clone());
                    out.push(Cycle {
                        path,
                        closing: (node.to_string(), to.clone()),
                    });
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(node.to_string(), Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut out = Vec::new();
    for node in graph.keys() {
        if marks.get(node).copied().unwrap_or(Mark::New) == Mark::New {
            visit(graph, skip, node, &mut marks, &mut Vec::new(), &mut out);
        }
    }
    out
}

fn describe(graph: &Graph, c: &Cycle) -> String {
    let (from, to) = &c.closing;
    let sites = &graph[from][to];
    let first = &sites[0];
    let more = if sites.len() > 1 {
        format!(" and {} more", sites.len() - 1)
    } else {
        String::new()
    };
    let test = if sites.iter().all(|s| s.test_only) {
        " (test)"
    } else {
        ""
    };
    format!(
        "cycle: {} (edge {from} -> {to}{test} in {}:{}{more})",
        c.path.join(" -> "),
        first.file,
        first.line
    )
}

fn edge_list(graph: &Graph) -> String {
    let mut out = String::new();
    for (from, tos) in graph {
        let list: Vec<String> = tos
            .iter()
            .map(|(to, sites)| {
                if sites.iter().all(|s| s.test_only) {
                    format!("{to} (test)")
                } else {
                    to.clone()
                }
            })
            .collect();
        let list = if list.is_empty() {
            "(nothing)".to_string()
        } else {
            list.join(", ")
        };
        let _ = writeln!(out, "  {from} -> {list}");
    }
    out
}

fn read_crate() -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p
                    .strip_prefix(root)
                    .expect("under the crate root")
                    .to_string_lossy()
                    .replace('\\', "/");
                let text = std::fs::read_to_string(&p)
                    .unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                out.push((rel, text));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    walk(root, &root.join("src"), &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

#[test]
fn top_level_modules_form_a_dag() {
    let graph = graph_of(&read_crate());
    let mut problems = Vec::new();
    for &(from, to) in PENDING_CYCLE_EDGES {
        if !graph.get(from).is_some_and(|tos| tos.contains_key(to)) {
            problems.push(format!(
                "PENDING_CYCLE_EDGES lists {from} -> {to}, which no longer exists: remove the entry"
            ));
        }
    }
    for c in find_cycles(&graph, PENDING_CYCLE_EDGES) {
        problems.push(describe(&graph, &c));
    }
    assert!(
        problems.is_empty(),
        "{}\n\nmodule edges (PENDING_CYCLE_EDGES: {PENDING_CYCLE_EDGES:?}):\n{}",
        problems.join("\n"),
        edge_list(&graph)
    );
}

#[test]
fn the_scan_sees_the_crate() {
    let graph = graph_of(&read_crate());
    for m in ["config", "h1", "server", "upstream", "worker"] {
        assert!(graph.contains_key(m), "module {m} not found");
    }
    // Edges written three different ways today: `use crate::x::…;`, an inline path, and a
    // grouped `use`. If these vanish, the scanner (not the code) is probably broken.
    for (from, to) in [
        ("upstream", "h1"),
        ("worker", "server"),
        ("gateway", "config"),
    ] {
        assert!(
            graph.get(from).is_some_and(|t| t.contains_key(to)),
            "edge {from} -> {to} not found:\n{}",
            edge_list(&graph)
        );
    }
}

fn synthetic(files: &[(&str, &str)]) -> Graph {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(p, s)| (p.to_string(), s.to_string()))
        .collect();
    graph_of(&files)
}

fn edges(graph: &Graph) -> Vec<String> {
    graph
        .iter()
        .flat_map(|(from, tos)| {
            tos.iter().map(move |(to, sites)| {
                let test = if sites.iter().all(|s| s.test_only) {
                    " (test)"
                } else {
                    ""
                };
                format!("{from}->{to}{test}")
            })
        })
        .collect()
}

const LIB: &str = "pub mod a;\npub mod b;\nmod c;\npub mod d;\npub fn root() {}\n";

#[test]
fn edges_come_from_every_path_form_and_not_from_comments_or_strings() {
    let g = synthetic(&[
        ("src/lib.rs", LIB),
        (
            "src/a.rs",
            "use crate::{\n    b::X,\n    c::{self, Y},\n};\n// crate::d::nope\n\
             const S: &str = \"crate::d::nope\";\nconst R: &str = r#\"crate::d::\"#;\n\
             fn f<'a>(x: &'a str) -> char { crate::root(); 'c' }\n",
        ),
        ("src/b/mod.rs", "mod inner;\npub(crate) fn g() {}\n"),
        ("src/b/inner.rs", "fn h() { super::super::d::k(); }\n"),
        (
            "src/d.rs",
            "pub fn k() {}\n#[cfg(test)]\nmod tests {\n    use crate::a;\n}\n",
        ),
        ("src/main.rs", "use crate::a;\n"),
    ]);
    assert_eq!(edges(&g), ["a->b", "a->c", "b->d", "d->a (test)"]);
    let site = &g["b"]["d"][0];
    assert_eq!((site.file.as_str(), site.line), ("src/b/inner.rs", 1));
}

#[test]
fn cfg_test_items_and_out_of_line_test_modules_are_marked() {
    let g = synthetic(&[
        ("src/lib.rs", LIB),
        (
            "src/a.rs",
            "#[cfg(test)]\nuse crate::b;\nuse crate::c;\n#[cfg(test)]\nmod tests;\n\
             fn f() { #[cfg(test)] crate::d::k(); let _ = [0u8; 2]; }\n",
        ),
        ("src/a/tests.rs", "use crate::d::k;\nuse crate::b::z;\n"),
    ]);
    assert_eq!(edges(&g), ["a->b (test)", "a->c", "a->d (test)"]);
}

#[test]
fn the_cycle_finder_names_the_closing_edge_of_each_cycle() {
    let g = synthetic(&[
        ("src/lib.rs", LIB),
        ("src/a.rs", "use crate::b;\n"),
        ("src/b.rs", "use crate::c;\nuse crate::d;\n"),
        ("src/c.rs", "\n\nuse crate::a::x;\n"),
        ("src/d.rs", "fn f() { crate::b::g() }\n"),
    ]);
    let cycles = find_cycles(&g, &[]);
    let text: Vec<String> = cycles.iter().map(|c| describe(&g, c)).collect();
    assert_eq!(
        text,
        [
            "cycle: a -> b -> c -> a (edge c -> a in src/c.rs:3)",
            "cycle: b -> d -> b (edge d -> b in src/d.rs:1)",
        ]
    );
    // Skipping the closing edges leaves a DAG; a DAG has no cycles.
    assert!(find_cycles(&g, &[("c", "a"), ("d", "b")]).is_empty());
    let dag = synthetic(&[
        ("src/lib.rs", LIB),
        ("src/a.rs", "use crate::{b, c, d};\n"),
        ("src/b.rs", "use crate::c;\n"),
        ("src/c.rs", "use crate::d;\n"),
    ]);
    assert!(find_cycles(&dag, &[]).is_empty());
}
