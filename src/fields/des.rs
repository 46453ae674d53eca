//! The description of an account (`des`): the nickname others see in their
//! rosters.

use serde::Serialize;

use super::check_text;
use crate::error::Error;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions() {
        assert!(Des::parse("").is_ok());
        assert!(Des::parse("客厅的灯").is_ok());
        assert!(Des::parse(&"x".repeat(129)).is_err());
        assert!(Des::parse("line\nbreak").is_err());
    }
}
