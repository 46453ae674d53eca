//! What no text field may hold: characters XML 1.0 cannot carry, Unicode
//! noncharacters and bidirectional controls. Every request parameter is
//! checked, and the field types check again.

use crate::error::Error;

/// Why a character may not appear in any text field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedChar {
    /// C0/C1 controls and DEL (XML 1.0 cannot carry most C0 controls at all;
    /// the rest are invisible).
    Control,
    /// A Unicode noncharacter: U+FDD0–U+FDEF, and U+xFFFE/U+xFFFF in every
    /// plane (XML 1.0 cannot carry U+FFFE and U+FFFF).
    Noncharacter,
    /// A bidirectional control, which reorders how text is shown (U+202E
    /// shows "lamp" as "pmal").
    Bidi,
}

/// The bidirectional controls: ALM, LRM, RLM, LRE/RLE/PDF/LRO/RLO and
/// LRI/RLI/FSI/PDI.
const BIDI_CONTROLS: &[char] = &[
    '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}',
    '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
];

/// Classifies a character no text field may hold, or `None` if it may.
///
/// A Rust `char` is never a surrogate, so with these refusals every text
/// left is a sequence of XML 1.0 `Char`s that is shown in the order it is
/// written.
pub fn refused_char(c: char) -> Option<RefusedChar> {
    let n = c as u32;
    if c.is_control() {
        Some(RefusedChar::Control)
    } else if (0xFDD0..=0xFDEF).contains(&n) || n & 0xFFFE == 0xFFFE {
        Some(RefusedChar::Noncharacter)
    } else if BIDI_CONTROLS.contains(&c) {
        Some(RefusedChar::Bidi)
    } else {
        None
    }
}

/// Checks a free-form text field: no control characters, noncharacters or
/// bidi controls (code 2, naming the field and the character, never the
/// text, which may be a password).
pub fn check_text(field: &str, s: &str) -> Result<(), Error> {
    match s.chars().find_map(|c| refused_char(c).map(|why| (c, why))) {
        None => Ok(()),
        Some((c, why)) => {
            let what = match why {
                RefusedChar::Control => "a control character",
                RefusedChar::Noncharacter => "a Unicode noncharacter",
                RefusedChar::Bidi => "a bidirectional control",
            };
            Err(Error::Params(format!(
                "{field}: {what} (U+{:04X}) is not allowed",
                c as u32
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::{Des, Password};

    #[test]
    fn text_refuses_what_xml_cannot_carry_noncharacters_and_bidi_controls() {
        let refused = [
            ('\u{0}', RefusedChar::Control),
            ('\u{8}', RefusedChar::Control),
            ('\u{1f}', RefusedChar::Control),
            ('\u{7f}', RefusedChar::Control),
            ('\u{85}', RefusedChar::Control),
            ('\u{fdd0}', RefusedChar::Noncharacter),
            ('\u{fdef}', RefusedChar::Noncharacter),
            ('\u{fffe}', RefusedChar::Noncharacter),
            ('\u{ffff}', RefusedChar::Noncharacter),
            ('\u{1fffe}', RefusedChar::Noncharacter),
            ('\u{2ffff}', RefusedChar::Noncharacter),
            ('\u{10fffe}', RefusedChar::Noncharacter),
            ('\u{10ffff}', RefusedChar::Noncharacter),
            ('\u{061c}', RefusedChar::Bidi),
            ('\u{200e}', RefusedChar::Bidi),
            ('\u{200f}', RefusedChar::Bidi),
            ('\u{202a}', RefusedChar::Bidi),
            ('\u{202b}', RefusedChar::Bidi),
            ('\u{202c}', RefusedChar::Bidi),
            ('\u{202d}', RefusedChar::Bidi),
            ('\u{202e}', RefusedChar::Bidi),
            ('\u{2066}', RefusedChar::Bidi),
            ('\u{2067}', RefusedChar::Bidi),
            ('\u{2068}', RefusedChar::Bidi),
            ('\u{2069}', RefusedChar::Bidi),
        ];
        for (c, why) in refused {
            assert_eq!(refused_char(c), Some(why), "U+{:04X}", c as u32);
            let text = format!("ab{c}cd");
            assert!(check_text("des", &text).is_err(), "U+{:04X}", c as u32);
            assert!(Des::parse(&text).is_err(), "U+{:04X}", c as u32);
            assert!(Password::parse(&format!("pass{c}word")).is_err());
        }
        // Neighbours of the refused ranges, and ordinary text of every
        // script, are fine.
        for c in [
            '\u{20}',
            '\u{a0}',
            '\u{fdcf}',
            '\u{fdf0}',
            '\u{fffd}',
            '\u{1fffd}',
            '\u{10000}',
            '\u{200d}',
            '\u{2010}',
            '\u{2029}',
            '\u{202f}',
            '\u{2065}',
            '\u{206a}',
            '\u{e000}',
            'é',
            '灯',
            '❤',
            '😀',
            'ع',
        ] {
            assert_eq!(refused_char(c), None, "U+{:04X}", c as u32);
        }
        assert!(Des::parse("客厅的灯 ❤ غرفة").is_ok());
        assert!(Password::parse("пароль-密码-😀").is_ok());
    }

    #[test]
    fn a_refused_text_error_names_the_character_but_not_the_text() {
        let e = Password::parse("secret\u{202e}word").err().unwrap();
        let text = e.to_string();
        assert!(
            text.contains("U+202E") && text.contains("password"),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
    }
}
