//! A request's parameters: a strict map from name to text, filled from a
//! query string, a form body or a JSON object (the register API's bodies and
//! the token service's lines). A name given twice, at any depth of a JSON
//! body, is refused (code 2): a signature checker and a handler must never
//! read different values.

use std::collections::BTreeMap;

use percent_encoding::percent_decode;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::fields::check_text;
use crate::signing::canonical_json;

/// Most parameters one request may carry.
pub const MAX_PARAMS: usize = 40;
/// Longest parameter value, in bytes (fields have tighter limits of their own).
pub const MAX_VALUE_BYTES: usize = 8192;

/// A request's parameters, by name. A name given twice is refused.
#[derive(Debug, Clone, Default)]
pub struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    /// The members of a JSON object, as a JSON body gives them.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Params, Error> {
        let mut p = Params::default();
        p.parse_json(bytes)?;
        Ok(p)
    }

    fn insert(&mut self, name: String, value: String) -> Result<(), Error> {
        if name.is_empty()
            || name.len() > 32
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(Error::Params("bad parameter name".into()));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(Error::Params(format!("{name} is too long")));
        }
        // No parameter may carry what XML cannot, noncharacters or bidi
        // controls (issue 6, point 10); the field types check again.
        check_text(&name, &value)?;
        if self.map.len() >= MAX_PARAMS {
            return Err(Error::Params("too many parameters".into()));
        }
        if self.map.contains_key(&name) {
            return Err(Error::Params(format!("{name} is given twice")));
        }
        self.map.insert(name, value);
        Ok(())
    }

    /// The value of `name`, if present (possibly empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// The value of `name`, which must be present and not empty.
    pub fn required(&self, name: &str) -> Result<&str, Error> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::Params(format!("{name} is required")))
    }

    /// The value of `name` if present and not empty.
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Adds the pairs of a query string or form body.
    pub fn parse_form(&mut self, bytes: &[u8]) -> Result<(), Error> {
        for pair in bytes.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            self.insert(form_decode(k)?, form_decode(v)?)?;
        }
        Ok(())
    }

    /// Adds the members of a JSON object (a JSON body, a token service line).
    pub fn parse_json(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let value = strict_json(bytes)?;
        let Value::Object(object) = value else {
            return Err(Error::Params("JSON body must be an object".into()));
        };
        for (k, v) in object {
            let text = match v {
                Value::Null => continue,
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                // Lists (user_name_ls, bind_code_ls) may come as real arrays;
                // they are signed as their canonical JSON text.
                Value::Array(_) => canonical_json(&v),
                Value::Object(_) => {
                    return Err(Error::Params(format!("{k} must not be an object")));
                }
            };
            self.insert(k, text)?;
        }
        Ok(())
    }
}

/// Parses JSON text, refusing (code 2) an object that names a member twice,
/// at any depth. serde_json alone keeps the last of repeated members, so a
/// signature checker and a handler could read different values.
pub fn strict_json(bytes: &[u8]) -> Result<Value, Error> {
    read_json(bytes, Repeated::Refuse).map_err(|e| {
        if e.to_string().starts_with(DUPLICATE) {
            Error::Params("a JSON member is given twice".into())
        } else {
            Error::Params("body is not valid JSON".into())
        }
    })
}

/// What [`read_json`] does with an object member named twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeated {
    /// An error starting with [`DUPLICATE`].
    Refuse,
    /// The last one counts (serde_json's own behaviour).
    KeepLast,
}

/// JSON read into a `Value` by jidgate's own visitor: every member key is
/// taken as written, and a member named twice refused or the last kept.
/// serde_json's `Value` reader, with the `raw_value` feature jidgate
/// enables (for the token service), reads an object whose key is
/// `$serde_json::private::RawValue` as the JSON text in its value (a
/// facade `cdata` of `{"$serde_json::private::RawValue":"[1]"}` would come
/// back as `[1]`); this reader has no such key.
pub fn read_json(bytes: &[u8], repeated: Repeated) -> Result<Value, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = JsonSeed(repeated).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Start of the error a repeated member raises in [`read_json`].
const DUPLICATE: &str = "duplicate member";

/// The seed and visitor of [`read_json`].
#[derive(Clone, Copy)]
struct JsonSeed(Repeated);

impl<'de> serde::de::DeserializeSeed<'de> for JsonSeed {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for JsonSeed {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.0 == Repeated::Refuse && out.contains_key(&key) {
                return Err(serde::de::Error::custom(DUPLICATE));
            }
            let v = map.next_value_seed(self)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// `application/x-www-form-urlencoded` decoding of one name or value:
/// `+` is a space, `%XX` a byte; the result must be UTF-8.
fn form_decode(raw: &[u8]) -> Result<String, Error> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_decode(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Error::Params("parameters must be UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_handles_plus_and_percent() {
        let mut p = Params::default();
        p.parse_form(b"a=b+c&d=%E4%BD%A0%2B&e&f=").unwrap();
        assert_eq!(p.get("a"), Some("b c"));
        assert_eq!(p.get("d"), Some("你+"));
        assert_eq!(p.get("e"), Some(""));
        assert_eq!(p.optional("f"), None);
        assert!(p.required("f").is_err());
    }

    #[test]
    fn duplicates_bad_names_and_bad_utf8_are_refused() {
        assert!(Params::default().parse_form(b"a=1&a=2").is_err());
        assert!(Params::default().parse_form(b"a%20b=1").is_err());
        assert!(Params::default().parse_form(b"a=%FF").is_err());
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=1")).collect();
        assert!(
            Params::default()
                .parse_form(many.join("&").as_bytes())
                .is_err()
        );
    }

    #[test]
    fn json_values_become_their_text() {
        let mut p = Params::default();
        p.parse_json(br#"{"type":2,"ok":true,"ls":["b", "a"],"n":null,"s":"x"}"#)
            .unwrap();
        assert_eq!(p.get("type"), Some("2"));
        assert_eq!(p.get("ok"), Some("true"));
        assert_eq!(p.get("ls"), Some(r#"["b","a"]"#));
        assert_eq!(p.get("n"), None);
        assert!(Params::default().parse_json(br#"{"o":{}}"#).is_err());
        assert!(Params::default().parse_json(b"[1]").is_err());
        assert!(Params::default().parse_json(b"{").is_err());
    }

    #[test]
    fn repeated_json_members_are_refused_at_any_depth() {
        for bad in [
            &br#"{"a":"1","a":"2"}"#[..],
            br#"{"a":"1","ls":[{"x":1,"x":2}]}"#,
            br#"{"a":{"b":{"c":1,"c":1}}}"#,
            br#"{"a":"1"} {"a":"2"}"#,
        ] {
            let e = strict_json(bad).unwrap_err();
            assert_eq!(e.code(), 2, "{}", String::from_utf8_lossy(bad));
        }
        assert!(strict_json(br#"{"a":"1","b":"1"}"#).is_ok());
        let v = strict_json(br#" {"a":[1,-2,3.5,true,null,{"b":"\u00e9"}],"c":{}} "#).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a":[1,-2,3.5,true,null,{"b":"é"}],"c":{}})
        );
        assert!(
            Params::default()
                .parse_json(br#"{"a":"1","a":"1"}"#)
                .is_err()
        );
    }
}
