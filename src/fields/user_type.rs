//! The seed's `type` of an account: 1 phone, 2 device, 3 WeChat.

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
    pub fn jid_prefix(self) -> char {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        assert_eq!(UserType::parse("2").unwrap(), UserType::Device);
        assert!(UserType::parse("4").is_err());
        assert!(UserType::parse("02").is_err());
        assert!(UserType::parse("").is_err());
    }
}
