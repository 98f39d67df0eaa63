//! The binary protobuf side of OTLP profiles: a shallow decoder of
//! `ExportProfilesServiceRequest` and the resource rewrite.
//!
//! Decoding uses the Push codec's cursor (`push::proto`), so the wire rules are the same:
//! unknown fields of wire types 0, 1, 2 and 5 are skipped, groups and field numbers above
//! 2^29-1 are errors, every length is checked against what remains, `string` fields read
//! (keys and string values of resource attributes) must be UTF-8. It descends into
//! `ResourceProfiles`, `Resource`, `KeyValue`, `AnyValue` and the top level of each
//! `ScopeProfiles` (to count profiles); a `Profile` and the dictionary are only delimited, so
//! the work is independent of profile size. Allocation is bounded by the attributes read (each
//! costs at least two input bytes).
//!
//! Encoding follows protobuf's merge rule for repeated occurrences of a message field: the
//! rewritten `Resource` is the concatenation of every original occurrence's fields minus the
//! attributes being replaced, then the new attributes, which decodes to the same message as
//! merging. Other fields keep their bytes and their order.

use std::ops::Range;

use bytes::Bytes;

use super::{Attribute, DecodeError, Export, Location, ResourceProfiles};
use crate::push::proto::{Cursor, Field, WIRE_LEN, put_varint, utf8, varint_len};

pub use crate::push::ProtoProblem;

/// Tag of field 1, LEN (`resource_profiles`, `resource`, `attributes`, `key`, `string_value`).
const TAG_1_LEN: u8 = (1 << 3) | WIRE_LEN;
/// Tag of field 2, LEN (`value` of a `KeyValue`).
const TAG_2_LEN: u8 = (2 << 3) | WIRE_LEN;

fn err(at: Location, problem: ProtoProblem) -> DecodeError {
    DecodeError::Proto { at, problem }
}

/// Decodes the parts of a binary `ExportProfilesServiceRequest` the gateway reads.
pub fn decode(body: &Bytes) -> Result<Export, DecodeError> {
    let top = Location::default();
    let mut cur = Cursor::new(body, 0..body.len());
    let mut export = Export::default();
    let mut dictionary = false;
    while !cur.at_end() {
        let start = cur.pos();
        let (number, wire) = cur.tag().map_err(|p| err(top, p))?;
        match (number, wire) {
            (1, WIRE_LEN) => {
                let content = cur
                    .len_delimited(Field::Known("resource_profiles"))
                    .map_err(|p| err(top, p))?;
                let at = Location {
                    resource_profiles: Some(export.resources.len()),
                };
                let rp =
                    resource_profiles(body, start..content.end, content).map_err(|p| err(at, p))?;
                export.resources.push(rp);
            }
            (2, WIRE_LEN) => {
                cur.len_delimited(Field::Known("dictionary"))
                    .map_err(|p| err(top, p))?;
                dictionary = true;
            }
            _ => cur.skip(number, wire).map_err(|p| err(top, p))?,
        }
    }
    if export.resources.is_empty() {
        return Err(DecodeError::NoResourceProfiles);
    }
    if !dictionary {
        return Err(DecodeError::NoDictionary);
    }
    Ok(export)
}

fn resource_profiles(
    body: &[u8],
    element: Range<usize>,
    content: Range<usize>,
) -> Result<ResourceProfiles, ProtoProblem> {
    let mut rp = ResourceProfiles {
        element,
        content: content.clone(),
        ..ResourceProfiles::default()
    };
    let mut cur = Cursor::new(body, content);
    while !cur.at_end() {
        let start = cur.pos();
        let (number, wire) = cur.tag()?;
        match (number, wire) {
            (1, WIRE_LEN) => {
                let r = cur.len_delimited(Field::Known("resource"))?;
                rp.resource.push(start..r.end);
                resource(body, r, &mut rp.attributes)?;
            }
            (2, WIRE_LEN) => {
                let r = cur.len_delimited(Field::Known("scope_profiles"))?;
                rp.profiles += count_profiles(body, r)?;
            }
            _ => cur.skip(number, wire)?,
        }
    }
    Ok(rp)
}

/// `Profile` messages (field 2) directly inside one `ScopeProfiles`.
fn count_profiles(body: &[u8], range: Range<usize>) -> Result<u64, ProtoProblem> {
    let mut cur = Cursor::new(body, range);
    let mut n = 0;
    while !cur.at_end() {
        let (number, wire) = cur.tag()?;
        if (number, wire) == (2, WIRE_LEN) {
            cur.len_delimited(Field::Known("profiles"))?;
            n += 1;
        } else {
            cur.skip(number, wire)?;
        }
    }
    Ok(n)
}

fn resource(
    body: &[u8],
    range: Range<usize>,
    out: &mut Vec<Attribute>,
) -> Result<(), ProtoProblem> {
    let mut cur = Cursor::new(body, range);
    while !cur.at_end() {
        let (number, wire) = cur.tag()?;
        if (number, wire) == (1, WIRE_LEN) {
            let r = cur.len_delimited(Field::Known("attributes"))?;
            if let Some(a) = key_value(body, r)? {
                out.push(a);
            }
        } else {
            cur.skip(number, wire)?;
        }
    }
    Ok(())
}

/// A `KeyValue`: `None` when its key is not a string (`key_strindex` only, which Pyroscope
/// ignores for labels too).
fn key_value(body: &[u8], range: Range<usize>) -> Result<Option<Attribute>, ProtoProblem> {
    let mut cur = Cursor::new(body, range);
    let mut key = None;
    let mut value = None;
    while !cur.at_end() {
        let (number, wire) = cur.tag()?;
        match (number, wire) {
            (1, WIRE_LEN) => {
                let r = cur.len_delimited(Field::Known("key"))?;
                key = Some(utf8(body, r, "key")?);
            }
            (2, WIRE_LEN) => {
                let r = cur.len_delimited(Field::Known("value"))?;
                // Repeated occurrences of a message field merge: a later one that sets
                // another member of the oneof replaces the string.
                if let Some(v) = any_value(body, r)? {
                    value = v;
                }
            }
            _ => cur.skip(number, wire)?,
        }
    }
    Ok(key.map(|key| Attribute {
        key,
        string_value: value,
    }))
}

/// An `AnyValue`: `Some(Some(s))` when the oneof ends as `string_value`, `Some(None)` when it
/// ends as another member, `None` when it sets none.
fn any_value(body: &[u8], range: Range<usize>) -> Result<Option<Option<String>>, ProtoProblem> {
    let mut cur = Cursor::new(body, range);
    let mut value = None;
    while !cur.at_end() {
        let (number, wire) = cur.tag()?;
        match (number, wire) {
            (1, WIRE_LEN) => {
                let r = cur.len_delimited(Field::Known("string_value"))?;
                value = Some(Some(utf8(body, r, "string_value")?));
            }
            (2..=8, _) => {
                cur.skip(number, wire)?;
                value = Some(None);
            }
            _ => cur.skip(number, wire)?,
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
    let mut parts = Vec::with_capacity(keep.len() * 4 + 2);
    let mut at = 0;
    let mut kept = keep.iter().copied().peekable();
    for (i, rp) in export.resources.iter().enumerate() {
        // Top-level fields between elements (the dictionary, unknown fields) stay.
        if rp.element.start > at {
            parts.push(body.slice(at..rp.element.start));
        }
        at = rp.element.end;
        if kept.peek() != Some(&i) {
            continue;
        }
        kept.next();
        if set.is_empty() {
            parts.push(body.slice(rp.element.clone()));
            continue;
        }
        let resource = resource_content(body, rp, set);
        // The element's other fields, without its resource fields.
        let mut rest: Vec<Range<usize>> = Vec::with_capacity(rp.resource.len() + 1);
        let mut from = rp.content.start;
        for r in &rp.resource {
            rest.push(from..r.start);
            from = r.end;
        }
        rest.push(from..rp.content.end);
        let rest_len: u64 = rest.iter().map(|r| r.len() as u64).sum();
        let resource_field = 1 + varint_len(resource.len() as u64) + resource.len() as u64;
        let element_len = resource_field + rest_len;
        let mut head = Vec::with_capacity(resource_field as usize + 12);
        head.push(TAG_1_LEN);
        put_varint(&mut head, element_len);
        head.push(TAG_1_LEN);
        put_varint(&mut head, resource.len() as u64);
        head.extend_from_slice(&resource);
        parts.push(Bytes::from(head));
        parts.extend(
            rest.into_iter()
                .filter(|r| !r.is_empty())
                .map(|r| body.slice(r)),
        );
    }
    if body.len() > at {
        parts.push(body.slice(at..));
    }
    parts
}

/// The fields of the rewritten `Resource` of `rp`.
fn resource_content(body: &[u8], rp: &ResourceProfiles, set: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in &rp.resource {
        // The field was validated by `decode`: skip its tag and length again.
        let mut cur = Cursor::new(body, field.clone());
        let content = match cur.tag().and_then(|_| cur.len_delimited(Field::Tag)) {
            Ok(r) => r,
            Err(_) => continue,
        };
        let mut cur = Cursor::new(body, content);
        while !cur.at_end() {
            let start = cur.pos();
            let Ok((number, wire)) = cur.tag() else { break };
            let replaced = if (number, wire) == (1, WIRE_LEN) {
                match cur.len_delimited(Field::Tag) {
                    Ok(r) => matches!(
                        key_value(body, r),
                        Ok(Some(a)) if set.iter().any(|(k, _)| *k == a.key)
                    ),
                    Err(_) => break,
                }
            } else {
                if cur.skip(number, wire).is_err() {
                    break;
                }
                false
            };
            if !replaced {
                out.extend_from_slice(body.get(start..cur.pos()).unwrap_or_default());
            }
        }
    }
    for (k, v) in set.iter().filter(|(_, v)| !v.is_empty()) {
        let any_len = 1 + varint_len(v.len() as u64) + v.len() as u64;
        let kv_len =
            1 + varint_len(k.len() as u64) + k.len() as u64 + 1 + varint_len(any_len) + any_len;
        out.push(TAG_1_LEN);
        put_varint(&mut out, kv_len);
        out.push(TAG_1_LEN);
        put_varint(&mut out, k.len() as u64);
        out.extend_from_slice(k.as_bytes());
        out.push(TAG_2_LEN);
        put_varint(&mut out, any_len);
        out.push(TAG_1_LEN);
        put_varint(&mut out, v.len() as u64);
        out.extend_from_slice(v.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::push::proto::hand::len_field as field;

    fn kv(k: &str, v: &str) -> Vec<u8> {
        let mut m = field(1, k.as_bytes());
        m.extend(field(2, &field(1, v.as_bytes())));
        field(1, &m)
    }

    fn kv_int(k: &str, v: u8) -> Vec<u8> {
        let mut m = field(1, k.as_bytes());
        m.extend(field(2, &[0x18, v]));
        field(1, &m)
    }

    fn request(resources: &[Vec<u8>], profile: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for attrs in resources {
            let mut rp = field(1, attrs);
            // scope_profiles { profiles: [profile, profile] }
            let mut sp = field(2, profile);
            sp.extend(field(2, profile));
            rp.extend(field(2, &sp));
            rp.extend(field(3, b"https://schema"));
            out.extend(field(1, &rp));
        }
        out.extend(field(2, &field(5, b"")));
        out
    }

    fn join(parts: &[Bytes]) -> Vec<u8> {
        parts.iter().flat_map(|p| p.iter().copied()).collect()
    }

    #[test]
    fn decodes_resource_attributes_and_counts_profiles() {
        let mut attrs = kv("service.name", "api");
        attrs.extend(kv_int("pid", 7));
        attrs.extend([0x10, 0x02]); // dropped_attributes_count = 2
        let body = Bytes::from(request(&[attrs, kv("host", "h")], b"\x08\x01"));
        let e = decode(&body).unwrap();
        assert_eq!(e.resources.len(), 2);
        assert_eq!(
            e.resources[0].attributes,
            [
                Attribute {
                    key: "service.name".into(),
                    string_value: Some("api".into())
                },
                Attribute {
                    key: "pid".into(),
                    string_value: None
                }
            ]
        );
        assert_eq!(e.resources[0].profiles, 2);
        assert_eq!(e.resources[1].element.end, e.resources[1].content.end);
    }

    #[test]
    fn missing_parts_and_malformed_bytes_are_errors() {
        let no_dict = Bytes::from(field(1, &field(1, &kv("a", "b"))));
        assert_eq!(decode(&no_dict), Err(DecodeError::NoDictionary));
        let no_rp = Bytes::from(field(2, b""));
        assert_eq!(decode(&no_rp), Err(DecodeError::NoResourceProfiles));
        let mut bad = request(&[kv("a", "b")], b"");
        bad.truncate(5);
        assert!(decode(&Bytes::from(bad)).is_err());
        let mut bad_utf8 = field(1, &field(1, &field(1, &field(1, b"\xff"))));
        bad_utf8.extend(field(2, b""));
        let e = decode(&Bytes::from(bad_utf8)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "resource_profiles[0]: string field key is not valid UTF-8 (invalid byte at offset 0)"
        );
    }

    #[test]
    fn rewrite_replaces_attributes_and_slices_everything_else() {
        let profile = vec![0xab; 300];
        let mut attrs = kv("env", "old");
        attrs.extend(kv("service.name", "api"));
        let body = Bytes::from(request(&[attrs, kv("env", "x")], &profile));
        let e = decode(&body).unwrap();
        let set = vec![
            ("cluster".to_string(), "eu".to_string()),
            ("env".to_string(), "prod".to_string()),
        ];
        let parts = rewrite(&body, &e, &[0, 1], &set);
        let mut want_attrs = kv("service.name", "api");
        want_attrs.extend(kv("cluster", "eu"));
        want_attrs.extend(kv("env", "prod"));
        let mut second = kv("cluster", "eu");
        second.extend(kv("env", "prod"));
        assert_eq!(join(&parts), request(&[want_attrs, second], &profile));
        // The profiles are slices of the received body, not copies.
        let range = body.as_ptr_range();
        let big: Vec<&Bytes> = parts.iter().filter(|p| p.len() >= 300).collect();
        assert!(!big.is_empty());
        assert!(big.iter().all(|p| range.contains(&p.as_ptr())));
    }

    #[test]
    fn rewrite_drops_elements_and_keeps_bytes_without_attributes() {
        let body = Bytes::from(request(&[kv("a", "1"), kv("a", "2"), kv("a", "3")], b"p"));
        let e = decode(&body).unwrap();
        let all = rewrite(&body, &e, &[0, 1, 2], &[]);
        assert_eq!(join(&all), body.as_ref());
        let parts = rewrite(&body, &e, &[1], &[]);
        assert_eq!(join(&parts), request(&[kv("a", "2")], b"p"));
        // An empty value removes the attribute without adding one.
        let set = vec![("a".to_string(), String::new())];
        let parts = rewrite(&body, &e, &[2], &set);
        assert_eq!(join(&parts), request(&[vec![]], b"p"));
    }

    #[test]
    fn a_resource_profiles_without_resource_gains_one() {
        let mut rp = field(2, &field(2, b"p"));
        rp.extend(field(3, b"s"));
        let mut body = field(1, &rp);
        body.extend(field(2, b""));
        let body = Bytes::from(body);
        let e = decode(&body).unwrap();
        let set = vec![("k".to_string(), "v".to_string())];
        let got = join(&rewrite(&body, &e, &[0], &set));
        let mut want_rp = field(1, &kv("k", "v"));
        want_rp.extend(rp);
        let mut want = field(1, &want_rp);
        want.extend(field(2, b""));
        assert_eq!(got, want);
    }
}
