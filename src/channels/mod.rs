//! The SMS channel's pure building blocks: phone-number normalisation and the two providers'
//! webhook formats and signatures.
//!
//! A customer texts an organisation's number; the provider (Twilio or TeleSign) calls smsctx's
//! webhook. Before anything is written the edge must (1) prove the call came from the provider
//! ([`twilio::validate_form`], [`twilio::validate_json`], [`telesign::validate_callback`]),
//! (2) read the provider's payload into one plain struct ([`twilio::TwilioInbound`],
//! [`telesign::TeleSignInbound`]) and (3) normalise both numbers into the form Omnichannel stores
//! ([`phone::PhoneNumber`]). Those three steps live here; finding or opening the engagement
//! context is the store's job.
//!
//! **Architecture invariant:** nothing under `channels` does I/O, reads the clock or the
//! environment, or panics on any input, however hostile; a signature check answers `false`
//! rather than an error, and every comparison of a secret-derived value is constant time.

pub mod outbound;
pub mod phone;
pub mod telesign;
pub mod transcript;
pub mod twilio;

/// The largest callback body either provider sends that smsctx will read. Twilio caps an SMS
/// body at 1,600 characters and its other parameters are short; TeleSign's JSON is smaller
/// still. The edge should refuse larger bodies before they reach the parsers.
pub const MAX_CALLBACK_BYTES: usize = 64 * 1024;

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
