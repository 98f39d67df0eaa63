//! Go's `strings.ToLower` / `strings.ToUpper` for the `lowercase` and `uppercase` actions.
//!
//! Owns: per-character simple case mapping as Go's `unicode.ToLower` / `unicode.ToUpper` do
//! (golang/go `src/strings/strings.go` maps every rune through `src/unicode/letter.go`), which
//! differs from Rust's `str::to_lowercase` / `to_uppercase`: no multi-character results
//! (`ß` stays `ß`, `ŉ` stays `ŉ`, `İ` lowers to plain `i`), no final-sigma rule (`Σ` always
//! lowers to `σ`), and the Greek iota-subscript letters map to their title-case forms
//! (`ᾳ` → `ᾼ`). Does not own: anything else about the actions.
//!
//! Rust's `char::to_lowercase` / `to_uppercase` give the full mapping (Unicode `SpecialCasing`
//! on top of `UnicodeData`); where that is a single character it is the simple mapping, so only
//! the characters whose full mapping has several characters are special-cased here. Unicode
//! versions can differ between Rust's standard library and the Go release Alloy is built with.

/// Go's `strings.ToLower`.
pub fn to_lower(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    s.chars().map(lower_char).collect()
}

/// Go's `strings.ToUpper`.
pub fn to_upper(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_uppercase();
    }
    s.chars().map(upper_char).collect()
}

/// Go's `unicode.ToLower` (the simple lowercase mapping).
fn lower_char(c: char) -> char {
    let mut it = c.to_lowercase();
    match (it.next(), it.next()) {
        (Some(l), None) => l,
        // Only U+0130 (İ) has a multi-character full lowercase ("i̇"); its simple one is 'i'.
        _ if c == '\u{130}' => 'i',
        _ => c,
    }
}

/// Go's `unicode.ToUpper` (the simple uppercase mapping).
fn upper_char(c: char) -> char {
    let mut it = c.to_uppercase();
    match (it.next(), it.next()) {
        (Some(u), None) => u,
        // Multi-character full uppercase: the simple mapping is the character itself, except
        // for the Greek letters with iota subscript, whose simple mapping is the title-case
        // letter (UnicodeData.txt field 12).
        _ => match c as u32 {
            0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => {
                char::from_u32(c as u32 + 8).unwrap_or(c)
            }
            0x1FB3 => '\u{1FBC}',
            0x1FC3 => '\u{1FCC}',
            0x1FF3 => '\u{1FFC}',
            _ => c,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_maps_bytewise() {
        assert_eq!(to_lower("bAr123Foo"), "bar123foo");
        assert_eq!(to_upper("bAr123Foo"), "BAR123FOO");
    }

    #[test]
    fn sharp_s_and_ligatures_do_not_expand_when_uppercased() {
        // Rust's str::to_uppercase gives "STRASSE" and "FI"; Go keeps the characters.
        assert_eq!(to_upper("straße"), "STRAßE");
        assert_eq!(to_upper("ﬁ"), "ﬁ");
        assert_eq!(to_upper("ŉ"), "ŉ");
    }

    #[test]
    fn dotted_capital_i_lowers_to_plain_i() {
        // Rust's str::to_lowercase gives "i\u{307}".
        assert_eq!(to_lower("İ"), "i");
    }

    #[test]
    fn sigma_has_no_final_form_rule() {
        // Rust's str::to_lowercase gives "οσος" with a final ς; Go maps every Σ to σ.
        assert_eq!(to_lower("ΟΣΟΣ"), "οσοσ");
    }

    #[test]
    fn iota_subscript_letters_upper_to_title_case() {
        assert_eq!(to_upper("ᾳ"), "ᾼ");
        assert_eq!(to_upper("ᾀ"), "ᾈ");
        // Title-case forms have no simple uppercase: unchanged.
        assert_eq!(to_upper("ᾼ"), "ᾼ");
        assert_eq!(to_lower("ᾼ"), "ᾳ");
    }

    #[test]
    fn other_letters_use_the_simple_mapping() {
        assert_eq!(to_upper("ǆ ǅ ſ ı"), "Ǆ Ǆ S I");
        assert_eq!(to_lower("Ǆ ǅ K"), "ǆ ǆ k");
    }
}
