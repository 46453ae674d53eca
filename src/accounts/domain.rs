//! Parsed account fields: what a valid user name, password, description or
//! device type is, and how JID localparts are made.

use std::fmt;

use secrecy::SecretString;
use serde::Serialize;

use crate::error::Error;

/// The seed's `type`: 1 phone, 2 device, 3 WeChat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "i64")]
pub enum UserType {
    Phone,
    Device,
    Wechat,
}

impl From<UserType> for i64 {
    fn from(t: UserType) -> i64 {
        t.code()
    }
}

impl UserType {
    pub fn parse(s: &str) -> Result<UserType, Error> {
        match s {
            "1" => Ok(UserType::Phone),
            "2" => Ok(UserType::Device),
            "3" => Ok(UserType::Wechat),
            _ => Err(Error::Params(
                "type must be 1 (phone), 2 (device) or 3 (WeChat)".into(),
            )),
        }
    }

    pub fn from_code(code: i64) -> Option<UserType> {
        match code {
            1 => Some(UserType::Phone),
            2 => Some(UserType::Device),
            3 => Some(UserType::Wechat),
            _ => None,
        }
    }

    pub fn code(self) -> i64 {
        match self {
            UserType::Phone => 1,
            UserType::Device => 2,
            UserType::Wechat => 3,
        }
    }

    /// First letter of this type's JID localparts.
    fn jid_prefix(self) -> char {
        match self {
            UserType::Phone => 'p',
            UserType::Device => 'd',
            UserType::Wechat => 'w',
        }
    }

    /// Phones and WeChat users own devices; devices are owned.
    pub fn is_owner(self) -> bool {
        self != UserType::Device
    }
}

/// A user name valid for its type.
///
/// - phone: an optional `+` and 5–15 digits (E.164 has at most 15);
/// - device: a serial, 4–64 of `A-Z a-z 0-9 . _ : -`, starting with a letter
///   or digit;
/// - WeChat: an openid/unionid, 6–64 of `A-Z a-z 0-9 _ -`.
///
/// User names are unique across all types and case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct UserName(String);

impl UserName {
    pub fn parse(ty: UserType, s: &str) -> Result<UserName, Error> {
        let ok = match ty {
            UserType::Phone => {
                let digits = s.strip_prefix('+').unwrap_or(s);
                (5..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
            }
            UserType::Device => {
                (4..=64).contains(&s.len())
                    && s.as_bytes()[0].is_ascii_alphanumeric()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b))
            }
            UserType::Wechat => {
                (6..=64).contains(&s.len())
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            }
        };
        if ok {
            Ok(UserName(s.to_owned()))
        } else {
            Err(Error::Params(match ty {
                UserType::Phone => "user_name: a phone number, optional + and 5-15 digits".into(),
                UserType::Device => {
                    "user_name: a device serial, 4-64 of A-Z a-z 0-9 . _ : -".into()
                }
                UserType::Wechat => "user_name: a WeChat id, 6-64 of A-Z a-z 0-9 _ -".into(),
            }))
        }
    }

    /// A name that could be valid for some type (for look-ups by name).
    pub fn parse_any(s: &str) -> Result<UserName, Error> {
        if (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+.:_-".contains(&b))
        {
            Ok(UserName(s.to_owned()))
        } else {
            Err(Error::Params(format!(
                "{:?} is not a user name",
                s.chars().take(70).collect::<String>()
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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

/// An account password: 6–128 characters, none refused by [`check_text`].
pub struct Password(SecretString);

impl Password {
    pub fn parse(s: &str) -> Result<Password, Error> {
        let n = s.chars().count();
        if !(6..=128).contains(&n) {
            return Err(Error::Params(
                "password: 6-128 characters, no control characters, noncharacters or bidi controls"
                    .into(),
            ));
        }
        check_text("password", s)?;
        Ok(Password(SecretString::from(s.to_owned())))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// A description (`des`): up to 128 characters, none refused by
/// [`check_text`] (it becomes a roster nickname, i.e. XML text shown to
/// people).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Des(String);

impl Des {
    pub fn parse(s: &str) -> Result<Des, Error> {
        if s.chars().count() > 128 {
            return Err(Error::Params(
                "des: at most 128 characters, no control characters, noncharacters or bidi controls"
                    .into(),
            ));
        }
        check_text("des", s)?;
        Ok(Des(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A device model: 1–32 of `A-Z a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DeviceType(String);

impl DeviceType {
    pub fn parse(s: &str) -> Result<DeviceType, Error> {
        if (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            Ok(DeviceType(s.to_owned()))
        } else {
            Err(Error::Params(
                "device_type: 1-32 of A-Z a-z 0-9 . _ -".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lowercase RFC 4648 base32 alphabet: valid in every XMPP localpart and
/// unchanged by case folding.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A fresh JID localpart: the type's letter, a dot, and 16 random base32
/// characters (80 bits), e.g. `d.q3k9x2m4r7t5v6w8`. Random rather than
/// derived from the user name, so that a JID reveals no phone number, and
/// names that differ only in case never collide after XMPP case folding.
pub fn new_localpart(ty: UserType) -> String {
    let bytes = crate::crypto::random_bytes::<16>();
    let mut s = String::with_capacity(18);
    s.push(ty.jid_prefix());
    s.push('.');
    for b in bytes {
        s.push(BASE32[(b & 31) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers() {
        for ok in ["13800138000", "+8613800138000", "12345", "+123456789012345"] {
            UserName::parse(UserType::Phone, ok).unwrap();
        }
        for bad in ["1234", "+1234567890123456", "138-0013", "", "+", "١٢٣٤٥٦"] {
            assert!(UserName::parse(UserType::Phone, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn device_serials() {
        for ok in ["SN0001", "ab:cd:ef:01", "dev.x_1-2", &"A".repeat(64)] {
            UserName::parse(UserType::Device, ok).unwrap();
        }
        for bad in [
            "abc",
            "-abc1",
            "has space",
            "é1234",
            &"A".repeat(65),
            "a/b/c/d",
        ] {
            assert!(UserName::parse(UserType::Device, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wechat_ids() {
        UserName::parse(UserType::Wechat, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o").unwrap();
        assert!(UserName::parse(UserType::Wechat, "short").is_err());
        assert!(UserName::parse(UserType::Wechat, "has.dot1").is_err());
    }

    #[test]
    fn any_name_for_lookups() {
        UserName::parse_any("+8613800138000").unwrap();
        UserName::parse_any("ab:cd").unwrap();
        assert!(UserName::parse_any("").is_err());
        assert!(UserName::parse_any("a b").is_err());
        assert!(UserName::parse_any(&"a".repeat(65)).is_err());
    }

    #[test]
    fn passwords_and_descriptions() {
        assert!(Password::parse("12345").is_err());
        assert!(Password::parse("123456").is_ok());
        assert!(Password::parse("密码密码密码").is_ok());
        assert!(Password::parse("tab\there").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert!(Des::parse("").is_ok());
        assert!(Des::parse("客厅的灯").is_ok());
        assert!(Des::parse(&"x".repeat(129)).is_err());
        assert!(Des::parse("line\nbreak").is_err());
        assert!(DeviceType::parse("lamp-v2").is_ok());
        assert!(DeviceType::parse("").is_err());
        assert!(DeviceType::parse("a b").is_err());
    }

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

    #[test]
    fn types() {
        assert_eq!(UserType::parse("2").unwrap(), UserType::Device);
        assert!(UserType::parse("4").is_err());
        assert!(UserType::parse("02").is_err());
        assert!(UserType::parse("").is_err());
    }

    #[test]
    fn localparts_are_valid_distinct_and_typed() {
        let a = new_localpart(UserType::Device);
        let b = new_localpart(UserType::Device);
        assert_ne!(a, b);
        assert!(a.starts_with("d.") && a.len() == 18, "{a}");
        assert!(new_localpart(UserType::Phone).starts_with("p."));
        assert!(new_localpart(UserType::Wechat).starts_with("w."));
        let jid = xmpp_parsers::jid::BareJid::new(&format!("{a}@localhost")).unwrap();
        assert_eq!(jid.node().unwrap().as_str(), a);
    }
}
