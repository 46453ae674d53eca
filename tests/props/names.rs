//! Field validation against a reference model: each type of user name is
//! accepted exactly when it matches its documented pattern, and no text a
//! field accepts carries a control, a noncharacter, a bidi control, or (for
//! names) any character XML or a JID would treat as markup.

use jidgate::db::UserType;
use jidgate::fields::{Des, Password, UserName, check_text, parse_name_list, refused_char};
use proptest::prelude::*;

/// Strings near the patterns: mostly the allowed bytes, some not.
fn near_name() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            6 => prop::sample::select(b"0123456789".to_vec()).prop_map(char::from),
            3 => prop::sample::select(b"abcXYZ.:_-+".to_vec()).prop_map(char::from),
            1 => any::<char>(),
        ],
        0..70,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

/// The documented rules, written independently of the code.
fn model(ty: UserType, s: &str) -> bool {
    let b = s.as_bytes();
    match ty {
        UserType::Phone => {
            let d = s.strip_prefix('+').unwrap_or(s);
            (5..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit())
        }
        UserType::Device => {
            (4..=64).contains(&b.len())
                && b[0].is_ascii_alphanumeric()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".:_-".contains(c))
        }
        UserType::Wechat => {
            (6..=64).contains(&b.len())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        }
    }
}

fn ty() -> impl Strategy<Value = UserType> {
    prop::sample::select(vec![UserType::Phone, UserType::Device, UserType::Wechat])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn user_names_are_accepted_exactly_when_they_match_their_pattern(ty in ty(), s in near_name()) {
        let parsed = UserName::parse(ty, &s);
        prop_assert_eq!(parsed.is_ok(), model(ty, &s), "{:?} {:?}", ty, s);
        if let Ok(n) = parsed {
            prop_assert_eq!(n.as_str(), s.as_str());
            // Every name valid for its type is valid for look-ups too.
            prop_assert!(UserName::parse_any(&s).is_ok());
            // Nothing a JID or XML would read as structure.
            prop_assert!(!s.contains(['<', '>', '&', '\'', '"', '@', '/', ' ']));
        }
    }

    #[test]
    fn valid_names_of_each_type_are_accepted(
        phone in "\\+?[0-9]{5,15}",
        serial in "[A-Za-z0-9][A-Za-z0-9.:_-]{3,63}",
        wechat in "[A-Za-z0-9_-]{6,64}",
    ) {
        prop_assert!(UserName::parse(UserType::Phone, &phone).is_ok());
        prop_assert!(UserName::parse(UserType::Device, &serial).is_ok());
        prop_assert!(UserName::parse(UserType::Wechat, &wechat).is_ok());
    }

    #[test]
    fn look_up_names_and_lists(names in prop::collection::vec(near_name(), 1..6)) {
        let any_ok = |s: &str| {
            (1..=64).contains(&s.len())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "+.:_-".contains(c))
        };
        for n in &names {
            prop_assert_eq!(UserName::parse_any(n).is_ok(), any_ok(n), "{:?}", n);
        }
        let text = serde_json::to_string(&names).unwrap();
        let mut distinct = names.clone();
        distinct.sort();
        distinct.dedup();
        let expect = names.iter().all(|n| any_ok(n)) && distinct.len() == names.len();
        let parsed = parse_name_list(&text, 5);
        prop_assert_eq!(parsed.is_ok(), expect && names.len() <= 5, "{}", text);
        if let Ok(list) = parsed {
            prop_assert_eq!(list, names);
        }
    }

    #[test]
    fn free_text_is_accepted_exactly_when_no_character_is_refused(
        chars in prop::collection::vec(any::<char>(), 0..140),
    ) {
        let s: String = chars.iter().collect();
        let clean = chars.iter().all(|c| refused_char(*c).is_none());
        prop_assert_eq!(check_text("des", &s).is_ok(), clean);
        prop_assert_eq!(Des::parse(&s).is_ok(), clean && chars.len() <= 128);
        prop_assert_eq!(
            Password::parse(&s).is_ok(),
            clean && (6..=128).contains(&chars.len())
        );
        // A refused text's error names the field, never the text.
        if let Err(e) = Password::parse(&s) {
            let msg = e.to_string();
            prop_assert!(msg.contains("password"));
            if chars.len() >= 6 {
                prop_assert!(!msg.contains(&s), "{}", msg);
            }
        }
    }

    #[test]
    fn accepted_text_is_xml_char_data(c in any::<char>()) {
        if refused_char(c).is_none() {
            let n = c as u32;
            // XML 1.0 Char, minus the discouraged controls.
            prop_assert!(n >= 0x20 && n != 0xFFFE && n != 0xFFFF && !(0x7F..=0x9F).contains(&n));
        }
    }
}
