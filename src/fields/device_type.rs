//! A device's model (`device_type`).

use serde::Serialize;

use crate::error::Error;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_types() {
        assert!(DeviceType::parse("lamp-v2").is_ok());
        assert!(DeviceType::parse("").is_err());
        assert!(DeviceType::parse("a b").is_err());
    }
}
