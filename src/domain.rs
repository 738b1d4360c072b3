//! Types that parse once at the edge, so services never re-check them.

use secrecy::{ExposeSecret, SecretString};

use crate::error::{ApiError, FieldError};

/// A syntactically valid email address, lower-cased so that uniqueness is case-insensitive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        if trimmed.len() > 254 || !email_address::EmailAddress::is_valid(trimmed) {
            return Err(FieldError::new(field, "must be a valid email address"));
        }
        Ok(Email(trimmed.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that meets the policy: 12 to 128 characters, no composition rules, no truncation.
pub struct Password(SecretString);

impl Password {
    pub const MIN_CHARS: usize = 12;
    pub const MAX_CHARS: usize = 128;
    /// Length is the rule (NIST SP 800-63B: no composition rules), but length made of one or two
    /// characters repeated ("aaaaaaaaaaaa", "abababababab") is no strength at all.
    pub const MIN_DISTINCT_CHARS: usize = 5;

    pub fn parse(field: &str, raw: &SecretString) -> Result<Self, FieldError> {
        let text = raw.expose_secret();
        let chars = text.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(FieldError::new(field, "must be at least 12 characters long"));
        }
        if chars > Self::MAX_CHARS {
            return Err(FieldError::new(field, "must be at most 128 characters long"));
        }
        let distinct: std::collections::HashSet<char> = text.chars().collect();
        if distinct.len() < Self::MIN_DISTINCT_CHARS {
            return Err(FieldError::new(field, "must use at least 5 different characters"));
        }
        Ok(Password(raw.clone()))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// Checks a required human-readable text: trimmed, non-empty, at most `max` characters.
pub fn required_text(field: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > max {
        return Err(FieldError::new(field, format!("must be at most {max} characters long")));
    }
    Ok(trimmed.to_owned())
}

/// Checks a required single line (a name, a title): as [`required_text`], and without line
/// breaks or other control characters, which would break the formats that carry it on (an
/// iCalendar property, an e-mail subject, a CSV row).
pub fn required_line(field: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    let text = required_text(field, raw, max)?;
    if has_control(&text) {
        return Err(FieldError::new(field, ONE_LINE));
    }
    Ok(text)
}

/// What a field with a control character is told.
pub const ONE_LINE: &str = "must be a single line without control characters";

pub fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// An http(s) URL of at most 500 bytes, stored as sent: so without control characters, which
/// the URL parser drops where it reads them (a line break in it would be kept in the store).
pub fn is_web_url(text: &str) -> bool {
    text.len() <= 500
        && !has_control(text)
        && url::Url::parse(text).is_ok_and(|url| matches!(url.scheme(), "http" | "https"))
}

/// `text` with every control character made a space: a stored text (from before the rule of
/// [`required_line`]) put where a single line must go.
pub fn as_one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The most characters of a free-text field: a description, a meeting outcome.
pub const LONG_TEXT_MAX: usize = 20_000;

/// Collects field errors so a client sees every problem of a request at once.
#[derive(Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.errors.push(error);
                None
            }
        }
    }

    pub fn add(&mut self, field: &str, message: &str) {
        self.errors.push(FieldError::new(field, message));
    }

    /// Free text (descriptions, outcomes) may be empty but not longer than `LONG_TEXT_MAX`.
    pub fn long_text(&mut self, field: &str, text: Option<&str>) {
        if text.is_some_and(|text| text.chars().count() > LONG_TEXT_MAX) {
            self.add(field, &format!("must be at most {LONG_TEXT_MAX} characters long"));
        }
    }

    /// Dates are of the years 1 to 9999: what both databases store and calendars show.
    pub fn year_in_range(&mut self, field: &str, year: Option<i32>) {
        if year.is_some_and(|year| !(1..=9999).contains(&year)) {
            self.add(field, "must be a date between the years 1 and 9999");
        }
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses a value stored in the database; unknown text is a corrupted row.
            pub fn from_db(text: &str) -> anyhow::Result<Self> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => anyhow::bail!(concat!("unknown ", stringify!($name), " {:?}"), other),
                }
            }
        }
    };
}

pub(crate) use string_enum;

string_enum!(
    /// What an account may do across the portal.
    Role { Member => "member", Secretariat => "secretariat" }
);

string_enum!(
    /// The life of an account: invited until the invitation is accepted.
    MemberStatus { Invited => "invited", Active => "active", Suspended => "suspended" }
);

string_enum!(
    /// The languages mails and pages are written in.
    Locale { En => "en", Es => "es" }
);

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::Password;

    fn parse(text: &str) -> Result<Password, String> {
        Password::parse("password", &SecretString::from(text.to_owned())).map_err(|error| error.message)
    }

    #[test]
    fn a_password_is_12_to_128_characters_of_at_least_5_different_ones() {
        assert!(parse("correct horse battery staple").is_ok());
        assert!(parse("ñandú-ñandú-").is_ok(), "counted in characters, not bytes");
        assert_eq!(
            parse("short-pass1").err().unwrap(),
            "must be at least 12 characters long"
        );
        assert!(parse(&"long enough ".repeat(11)).is_err(), "132 characters");
        for repeated in ["éééééééééééééééé", "abababababababab", "abcdabcdabcdabcd"] {
            assert_eq!(
                parse(repeated).err().unwrap(),
                "must use at least 5 different characters"
            );
        }
        assert!(parse("abcdeabcdeab").is_ok(), "five different characters are enough");
    }
}
