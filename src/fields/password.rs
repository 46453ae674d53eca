//! The account password: 6–128 characters of text, kept secret.

use secrecy::SecretString;

use super::check_text;
use crate::error::Error;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords() {
        assert!(Password::parse("12345").is_err());
        assert!(Password::parse("123456").is_ok());
        assert!(Password::parse("密码密码密码").is_ok());
        assert!(Password::parse("tab\there").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
    }
}
