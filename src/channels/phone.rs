//! Phone numbers as the SMS channel stores them: parsed with a real numbering-plan library and
//! normalised to the form Omnichannel keeps in `msdyn_orgphonenumber` and
//! `msdyn_customerphonenumber`.
//!
//! Microsoft's SMS channel set-up pages (Twilio, TeleSign and Infobip) ask for numbers "in the
//! `<country_code><phone_number>` format, such as 14252306549", with "no blank spaces, special
//! characters, or the plus sign". That is the E.164 number without its `+`, which is what
//! [`PhoneNumber::omnichannel_form`] returns. Because every spelling of a number is parsed into
//! one [`PhoneNumber`] first, a national spelling (`(425) 230-6549` with region `US`), an
//! international one (`011 1 425 230 6549` from the US, `00 1 425 230 6549` from Europe) and a
//! `+`-prefixed one all meet in the same stored string.
//!
//! Parsing is done by the `phonenumber` crate (a port of Google's libphonenumber) and the number
//! must be *valid* for its numbering plan, not merely plausible. Input is screened before the
//! crate sees it: at most [`MAX_INPUT_CHARS`] characters, and only digits, `+` and the usual
//! separators, so vanity spellings with letters and RFC 3966 `tel:` URIs are refused.
//!
//! **Architecture invariant:** this module does no I/O and never panics on any input.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use phonenumber::{country, Mode};

/// The longest input accepted, in characters. E.164 numbers have at most 15 digits; this leaves
/// room for an international prefix, spaces and punctuation, and keeps hostile input small.
pub const MAX_INPUT_CHARS: usize = 40;

/// Why a string is not a phone number smsctx can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("the phone number is empty")]
    Empty,
    #[error("the phone number is longer than {MAX_INPUT_CHARS} characters")]
    TooLong,
    #[error(
        "the phone number contains '{0}'; only digits, '+', spaces and the separators - . ( ) / \
         are allowed"
    )]
    InvalidCharacter(char),
    #[error("'{0}' is not a known two-letter region code")]
    UnknownRegion(String),
    #[error(
        "the phone number '{0}' has no country calling code; write it with a leading '+' or \
         give a default region"
    )]
    MissingCountryCode(String),
    #[error("the phone number '{number}' could not be parsed: {reason}")]
    Unparseable { number: String, reason: String },
    #[error("the phone number '{0}' is too short")]
    TooShort(String),
    #[error("the phone number '{0}' is not a valid number in its country's numbering plan")]
    Invalid(String),
}

/// A valid phone number in canonical form. Two `PhoneNumber`s are equal when they are the same
/// number, however they were spelled.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber {
    /// The E.164 form with its leading `+`, e.g. `+14252306549`.
    e164: String,
    /// The country calling code, e.g. `1` or `91`.
    country_code: u16,
    /// The region (ISO 3166-1 alpha-2) the number belongs to, when the plan names one.
    region: Option<String>,
}

impl PhoneNumber {
    /// Parses any common spelling of a phone number.
    ///
    /// `default_region` is an ISO 3166-1 alpha-2 code (`"US"`, `"IN"`, …) used for numbers
    /// written without a country calling code; it also decides which international prefix
    /// (`011` in the US, `00` in most of Europe) is recognised. Numbers starting with `+` need
    /// no region.
    pub fn parse(raw: &str, default_region: Option<&str>) -> Result<PhoneNumber, PhoneError> {
        let text = screen(raw)?;
        let region = match default_region {
            Some(code) => Some(region_id(code)?),
            None => None,
        };
        if region.is_none() && !text.starts_with('+') {
            return Err(PhoneError::MissingCountryCode(text.to_owned()));
        }

        // The crate has been fuzzed clean on screened input, but it is third-party code fed by
        // strangers; a panic inside it must become an error here, not a dead worker.
        let parsed = catch_unwind(AssertUnwindSafe(|| {
            phonenumber::parse(region, text).map(|number| {
                let valid = number.is_valid();
                let e164 = number.format().mode(Mode::E164).to_string();
                let region = number.country().id().map(|id| id.as_ref().to_owned());
                (valid, e164, number.code().value(), region)
            })
        }));
        let (valid, e164, country_code, region) = match parsed {
            Ok(Ok(parts)) => parts,
            Ok(Err(error)) => return Err(parse_error(text, error)),
            Err(_) => {
                return Err(PhoneError::Unparseable {
                    number: text.to_owned(),
                    reason: "the numbering-plan library failed on it".to_owned(),
                })
            }
        };
        if !valid {
            return Err(PhoneError::Invalid(text.to_owned()));
        }
        Ok(PhoneNumber {
            e164,
            country_code,
            region,
        })
    }

    /// Parses the digits-only international form without `+`: the form Omnichannel stores and
    /// the form TeleSign sends (`"14252306549"`).
    pub fn parse_omnichannel(digits: &str) -> Result<PhoneNumber, PhoneError> {
        let text = screen(digits)?;
        if let Some(bad) = text.chars().find(|c| !c.is_ascii_digit()) {
            return Err(PhoneError::InvalidCharacter(bad));
        }
        PhoneNumber::parse(&format!("+{text}"), None)
    }

    /// The country calling code as Omnichannel writes it in `msdyn_countrycode`: `"1"`, `"91"`.
    pub fn country_code(&self) -> String {
        self.country_code.to_string()
    }

    /// The stored form: country calling code followed by the national number, digits only, no
    /// `+` (`"14252306549"`).
    pub fn omnichannel_form(&self) -> String {
        self.e164.trim_start_matches('+').to_owned()
    }

    /// The region the number belongs to (`"US"`, `"IN"`), when its numbering plan names one:
    /// the default region for reading national spellings of numbers that write to it.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The E.164 form with its leading `+` (`"+14252306549"`), as provider APIs expect it.
    pub fn e164(&self) -> String {
        self.e164.clone()
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.e164)
    }
}

/// Checks length and characters and returns the trimmed text.
fn screen(raw: &str) -> Result<&str, PhoneError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(PhoneError::Empty);
    }
    if text.chars().count() > MAX_INPUT_CHARS {
        return Err(PhoneError::TooLong);
    }
    if let Some(bad) = text
        .chars()
        .find(|c| !(c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')' | '/')))
    {
        return Err(PhoneError::InvalidCharacter(bad));
    }
    // A '+' is only meaningful as the first character.
    if text.char_indices().any(|(i, c)| c == '+' && i > 0) {
        return Err(PhoneError::InvalidCharacter('+'));
    }
    Ok(text)
}

fn region_id(code: &str) -> Result<country::Id, PhoneError> {
    let upper = code.trim().to_ascii_uppercase();
    if upper.len() != 2 || !upper.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(PhoneError::UnknownRegion(code.to_owned()));
    }
    upper
        .parse::<country::Id>()
        .map_err(|_| PhoneError::UnknownRegion(code.to_owned()))
}

fn parse_error(text: &str, error: phonenumber::ParseError) -> PhoneError {
    use phonenumber::ParseError as E;
    match error {
        E::TooShortNsn | E::TooShortAfterIdd => PhoneError::TooShort(text.to_owned()),
        E::NoNumber => PhoneError::TooShort(text.to_owned()),
        E::TooLong => PhoneError::Invalid(text.to_owned()),
        E::InvalidCountryCode => PhoneError::Unparseable {
            number: text.to_owned(),
            reason: "its country calling code is not assigned".to_owned(),
        },
        other => PhoneError::Unparseable {
            number: text.to_owned(),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `raw` and compares the omnichannel form, or the error, with `expected`.
    fn check(raw: &str, region: Option<&str>, expected: Result<&str, PhoneError>) {
        let actual = PhoneNumber::parse(raw, region).map(|n| n.omnichannel_form());
        assert_eq!(
            actual,
            expected.map(str::to_owned),
            "input {raw:?} region {region:?}"
        );
    }

    #[test]
    fn spellings_of_one_us_number_meet() {
        let expected = Ok("14252306549");
        check("(425) 230-6549", Some("US"), expected.clone());
        check("425.230.6549", Some("us"), expected.clone());
        check("1-425-230-6549", Some("US"), expected.clone());
        check("14252306549", Some("US"), expected.clone());
        check("+1 425 230 6549", None, expected.clone());
        check("+14252306549", Some("GB"), expected.clone());
        check("011 1 425 230 6549", Some("US"), expected.clone());
        check("00 1 425 230 6549", Some("GB"), expected.clone());
        check("  +1 (425) 230-6549  ", None, expected);
    }

    #[test]
    fn spellings_of_one_indian_number_meet() {
        let expected = Ok("919876543210");
        check("098765 43210", Some("IN"), expected.clone());
        check("+91 98765 43210", None, expected.clone());
        check("011 91 98765 43210", Some("US"), expected.clone());
        check("00 91 98765 43210", Some("GB"), expected);
    }

    #[test]
    fn national_trunk_prefix_is_dropped_but_italian_leading_zero_is_kept() {
        check("020 7946 0958", Some("GB"), Ok("442079460958"));
        check("+44 20 7946 0958", None, Ok("442079460958"));
        check("06 1234 5678", Some("IT"), Ok("390612345678"));
        check("+39 06 1234 5678", None, Ok("390612345678"));
    }

    #[test]
    fn accessors() {
        let us = PhoneNumber::parse("(425) 230-6549", Some("US")).unwrap();
        assert_eq!(us.country_code(), "1");
        assert_eq!(us.e164(), "+14252306549");
        assert_eq!(us.to_string(), "+14252306549");
        assert_eq!(us.region(), Some("US"));
        let india = PhoneNumber::parse("+91 98765 43210", None).unwrap();
        assert_eq!(india.region(), Some("IN"));
        assert_eq!(india.country_code(), "91");
        assert_eq!(india.e164(), "+919876543210");
        assert_eq!(
            PhoneNumber::parse("425 230 6549", Some("US")).unwrap(),
            PhoneNumber::parse("+14252306549", None).unwrap()
        );
    }

    #[test]
    fn omnichannel_form_round_trips() {
        let number = PhoneNumber::parse_omnichannel("14252306549").unwrap();
        assert_eq!(number.omnichannel_form(), "14252306549");
        assert_eq!(
            number,
            PhoneNumber::parse("(425) 230-6549", Some("US")).unwrap()
        );
        assert_eq!(
            PhoneNumber::parse_omnichannel("+14252306549"),
            Err(PhoneError::InvalidCharacter('+'))
        );
        assert_eq!(
            PhoneNumber::parse_omnichannel("1 425 230 6549"),
            Err(PhoneError::InvalidCharacter(' '))
        );
    }

    #[test]
    fn invalid_numbers_are_refused() {
        check("", Some("US"), Err(PhoneError::Empty));
        check("   ", None, Err(PhoneError::Empty));
        check("12", Some("US"), Err(PhoneError::TooShort("12".into())));
        check("123", Some("US"), Err(PhoneError::Invalid("123".into())));
        check("+1", None, Err(PhoneError::TooShort("+1".into())));
        check("+", None, Err(PhoneError::TooShort("+".into())));
        // 555 numbers outside the 555-01XX fiction range are not assigned.
        check(
            "+1 555 555 0100",
            None,
            Err(PhoneError::Invalid("+1 555 555 0100".into())),
        );
        check(
            "4252306549",
            None,
            Err(PhoneError::MissingCountryCode("4252306549".into())),
        );
        assert!(matches!(
            PhoneNumber::parse("+999 1234567", None),
            Err(PhoneError::Unparseable { .. })
        ));
        check(
            "99999999999999999999999",
            Some("US"),
            Err(PhoneError::Invalid("99999999999999999999999".into())),
        );
    }

    #[test]
    fn letters_and_odd_characters_are_refused() {
        check(
            "425-CALL-NOW",
            Some("US"),
            Err(PhoneError::InvalidCharacter('C')),
        );
        check(
            "tel:+1-425-230-6549",
            None,
            Err(PhoneError::InvalidCharacter('t')),
        );
        check(
            "425 230 6549 x12",
            Some("US"),
            Err(PhoneError::InvalidCharacter('x')),
        );
        check("1+4252306549", None, Err(PhoneError::InvalidCharacter('+')));
        check(
            "４２５２３０６５４９",
            Some("US"),
            Err(PhoneError::InvalidCharacter('４')),
        );
        check(
            "+1 425\u{0}230",
            None,
            Err(PhoneError::InvalidCharacter('\u{0}')),
        );
    }

    #[test]
    fn length_limit() {
        let long = "1".repeat(MAX_INPUT_CHARS + 1);
        check(&long, Some("US"), Err(PhoneError::TooLong));
        let huge = "9".repeat(1_000_000);
        check(&huge, None, Err(PhoneError::TooLong));
    }

    #[test]
    fn unknown_regions_are_refused() {
        check(
            "425 230 6549",
            Some("XX"),
            Err(PhoneError::UnknownRegion("XX".into())),
        );
        check(
            "425 230 6549",
            Some("USA"),
            Err(PhoneError::UnknownRegion("USA".into())),
        );
        check(
            "425 230 6549",
            Some("é"),
            Err(PhoneError::UnknownRegion("é".into())),
        );
    }

    #[test]
    fn error_messages_are_clear() {
        let error = PhoneNumber::parse("425-CALL-NOW", Some("US")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the phone number contains 'C'; only digits, '+', spaces and the separators - . ( ) / \
             are allowed"
        );
        let error = PhoneNumber::parse("4252306549", None).unwrap_err();
        assert!(error.to_string().contains("no country calling code"));
    }

    #[test]
    fn no_panic_on_screened_garbage() {
        // A small deterministic sweep over the characters that pass screening.
        let alphabet: Vec<char> = "0123456789+-(). /".chars().collect();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..3_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % (MAX_INPUT_CHARS as u64 + 1)) as usize;
            let text: String = (0..len)
                .map(|k| alphabet[((state >> (k % 48)) as usize + k) % alphabet.len()])
                .collect();
            let region = [None, Some("US"), Some("GB"), Some("IN")][i % 4];
            let _ = PhoneNumber::parse(&text, region);
            let _ = PhoneNumber::parse_omnichannel(&text);
        }
    }
}
