//! The facade's functions, one file per family, and the one reader of
//! their parameters ([`Parm`]).

pub mod block;
pub mod friend;
pub mod history;
pub mod message;
pub mod session;
pub mod user;

use std::sync::Arc;

use serde_json::{Map, Value};

use super::envelope::{Failure, errno};
use super::live::Live;

/// Runs one function for a session.
pub async fn call(
    live: &Arc<Live>,
    func: &str,
    parm: &Map<String, Value>,
) -> Result<Value, Failure> {
    let p = Parm {
        map: parm,
        max_text: live.app().config.facade.max_content_chars,
    };
    match func {
        "session.start" => session::first_screen(live).await,
        "session.ping" => session::ping(),
        "session.ack" => session::ack(live, &p),
        "session.renew" => session::renew(live, &p).await,
        "session.resume" => Err(Failure::new(
            errno::NOT_PERMITTED,
            "session.resume starts a socket; this one has a session",
        )),
        "user.info" => user::info(live, &p).await,
        "user.update" => user::update(live, &p).await,
        "user.search" | "user.find" => user::search(live, &p).await,
        "user.block" => block::block(live, &p).await,
        "user.unblock" => block::unblock(live, &p).await,
        "user.block_list" => block::list(live).await,
        "user.friend_list" => friend::list(live, &p).await,
        "user.add_friend" => friend::add(live, &p).await,
        "user.accept_friend" => friend::accept(live, &p).await,
        "user.reject_friend" => friend::reject(live, &p).await,
        "user.del_friend" => friend::delete(live, &p).await,
        "event.read" => friend::events(live, &p).await,
        "message.send" => message::send(live, &p).await,
        "message.typing" => message::typing(live, &p).await,
        "message.mark_read" => message::mark_read(live, &p).await,
        "message.read" => history::read(live, &p).await,
        _ => Err(Failure::new(errno::UNKNOWN_FUNC, "no such func")),
    }
}

/// A request's `parm`, read by name and type.
pub struct Parm<'a> {
    map: &'a Map<String, Value>,
    max_text: usize,
}

impl Parm<'_> {
    /// A required string, non-empty, at most `max_content_chars`
    /// characters, and only characters XML can carry.
    pub fn text(&self, name: &str) -> Result<&str, Failure> {
        self.opt_text(name)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Failure::parm(format!("{name}: a non-empty string is required")))
    }

    /// An optional string (as [`Parm::text`], may be empty).
    pub fn opt_text(&self, name: &str) -> Result<Option<&str>, Failure> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                if s.chars().count() > self.max_text {
                    return Err(Failure::parm(format!(
                        "{name}: at most {} characters",
                        self.max_text
                    )));
                }
                if !s.chars().all(xml_char) {
                    return Err(Failure::parm(format!("{name}: control characters")));
                }
                Ok(Some(s.as_str()))
            }
            Some(_) => Err(Failure::parm(format!("{name}: must be a string"))),
        }
    }

    /// An optional non-negative integer.
    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, Failure> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| Failure::parm(format!("{name}: must be a non-negative integer"))),
        }
    }

    /// A required non-negative integer.
    pub fn u64(&self, name: &str) -> Result<u64, Failure> {
        self.opt_u64(name)?
            .ok_or_else(|| Failure::parm(format!("{name}: an integer is required")))
    }

    /// An optional number.
    pub fn opt_f64(&self, name: &str) -> Result<Option<f64>, Failure> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|f| f.is_finite())
                .map(Some)
                .ok_or_else(|| Failure::parm(format!("{name}: must be a number"))),
        }
    }

    /// `count`, defaulting to `default`, capped to `facade.max_list_count`.
    pub fn count(&self, live: &Live, default: u64) -> Result<i64, Failure> {
        let max = live.app().config.facade.max_list_count as u64;
        let n = self
            .opt_u64("count")?
            .unwrap_or(default)
            .clamp(1, max.max(1));
        Ok(n as i64)
    }
}

/// A character XML 1.0 can carry (§2.2), so no text can break the stream;
/// every text parameter must be made of these.
pub fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_characters_xml_can_carry_pass() {
        assert!("héllo <b>\n\t你好 🎉".chars().all(super::xml_char));
        for bad in ['\0', '\u{1}', '\u{b}', '\u{1f}', '\u{fffe}', '\u{ffff}'] {
            assert!(!super::xml_char(bad), "{bad:?}");
        }
    }
}
