//! `AccessRights`: the flags Dataverse uses to say what a principal may do with one record.
//!
//! The values are Dataverse's (`Microsoft.Dynamics.CRM.AccessRights`, a flags enum): ReadAccess 1,
//! WriteAccess 2, AppendAccess 4, AppendToAccess 16, CreateAccess 32, DeleteAccess 65536,
//! ShareAccess 262144, AssignAccess 524288. On the wire a value is the member names joined by
//! `", "` in ascending bit order (`"ReadAccess, WriteAccess"`); no flag is `"None"`.

use std::fmt;
use std::str::FromStr;

bitflags::bitflags! {
    /// A set of access rights on one record.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
    pub struct AccessRights: u32 {
        const READ = 1;
        const WRITE = 2;
        const APPEND = 4;
        const APPEND_TO = 16;
        const CREATE = 32;
        const DELETE = 65536;
        const SHARE = 262144;
        const ASSIGN = 524288;
    }
}

/// The Dataverse member names, in ascending bit order (the order they are printed in).
const NAMES: &[(AccessRights, &str)] = &[
    (AccessRights::READ, "ReadAccess"),
    (AccessRights::WRITE, "WriteAccess"),
    (AccessRights::APPEND, "AppendAccess"),
    (AccessRights::APPEND_TO, "AppendToAccess"),
    (AccessRights::CREATE, "CreateAccess"),
    (AccessRights::DELETE, "DeleteAccess"),
    (AccessRights::SHARE, "ShareAccess"),
    (AccessRights::ASSIGN, "AssignAccess"),
];

/// The name Dataverse gives the empty set.
const NONE: &str = "None";

/// A member name that `AccessRights` does not have (names are case sensitive, as in Dataverse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("The value '{0}' is not a valid member of the enumeration type 'Microsoft.Dynamics.CRM.AccessRights'.")]
pub struct UnknownAccessRight(pub String);

impl AccessRights {
    /// The Dataverse name of a single flag (`ReadAccess`), or `None` if `self` is not exactly one
    /// known flag.
    pub fn flag_name(self) -> Option<&'static str> {
        NAMES.iter().find(|(f, _)| *f == self).map(|(_, n)| *n)
    }

    /// Parses Dataverse's JSON form: member names separated by commas, spaces around them
    /// ignored. `"None"` stands for no flag. An empty text or an unknown name is refused.
    pub fn parse(text: &str) -> Result<AccessRights, UnknownAccessRight> {
        let mut rights = AccessRights::empty();
        for part in text.split(',') {
            let name = part.trim();
            if name == NONE {
                continue;
            }
            match NAMES.iter().find(|(_, n)| *n == name) {
                Some((flag, _)) => rights |= *flag,
                None => return Err(UnknownAccessRight(name.to_string())),
            }
        }
        Ok(rights)
    }
}

impl fmt::Display for AccessRights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str(NONE);
        }
        let mut first = true;
        for (flag, name) in NAMES {
            if self.contains(*flag) {
                if !first {
                    f.write_str(", ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl FromStr for AccessRights {
    type Err = UnknownAccessRight;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        AccessRights::parse(text)
    }
}

impl serde::Serialize for AccessRights {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for AccessRights {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        AccessRights::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_dataverses() {
        let values: Vec<u32> = NAMES.iter().map(|(f, _)| f.bits()).collect();
        assert_eq!(values, [1, 2, 4, 16, 32, 65536, 262144, 524288]);
    }

    #[test]
    fn prints_names_in_bit_order_joined_by_comma_space() {
        let all = AccessRights::READ
            | AccessRights::WRITE
            | AccessRights::APPEND
            | AccessRights::APPEND_TO
            | AccessRights::DELETE
            | AccessRights::SHARE
            | AccessRights::ASSIGN;
        assert_eq!(
            all.to_string(),
            "ReadAccess, WriteAccess, AppendAccess, AppendToAccess, DeleteAccess, ShareAccess, AssignAccess"
        );
        assert_eq!(
            (AccessRights::WRITE | AccessRights::READ).to_string(),
            "ReadAccess, WriteAccess"
        );
        assert_eq!(AccessRights::empty().to_string(), "None");
    }

    #[test]
    fn parses_names_with_or_without_spaces() {
        assert_eq!(
            AccessRights::parse("ReadAccess, WriteAccess").unwrap(),
            AccessRights::READ | AccessRights::WRITE
        );
        assert_eq!(
            AccessRights::parse("WriteAccess,ReadAccess").unwrap(),
            AccessRights::READ | AccessRights::WRITE
        );
        assert_eq!(AccessRights::parse("None").unwrap(), AccessRights::empty());
        assert_eq!(
            AccessRights::parse("AssignAccess").unwrap(),
            AccessRights::ASSIGN
        );
    }

    #[test]
    fn refuses_unknown_names_wrong_case_numbers_and_empty_text() {
        for bad in [
            "Read",
            "readaccess",
            "ReadAccess, Bogus",
            "1",
            "",
            "ReadAccess,",
        ] {
            assert!(AccessRights::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            AccessRights::parse("ReadAccess, Bogus").unwrap_err(),
            UnknownAccessRight("Bogus".into())
        );
    }

    #[test]
    fn round_trips_through_json() {
        let rights = AccessRights::READ | AccessRights::SHARE;
        let json = serde_json::to_string(&rights).unwrap();
        assert_eq!(json, r#""ReadAccess, ShareAccess""#);
        let back: AccessRights = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rights);
        assert!(serde_json::from_str::<AccessRights>(r#""Nope""#).is_err());
    }

    #[test]
    fn flag_name_names_single_flags_only() {
        assert_eq!(AccessRights::DELETE.flag_name(), Some("DeleteAccess"));
        assert_eq!((AccessRights::READ | AccessRights::WRITE).flag_name(), None);
    }
}
