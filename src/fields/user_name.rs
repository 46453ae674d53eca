//! User names: a phone number, a device serial or a WeChat id, each with its
//! own format; and `*_ls` lists of them.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::db::account::UserType;
use crate::error::Error;

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

/// A `*_ls` parameter: a JSON array of user names (as a string, or a real
/// array in a JSON body), at most `max`, each well-formed, no repeats.
pub fn parse_name_list(text: &str, max: usize) -> Result<Vec<String>, Error> {
    let list = parse_string_list(text, "user_name_ls", max)?;
    for name in &list {
        UserName::parse_any(name)?;
    }
    let mut seen = std::collections::HashSet::new();
    if !list.iter().all(|n| seen.insert(n.as_str())) {
        return Err(Error::Params("user_name_ls repeats a name".into()));
    }
    Ok(list)
}

/// A JSON array of strings, at most `max` long.
pub fn parse_string_list(text: &str, what: &str, max: usize) -> Result<Vec<String>, Error> {
    let value: Value = serde_json::from_str(text)
        .map_err(|_| Error::Params(format!("{what} must be a JSON array of strings")))?;
    let Value::Array(items) = value else {
        return Err(Error::Params(format!(
            "{what} must be a JSON array of strings"
        )));
    };
    if items.is_empty() {
        return Err(Error::Params(format!("{what} is empty")));
    }
    if items.len() > max {
        return Err(Error::Params(format!("{what} has more than {max} entries")));
    }
    items
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            _ => Err(Error::Params(format!(
                "{what} must be a JSON array of strings"
            ))),
        })
        .collect()
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
    fn name_lists() {
        assert_eq!(
            parse_name_list(r#"["a1","b2"]"#, 5).unwrap(),
            vec!["a1".to_owned(), "b2".to_owned()]
        );
        assert!(parse_name_list("[]", 5).is_err());
        assert!(parse_name_list(r#"["a","a"]"#, 5).is_err());
        assert!(parse_name_list(r#"["a","b","c"]"#, 2).is_err());
        assert!(parse_name_list(r#"[1]"#, 5).is_err());
        assert!(parse_name_list(r#"{"a":1}"#, 5).is_err());
        assert!(parse_name_list(r#"["a b"]"#, 5).is_err());
        assert!(parse_name_list("not json", 5).is_err());
    }
}
