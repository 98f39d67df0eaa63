//! The OTLP JSON side of OTLP profiles (`Content-Type: application/json`): a shallow decoder of
//! `ExportProfilesServiceRequest` and the resource rewrite, in JSON.
//!
//! The OTLP JSON mapping is protojson (OTLP specification, "JSON Protobuf Encoding"):
//! lowerCamelCase member names (protojson also accepts the proto names, and so does this
//! decoder: `resourceProfiles` or `resource_profiles`), `null` for a field leaves it unset, a
//! field named twice is an error, unknown members are skipped but must be valid JSON. The
//! lexer is the Push decoder's (`push::json`): RFC 8259 syntax, UTF-8, escapes checked, nesting
//! of skipped values bounded. The decoder descends into `resourceProfiles[].resource` (its
//! attributes) and counts `scopeProfiles[].profiles[]`; everything else is checked for syntax
//! only and left to Pyroscope.
//!
//! A rewrite keeps JSON (the upstream request has the client's `Content-Type`): each kept
//! element's `resource` value is replaced by a new object holding the kept attributes' own
//! text, the new attributes and the resource's other members' text; everything else is
//! slices of the body, so the work is independent of profile size.

use std::ops::Range;

use bytes::Bytes;

use super::{Attribute, DecodeError, Export, Location, ResourceProfiles};
use crate::push::json::Lexer;

pub use crate::push::JsonProblem;

/// Appends `s` as a JSON string (Go's `encoding/json` escaping, as the Push codec writes).
pub fn push_string(out: &mut String, s: &str) {
    crate::push::json::push_go_string(out, s);
}

fn fail(at: Location) -> impl Fn(JsonProblem) -> DecodeError {
    move |problem| DecodeError::Json { at, problem }
}

/// Marks a field as seen; a second sighting (under either name) is an error, as in protojson.
fn mark(seen: &mut u8, bit: u8, field: &'static str) -> Result<(), JsonProblem> {
    if *seen & (1 << bit) != 0 {
        return Err(JsonProblem::DuplicateField(field));
    }
    *seen |= 1 << bit;
    Ok(())
}

/// Decodes the parts of an OTLP JSON `ExportProfilesServiceRequest` the gateway reads.
pub fn decode(body: &Bytes) -> Result<Export, DecodeError> {
    let top = fail(Location::default());
    if body.is_empty() {
        return Err(top(JsonProblem::Empty));
    }
    let text =
        std::str::from_utf8(body).map_err(|e| top(JsonProblem::InvalidUtf8(e.valid_up_to())))?;
    let mut lx = Lexer::new(text);
    if lx.peek() != Some(b'{') {
        let found = lx.found();
        return Err(top(JsonProblem::NotAnObject(found)));
    }
    lx.pos += 1;
    let mut export = Export::default();
    let mut dictionary = false;
    let mut seen = 0u8;
    let mut first = true;
    while let Some(key) = lx.next_key(&mut first).map_err(&top)? {
        match &*key {
            "resourceProfiles" | "resource_profiles" => {
                mark(&mut seen, 0, "resourceProfiles").map_err(&top)?;
                if lx.null().map_err(&top)? {
                    continue;
                }
                lx.begin_array("resourceProfiles").map_err(&top)?;
                let mut first = true;
                while lx.next_elem(&mut first).map_err(&top)? {
                    let at = Location {
                        resource_profiles: Some(export.resources.len()),
                    };
                    let rp = resource_profiles(&mut lx).map_err(fail(at))?;
                    export.resources.push(rp);
                }
            }
            "dictionary" => {
                mark(&mut seen, 1, "dictionary").map_err(&top)?;
                if lx.null().map_err(&top)? {
                    continue;
                }
                if lx.peek() != Some(b'{') {
                    return Err(top(lx.wrong_type("dictionary", "an object")));
                }
                lx.skip_value().map_err(&top)?;
                dictionary = true;
            }
            _ => lx.skip_value().map_err(&top)?,
        }
    }
    lx.end().map_err(&top)?;
    if export.resources.is_empty() {
        return Err(DecodeError::NoResourceProfiles);
    }
    if !dictionary {
        return Err(DecodeError::NoDictionary);
    }
    Ok(export)
}

fn resource_profiles(lx: &mut Lexer<'_>) -> Result<ResourceProfiles, JsonProblem> {
    lx.peek();
    let start = lx.pos;
    lx.begin_object("resourceProfiles")?;
    let mut rp = ResourceProfiles::default();
    let mut seen = 0u8;
    let mut first = true;
    while let Some(key) = lx.next_key(&mut first)? {
        match &*key {
            "resource" => {
                mark(&mut seen, 0, "resource")?;
                lx.peek();
                let from = lx.pos;
                if !lx.null()? {
                    resource(lx, &mut rp.attributes)?;
                }
                rp.resource.push(from..lx.pos);
            }
            "scopeProfiles" | "scope_profiles" => {
                mark(&mut seen, 1, "scopeProfiles")?;
                if lx.null()? {
                    continue;
                }
                lx.begin_array("scopeProfiles")?;
                let mut first = true;
                while lx.next_elem(&mut first)? {
                    rp.profiles += scope_profiles(lx)?;
                }
            }
            _ => lx.skip_value()?,
        }
    }
    rp.element = start..lx.pos;
    rp.content = rp.element.clone();
    Ok(rp)
}

/// Counts the `profiles` of one `ScopeProfiles` object.
fn scope_profiles(lx: &mut Lexer<'_>) -> Result<u64, JsonProblem> {
    lx.begin_object("scopeProfiles")?;
    let mut n = 0;
    let mut seen = 0u8;
    let mut first = true;
    while let Some(key) = lx.next_key(&mut first)? {
        if &*key != "profiles" {
            lx.skip_value()?;
            continue;
        }
        mark(&mut seen, 0, "profiles")?;
        if lx.null()? {
            continue;
        }
        lx.begin_array("profiles")?;
        let mut first = true;
        while lx.next_elem(&mut first)? {
            if lx.peek() != Some(b'{') {
                return Err(lx.wrong_type("profiles", "an object"));
            }
            lx.skip_value()?;
            n += 1;
        }
    }
    Ok(n)
}

/// What a `Resource` object is made of, with byte ranges relative to the lexer's text.
#[derive(Default)]
struct ResourceText {
    /// Each attribute's object text, with its key when it has one.
    attributes: Vec<(Range<usize>, Option<String>)>,
    /// Every other member: its name and its value's text.
    others: Vec<(String, Range<usize>)>,
}

fn resource(lx: &mut Lexer<'_>, out: &mut Vec<Attribute>) -> Result<ResourceText, JsonProblem> {
    lx.begin_object("resource")?;
    let mut text = ResourceText::default();
    let mut seen = 0u8;
    let mut first = true;
    while let Some(key) = lx.next_key(&mut first)? {
        let bit = match &*key {
            "attributes" => 0,
            "droppedAttributesCount" | "dropped_attributes_count" => 1,
            "entityRefs" | "entity_refs" => 2,
            _ => 7,
        };
        if bit < 7 {
            mark(&mut seen, bit, "resource field")?;
        }
        if bit != 0 {
            lx.peek();
            let from = lx.pos;
            lx.skip_value()?;
            text.others.push((key.into_owned(), from..lx.pos));
            continue;
        }
        if lx.null()? {
            continue;
        }
        lx.begin_array("attributes")?;
        let mut first = true;
        while lx.next_elem(&mut first)? {
            lx.peek();
            let from = lx.pos;
            let a = key_value(lx)?;
            text.attributes
                .push((from..lx.pos, a.as_ref().map(|a| a.key.clone())));
            out.extend(a);
        }
    }
    Ok(text)
}

/// A `KeyValue` object: `None` without a string key.
fn key_value(lx: &mut Lexer<'_>) -> Result<Option<Attribute>, JsonProblem> {
    lx.begin_object("attributes")?;
    let mut key = None;
    let mut value = None;
    let mut seen = 0u8;
    let mut first = true;
    while let Some(name) = lx.next_key(&mut first)? {
        match &*name {
            "key" => {
                mark(&mut seen, 0, "key")?;
                if !lx.null()? {
                    key = Some(lx.string_field("key")?);
                }
            }
            "value" => {
                mark(&mut seen, 1, "value")?;
                if !lx.null()? {
                    value = any_value(lx)?;
                }
            }
            _ => lx.skip_value()?,
        }
    }
    Ok(key.map(|key| Attribute {
        key,
        string_value: value,
    }))
}

/// An `AnyValue` object: the string when the oneof is `stringValue`.
fn any_value(lx: &mut Lexer<'_>) -> Result<Option<String>, JsonProblem> {
    lx.begin_object("value")?;
    let mut value = None;
    let mut first = true;
    while let Some(name) = lx.next_key(&mut first)? {
        match &*name {
            "stringValue" | "string_value" => value = Some(lx.string_field("stringValue")?),
            _ => lx.skip_value()?,
        }
    }
    Ok(value)
}

/// See [`super::rewrite`].
pub fn rewrite(
    body: &Bytes,
    export: &Export,
    keep: &[usize],
    set: &[(String, String)],
) -> Vec<Bytes> {
    let (Some(first), Some(last)) = (export.resources.first(), export.resources.last()) else {
        return vec![body.clone()];
    };
    let mut parts = Vec::with_capacity(keep.len() * 4 + 2);
    parts.push(body.slice(..first.element.start));
    for (n, &i) in keep.iter().enumerate() {
        let Some(rp) = export.resources.get(i) else {
            continue;
        };
        if n > 0 {
            parts.push(Bytes::from_static(b","));
        }
        if set.is_empty() {
            parts.push(body.slice(rp.element.clone()));
            continue;
        }
        match rp.resource.first() {
            Some(r) => {
                parts.push(body.slice(rp.element.start..r.start));
                parts.push(Bytes::from(resource_json(body, r.clone(), set)));
                parts.push(body.slice(r.end..rp.element.end));
            }
            None => {
                let open = rp.element.start + 1;
                let empty = body
                    .get(open..rp.element.end)
                    .and_then(|rest| rest.iter().find(|b| !b.is_ascii_whitespace()))
                    == Some(&b'}');
                let mut member = String::from("{\"resource\":");
                member.push_str(&resource_json(body, 0..0, set));
                if !empty {
                    member.push(',');
                }
                parts.push(Bytes::from(member));
                parts.push(body.slice(open..rp.element.end));
            }
        }
    }
    parts.push(body.slice(last.element.end..));
    parts
}

/// The new `resource` object for the resource whose value is `range` of `body` (`null`, an
/// object, or empty for none).
fn resource_json(body: &[u8], range: Range<usize>, set: &[(String, String)]) -> String {
    let src = body
        .get(range)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or_default();
    let mut lx = Lexer::new(src);
    let text = match lx.peek() {
        Some(b'{') => resource(&mut lx, &mut Vec::new()).unwrap_or_default(),
        _ => ResourceText::default(),
    };
    let mut out = String::with_capacity(src.len() + 64 * set.len());
    out.push_str("{\"attributes\":[");
    let mut first = true;
    for (r, key) in &text.attributes {
        if key
            .as_ref()
            .is_some_and(|k| set.iter().any(|(name, _)| name == k))
        {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(src.get(r.clone()).unwrap_or_default());
    }
    for (k, v) in set.iter().filter(|(_, v)| !v.is_empty()) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str("{\"key\":");
        push_string(&mut out, k);
        out.push_str(",\"value\":{\"stringValue\":");
        push_string(&mut out, v);
        out.push_str("}}");
    }
    out.push(']');
    for (name, r) in &text.others {
        out.push(',');
        push_string(&mut out, name);
        out.push(':');
        out.push_str(src.get(r.clone()).unwrap_or_default());
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(parts: &[Bytes]) -> String {
        let bytes: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        String::from_utf8(bytes).unwrap()
    }

    const BODY: &str = r#"{ "resourceProfiles": [
        {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}},
                                     {"key": "env", "value": {"stringValue": "old"}},
                                     {"key": "pid", "value": {"intValue": "7"}}],
                      "droppedAttributesCount": 1},
         "scopeProfiles": [{"profiles": [{"sampleType": {}}, {}]}]},
        {"scope_profiles": [], "schemaUrl": "s"} ],
      "dictionary": {"stringTable": [""]} }"#;

    #[test]
    fn decodes_attributes_and_profiles_with_either_field_name() {
        let e = decode(&Bytes::from_static(BODY.as_bytes())).unwrap();
        assert_eq!(e.resources.len(), 2);
        let a = &e.resources[0].attributes;
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].key, "service.name");
        assert_eq!(a[0].string_value.as_deref(), Some("api"));
        assert_eq!(a[2].string_value, None);
        assert_eq!(e.resources[0].profiles, 2);
        assert_eq!(e.resources[1].profiles, 0);
        assert!(e.resources[1].resource.is_empty());
    }

    #[test]
    fn rewrite_replaces_and_adds_attributes_keeping_other_text() {
        let body = Bytes::from_static(BODY.as_bytes());
        let e = decode(&body).unwrap();
        let set = vec![("env".to_string(), "prod".to_string())];
        let out = join(&rewrite(&body, &e, &[0, 1], &set));
        let want = r#"{ "resourceProfiles": [
        {"resource": {"attributes":[{"key": "service.name", "value": {"stringValue": "api"}},{"key": "pid", "value": {"intValue": "7"}},{"key":"env","value":{"stringValue":"prod"}}],"droppedAttributesCount":1},
         "scopeProfiles": [{"profiles": [{"sampleType": {}}, {}]}]},{"resource":{"attributes":[{"key":"env","value":{"stringValue":"prod"}}]},"scope_profiles": [], "schemaUrl": "s"} ],
      "dictionary": {"stringTable": [""]} }"#;
        assert_eq!(out, want);
        let again = decode(&Bytes::from(out)).unwrap();
        assert_eq!(again.resources[1].attributes[0].key, "env");
    }

    #[test]
    fn rewrite_drops_elements() {
        let body = Bytes::from_static(BODY.as_bytes());
        let e = decode(&body).unwrap();
        let out = join(&rewrite(&body, &e, &[1], &[]));
        assert_eq!(
            out,
            "{ \"resourceProfiles\": [\n        {\"scope_profiles\": [], \"schemaUrl\": \"s\"} ],\n      \"dictionary\": {\"stringTable\": [\"\"]} }"
        );
        // Keeping every element only changes the whitespace between them (the handler
        // forwards such a body whole instead).
        let all = join(&rewrite(&body, &e, &[0, 1], &[]));
        assert_eq!(all.replace(['\n', ' '], ""), BODY.replace(['\n', ' '], ""));
    }

    #[test]
    fn an_empty_element_gains_a_resource_member() {
        let body = Bytes::from_static(br#"{"resourceProfiles":[{ }],"dictionary":{}}"#);
        let e = decode(&body).unwrap();
        let set = vec![("k".to_string(), "v".to_string())];
        assert_eq!(
            join(&rewrite(&body, &e, &[0], &set)),
            r#"{"resourceProfiles":[{"resource":{"attributes":[{"key":"k","value":{"stringValue":"v"}}]} }],"dictionary":{}}"#
        );
    }

    #[test]
    fn malformed_or_incomplete_json_is_refused() {
        let cases: &[(&str, &str)] = &[
            (
                "",
                "ExportProfilesServiceRequest: zero-length payload is not a valid JSON object",
            ),
            (
                "[]",
                "ExportProfilesServiceRequest: expected a JSON object, found an array",
            ),
            (
                "{\"resourceProfiles\":[{}]}",
                "missing profile metadata dictionary",
            ),
            ("{\"dictionary\":{}}", "missing resource profiles"),
            (
                "{\"resourceProfiles\":[{}],\"resource_profiles\":[],\"dictionary\":{}}",
                "ExportProfilesServiceRequest: duplicate field resourceProfiles",
            ),
            (
                "{\"resourceProfiles\":[{\"resource\":{\"attributes\":[{\"key\":1}]}}],\"dictionary\":{}}",
                "resource_profiles[0]: field key: expected a string, found a number",
            ),
            (
                "{\"resourceProfiles\":[{}],\"dictionary\":{}} x",
                "ExportProfilesServiceRequest: unexpected data after the top-level value at byte 42",
            ),
        ];
        for (body, want) in cases {
            let got = decode(&Bytes::from_static(body.as_bytes())).unwrap_err();
            assert_eq!(got.to_string(), *want, "{body}");
        }
    }
}
