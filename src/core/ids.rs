//! Identifiers checked once, at construction (API.md section 4).
//!
//! Each type can only hold a valid value, so code that receives one need not check again.
//! Nothing is trimmed or normalised: an id with spaces, a `+` or non-ASCII digits is
//! simply invalid. All accepted values are ASCII.

use std::fmt;
use std::str::FromStr;

/// Longest digit run in a JID. Real ones are shorter (phone numbers up to 15 digits,
/// group and LID numbers about 18); the bound only keeps input sizes sane.
pub const MAX_JID_DIGITS: usize = 32;

const MAX_SLUG_LEN: usize = 64;
const MAX_MESSAGE_CODE_LEN: usize = 64;

/// Why an id was refused: a short human reason, suitable for an error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdError(pub &'static str);

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for IdError {}

/// Declares a `String` newtype that can only be built through `parse`.
macro_rules! validated_id {
    ($(#[$attr:meta])* $name:ident, $is_valid:path, $reason:literal) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, IdError> {
                if $is_valid(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError($reason))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
    };
}

validated_id!(
    /// A session id (`{sid}`): `[A-Za-z0-9_-]{1,64}`.
    SessionId,
    is_slug,
    "must be 1-64 characters of A-Z a-z 0-9 _ -"
);

validated_id!(
    /// An organisation id: `[A-Za-z0-9_-]{1,64}`.
    OrgId,
    is_slug,
    "must be 1-64 characters of A-Z a-z 0-9 _ -"
);

validated_id!(
    /// A group JID (`{gjid}`): `DIGITS@g.us` (current groups) or `DIGITS-DIGITS@g.us`
    /// (older groups: creator's number, then creation time), each run 1-32 ASCII digits.
    GroupJid,
    is_group_jid,
    "must be digits, optionally -digits, then @g.us (1-32 digits each)"
);

validated_id!(
    /// A user JID: `DIGITS@s.whatsapp.net` (phone number) or `DIGITS@lid` (linked id),
    /// 1-32 ASCII digits, no leading `+`, no device suffix.
    UserJid,
    is_user_jid,
    "must be digits@s.whatsapp.net or digits@lid (1-32 digits)"
);

validated_id!(
    /// The code of an invite *message*: 1-64 printable ASCII characters without spaces
    /// (0x21-0x7E). Unlike a link code its alphabet is not pinned down, so it is only
    /// bounded, not shaped.
    MessageCode,
    is_message_code,
    "must be 1-64 printable ASCII characters without spaces"
);

fn is_slug(s: &str) -> bool {
    (1..=MAX_SLUG_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_digit_run(s: &str) -> bool {
    (1..=MAX_JID_DIGITS).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_group_jid(s: &str) -> bool {
    let Some(user) = s.strip_suffix("@g.us") else {
        return false;
    };
    match user.split_once('-') {
        Some((first, second)) => is_digit_run(first) && is_digit_run(second),
        None => is_digit_run(user),
    }
}

fn is_user_jid(s: &str) -> bool {
    s.strip_suffix("@s.whatsapp.net")
        .or_else(|| s.strip_suffix("@lid"))
        .is_some_and(is_digit_run)
}

fn is_message_code(s: &str) -> bool {
    (1..=MAX_MESSAGE_CODE_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slugs() {
        let long = "a".repeat(64);
        for ok in ["a", "Z", "0", "_", "-", "sess_01-AB", "---", long.as_str()] {
            assert_eq!(SessionId::parse(ok).map(|v| v.to_string()), Ok(ok.into()));
            assert_eq!(
                OrgId::parse(ok).map(|v| v.as_str().to_owned()),
                Ok(ok.into())
            );
        }
        let too_long = "a".repeat(65);
        for bad in [
            "",
            " ",
            " a",
            "a ",
            "a b",
            "a.b",
            "a/b",
            "a@b",
            "a+b",
            "é",
            "a\u{0}",
            "\u{ff41}", // fullwidth a
            "١",        // Arabic-Indic one
            too_long.as_str(),
        ] {
            let err = IdError("must be 1-64 characters of A-Z a-z 0-9 _ -");
            assert_eq!(SessionId::parse(bad), Err(err), "{bad:?}");
            assert_eq!(OrgId::parse(bad), Err(err), "{bad:?}");
        }
    }

    #[test]
    fn group_jids() {
        let d32 = "9".repeat(32);
        let max = format!("{d32}-{d32}@g.us");
        for ok in [
            "120363012345678901@g.us",
            "15551234567-1600000000@g.us",
            "0@g.us",
            "1-2@g.us",
            max.as_str(),
        ] {
            assert_eq!(GroupJid::parse(ok).map(|v| v.to_string()), Ok(ok.into()));
        }
        let d33 = "9".repeat(33);
        let long_first = format!("{d33}-1@g.us");
        let long_second = format!("1-{d33}@g.us");
        let long_only = format!("{d33}@g.us");
        for bad in [
            "",
            "@g.us",
            "-@g.us",
            "1-@g.us",
            "-1@g.us",
            "1--2@g.us",
            "1-2-3@g.us",
            "+1@g.us",
            "1 @g.us",
            " 1@g.us",
            "1@g.us ",
            "1@G.US",
            "1@g.us.",
            "1@g_us",
            "1@s.whatsapp.net",
            "1@lid",
            "12a@g.us",
            "١٢@g.us",
            "１@g.us",
            "1@g.us@g.us",
            long_first.as_str(),
            long_second.as_str(),
            long_only.as_str(),
        ] {
            assert!(GroupJid::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn user_jids() {
        let max = format!("{}@lid", "1".repeat(32));
        for ok in [
            "15551234567@s.whatsapp.net",
            "123456789012345@lid",
            "0@lid",
            max.as_str(),
        ] {
            assert_eq!(UserJid::parse(ok).map(|v| v.to_string()), Ok(ok.into()));
        }
        let too_long = format!("{}@lid", "1".repeat(33));
        for bad in [
            "",
            "@lid",
            "@s.whatsapp.net",
            "+15551234567@s.whatsapp.net",
            "1555-1234567@s.whatsapp.net",
            "15551234567:12@s.whatsapp.net",
            "15551234567@c.us",
            "15551234567@S.WHATSAPP.NET",
            "15551234567@whatsapp.net",
            "15551234567@g.us",
            "15551234567",
            "15551234567 @lid",
            "15551234567@lid ",
            "١٢٣@lid",
            "1@lid@lid",
            "1@s.whatsapp.net@lid",
            too_long.as_str(),
        ] {
            assert!(UserJid::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn message_codes() {
        let long = "~".repeat(64);
        for ok in ["A", "!", "~", "AbCdEfGh12345678", "a+b/c=d", long.as_str()] {
            assert_eq!(MessageCode::parse(ok).map(|v| v.to_string()), Ok(ok.into()));
        }
        let too_long = "a".repeat(65);
        for bad in [
            "",
            " ",
            "a b",
            " a",
            "a\t",
            "a\n",
            "\u{7f}",
            "é",
            "\u{a0}",
            too_long.as_str(),
        ] {
            assert!(MessageCode::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_and_from_str() {
        let err = UserJid::parse("x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "must be digits@s.whatsapp.net or digits@lid (1-32 digits)"
        );
        let sid: SessionId = "abc".parse().unwrap();
        assert_eq!(sid.as_str(), "abc");
        assert_eq!(format!("{sid:?}"), "SessionId(\"abc\")");
        assert!("a b".parse::<OrgId>().is_err());
    }

    // ---- properties: each parser against an independent statement of its regex ----

    fn slug_spec(s: &str) -> bool {
        let n = s.chars().count();
        (1..=64).contains(&n)
            && s.chars().all(|c| {
                c.is_ascii_uppercase()
                    || c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || "_-".contains(c)
            })
    }

    fn digits_spec(s: &str) -> bool {
        let n = s.chars().count();
        (1..=32).contains(&n) && s.chars().all(|c| "0123456789".contains(c))
    }

    fn group_spec(s: &str) -> bool {
        match s.rsplit_once('@') {
            Some((user, "g.us")) => {
                let parts: Vec<&str> = user.split('-').collect();
                (1..=2).contains(&parts.len()) && parts.iter().all(|p| digits_spec(p))
            }
            _ => false,
        }
    }

    fn user_spec(s: &str) -> bool {
        match s.rsplit_once('@') {
            Some((user, "s.whatsapp.net" | "lid")) => digits_spec(user),
            _ => false,
        }
    }

    fn message_code_spec(s: &str) -> bool {
        let n = s.chars().count();
        (1..=64).contains(&n) && s.chars().all(|c| ('!'..='~').contains(&c))
    }

    fn candidates() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_-]{0,70}",
            "[A-Za-z0-9_ .@+-]{0,70}",
            "[\\x20-\\x7f]{0,70}",
            "[0-9]{0,34}(-[0-9]{0,34})?@(g\\.us|s\\.whatsapp\\.net|lid|G\\.us|g\\.us\\.)",
            "\\+?[0-9٠-٩０-９]{0,34}@(g\\.us|lid|s\\.whatsapp\\.net)",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn generated_from_the_regex_are_accepted(
            slug in "[A-Za-z0-9_-]{1,64}",
            group in "[0-9]{1,32}(-[0-9]{1,32})?@g\\.us",
            user in "[0-9]{1,32}@(s\\.whatsapp\\.net|lid)",
            code in "[!-~]{1,64}",
        ) {
            prop_assert!(SessionId::parse(&slug).is_ok());
            prop_assert!(OrgId::parse(&slug).is_ok());
            prop_assert!(GroupJid::parse(&group).is_ok());
            prop_assert!(UserJid::parse(&user).is_ok());
            prop_assert!(MessageCode::parse(&code).is_ok());
        }

        #[test]
        fn parse_agrees_with_the_spec(s in candidates()) {
            prop_assert_eq!(SessionId::parse(&s).is_ok(), slug_spec(&s));
            prop_assert_eq!(OrgId::parse(&s).is_ok(), slug_spec(&s));
            prop_assert_eq!(GroupJid::parse(&s).is_ok(), group_spec(&s));
            prop_assert_eq!(UserJid::parse(&s).is_ok(), user_spec(&s));
            prop_assert_eq!(MessageCode::parse(&s).is_ok(), message_code_spec(&s));
            if let Ok(id) = GroupJid::parse(&s) {
                prop_assert_eq!(id.as_str(), s.as_str());
            }
        }
    }
}
