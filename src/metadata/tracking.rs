//! The audit and change-tracking settings of the tables (migration 15): the organisation's
//! `isauditenabled`, each watched table's `ChangeTrackingEnabled` and `IsAuditEnabled`, and
//! the columns' `IsAuditEnabled`. The store holds them; the [`super::Catalog`] keeps the copy
//! last read, which the edge refreshes before it answers what depends on them.

/// The audit and change-tracking settings (migration 15), as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackingSettings {
    /// The tables the change log's triggers watch, each with its settings; no other table
    /// tracks changes or is audited.
    pub tables: Vec<TableTracking>,
    /// The columns whose auditing an administrator set; a column not listed is audited.
    pub columns: Vec<ColumnAudit>,
    /// The organisation's `isauditenabled`.
    pub organization_audit: bool,
}

/// One watched table's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableTracking {
    pub entity: String,
    /// `ChangeTrackingEnabled`.
    pub change_tracking: bool,
    /// `IsAuditEnabled`.
    pub audit: bool,
}

/// One column's `IsAuditEnabled`, as an administrator set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnAudit {
    pub entity: String,
    pub attribute: String,
    pub audit: bool,
}

impl TrackingSettings {
    pub fn table(&self, entity: &str) -> Option<&TableTracking> {
        self.tables.iter().find(|t| t.entity == entity)
    }

    /// Whether `entity` serves delta links.
    pub fn tracks_changes(&self, entity: &str) -> bool {
        self.table(entity).is_some_and(|t| t.change_tracking)
    }

    /// Whether a change of `entity` is audited now (the organisation's switch and the table's).
    pub fn audits(&self, entity: &str) -> bool {
        self.organization_audit && self.table(entity).is_some_and(|t| t.audit)
    }

    /// A column's own `IsAuditEnabled` (on unless an administrator turned it off).
    pub fn audits_column(&self, entity: &str, attribute: &str) -> bool {
        self.columns
            .iter()
            .find(|c| c.entity == entity && c.attribute == attribute)
            .is_none_or(|c| c.audit)
    }
}
