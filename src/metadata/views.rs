//! The view tables (`savedquery`, system views; `userquery`, personal views): the columns the
//! view runner reads, named once, and the default system views smsctx seeds for the tables it
//! serves, as data (name, table, query type, FetchXML, grid layout).

pub const SAVED_QUERY: &str = "savedquery";
pub const USER_QUERY: &str = "userquery";
pub const NAME: &str = "name";
pub const FETCH_XML: &str = "fetchxml";
pub const LAYOUT_XML: &str = "layoutxml";
pub const RETURNED_TYPE_CODE: &str = "returnedtypecode";
pub const QUERY_TYPE: &str = "querytype";
pub const IS_DEFAULT: &str = "isdefault";
pub const IS_QUICK_FIND_QUERY: &str = "isquickfindquery";

/// `querytype` values of Dataverse's SavedQueryQueryType.
pub const MAIN_APPLICATION_VIEW: i64 = 0;
pub const ADVANCED_SEARCH: i64 = 1;
pub const LOOKUP_VIEW: i64 = 64;

/// One default system view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemView {
    pub name: &'static str,
    /// The table's logical name (`returnedtypecode`).
    pub table: &'static str,
    pub query_type: i64,
    pub is_default: bool,
    /// The `<filter>` of the view's FetchXML, empty for every row.
    filter: &'static str,
    /// The columns shown, the first one the primary name; the first is also the sort order.
    columns: &'static [&'static str],
    primary_id: &'static str,
}

impl SystemView {
    pub fn fetch_xml(&self) -> String {
        let attributes: String = std::iter::once(self.primary_id)
            .chain(self.columns.iter().copied())
            .map(|c| format!("<attribute name=\"{c}\" />"))
            .collect();
        format!(
            "<fetch version=\"1.0\" mapping=\"logical\"><entity name=\"{}\">{attributes}<order attribute=\"{}\" descending=\"false\" />{}</entity></fetch>",
            self.table, self.columns[0], self.filter
        )
    }

    /// The grid layout; `object_type_code` is the table's code (the grid's `object`).
    pub fn layout_xml(&self, object_type_code: u32) -> String {
        let cells: String = self
            .columns
            .iter()
            .map(|c| format!("<cell name=\"{c}\" width=\"150\" />"))
            .collect();
        format!(
            "<grid name=\"resultset\" object=\"{object_type_code}\" jump=\"{}\" select=\"1\" icon=\"1\" preview=\"1\"><row name=\"result\" id=\"{}\">{cells}</row></grid>",
            self.columns[0], self.primary_id
        )
    }
}

const ACTIVE: &str = "<filter type=\"and\"><condition attribute=\"statecode\" operator=\"eq\" value=\"0\" /></filter>";
const INACTIVE: &str = "<filter type=\"and\"><condition attribute=\"statecode\" operator=\"eq\" value=\"1\" /></filter>";
const CONTEXT: &str = "msdyn_smsengagementctx";
const CONTEXT_ID: &str = "msdyn_smsengagementctxid";
const CONTEXT_COLUMNS: &[&str] = &[
    "msdyn_name",
    "msdyn_customerphonenumber",
    "msdyn_orgphonenumber",
    "createdon",
];

/// The default system views: those Dataverse has for the SMS Engagement Context table, and the
/// active/closed views of conversations and the enabled users view.
pub const DEFAULT_VIEWS: &[SystemView] = &[
    SystemView {
        name: "Active SMS Engagement Contexts",
        table: CONTEXT,
        query_type: MAIN_APPLICATION_VIEW,
        is_default: true,
        filter: ACTIVE,
        columns: CONTEXT_COLUMNS,
        primary_id: CONTEXT_ID,
    },
    SystemView {
        name: "Inactive SMS Engagement Contexts",
        table: CONTEXT,
        query_type: MAIN_APPLICATION_VIEW,
        is_default: false,
        filter: INACTIVE,
        columns: CONTEXT_COLUMNS,
        primary_id: CONTEXT_ID,
    },
    SystemView {
        name: "SMS Engagement Context Advanced Find View",
        table: CONTEXT,
        query_type: ADVANCED_SEARCH,
        is_default: true,
        filter: ACTIVE,
        columns: CONTEXT_COLUMNS,
        primary_id: CONTEXT_ID,
    },
    SystemView {
        name: "SMS Engagement Context Lookup View",
        table: CONTEXT,
        query_type: LOOKUP_VIEW,
        is_default: true,
        filter: ACTIVE,
        columns: &["msdyn_name", "createdon"],
        primary_id: CONTEXT_ID,
    },
    SystemView {
        name: "Active Conversations",
        table: "msdyn_ocliveworkitem",
        query_type: MAIN_APPLICATION_VIEW,
        is_default: true,
        filter: ACTIVE,
        columns: &["subject", "createdon"],
        primary_id: "activityid",
    },
    SystemView {
        name: "Closed Conversations",
        table: "msdyn_ocliveworkitem",
        query_type: MAIN_APPLICATION_VIEW,
        is_default: false,
        filter: "<filter type=\"and\"><condition attribute=\"statecode\" operator=\"eq\" value=\"1\" /></filter>",
        columns: &["subject", "createdon"],
        primary_id: "activityid",
    },
    SystemView {
        name: "Enabled Users",
        table: "systemuser",
        query_type: MAIN_APPLICATION_VIEW,
        is_default: true,
        filter: "<filter type=\"and\"><condition attribute=\"isdisabled\" operator=\"eq\" value=\"0\" /></filter>",
        columns: &["fullname", "domainname", "businessunitid"],
        primary_id: "systemuserid",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_view_compiles_against_its_table() {
        let catalog = crate::metadata::Catalog::builtin().unwrap();
        for view in DEFAULT_VIEWS {
            let query = crate::query::fetchxml::parse(&catalog, &view.fetch_xml())
                .unwrap_or_else(|e| panic!("{}: {e}", view.name));
            assert_eq!(query.entity.logical_name, view.table);
            assert!(view.layout_xml(1).contains(view.columns[0]));
        }
    }
}
