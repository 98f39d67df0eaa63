//! Arbitrary bytes through every public entry point of `pyrogate::labels`: none may panic.
//! The input is used whole as a query string and as a label-set string; its halves also feed
//! the external labels and the Push label pairs.
#![no_main]

use pyrogate::labels;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let query = labels::parse_query(data);
    let _ = query.encode();
    let received = labels::receive_stage(&query);

    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_at(
        text.char_indices()
            .nth(text.chars().count() / 2)
            .map_or(0, |(i, _)| i),
    );
    let external = vec![
        (a.to_owned(), b.to_owned()),
        ("cluster".to_owned(), String::new()),
    ];
    if let Ok(name) = labels::write_stage(&received, &external) {
        let _ = labels::upstream_query(&query, &name);
    }

    if let Ok(set) = labels::parse_bytes(data) {
        let _ = set.normalized();
    }
    if let Err(e) = labels::parse(&text) {
        let _ = e.to_string();
    }

    let pairs = vec![(a.to_owned(), b.to_owned()), (b.to_owned(), a.to_owned())];
    match labels::push_series_labels(&pairs, &external) {
        Ok(out) => assert!(out.windows(2).all(|w| w[0].0 < w[1].0)),
        Err(e) => {
            let _ = e.client_message();
        }
    }

    let _ = labels::join_path(a, b);
    let mut escaped = String::new();
    labels::query_escape(data, &mut escaped);
});
