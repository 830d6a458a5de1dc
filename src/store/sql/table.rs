//! The SQL text of one table, built once from its metadata through a [`Dialect`]: the select of
//! a row by id (with and without the lookups' names), the insert, the delete, the read of the
//! version, the copy of a whole row, and each update's statement. Both backends use it; they
//! differ only in the dialect's placeholders, typed NULLs and where versions come from.

use std::collections::HashMap;

use uuid::Uuid;

use super::Dialect;
use crate::metadata::system::VERSION_NUMBER;
use crate::metadata::{Catalog, Entity};
use crate::store::{Expect, Value};

/// The SQL text of one table.
#[derive(Debug, Clone)]
pub struct TableSql {
    pub select: String,
    pub select_with_names: String,
    /// The select list of the stored columns (`t.a, t.b`), and with the lookup names.
    pub columns: String,
    pub columns_with_names: String,
    /// The LEFT JOINs that bring the lookup names.
    pub joins: String,
    /// How many columns `columns_with_names` selects (the stored columns, then the names).
    pub width_with_names: usize,
    /// The insert of a new row. It binds `insert_positions` in order; when the database assigns
    /// versions ([`Dialect::next_version`]) the version is its own and the statement returns it.
    pub insert: String,
    pub insert_positions: Vec<usize>,
    /// `INSERT` of a whole row with its own version; on a conflict, the newer version wins.
    pub copy: String,
    pub delete: String,
    /// The delete of a row at one version (id, version).
    pub delete_expect: String,
    /// The read of a row's version by id.
    pub version: String,
    /// Positions of the stored columns, in select order.
    pub stored: Vec<usize>,
    /// For the names select: per shadow column position, the index of its name expression.
    pub names: Vec<(usize, usize)>,
    /// The stored text columns (compared case-insensitively, [`Dialect::text_operand`]).
    pub text_columns: Vec<String>,
}

impl TableSql {
    /// The select list (with the lookups' names or without), the joins it needs, and how many
    /// columns it selects.
    pub fn select_list(&self, with_names: bool) -> (&str, &str, usize) {
        if with_names {
            (&self.columns_with_names, &self.joins, self.width_with_names)
        } else {
            (&self.columns, "", self.stored.len())
        }
    }

    pub fn build(entity: &Entity, catalog: &Catalog, dialect: &dyn Dialect) -> TableSql {
        let p = |n: usize| dialect.placeholder(n);
        let table = &entity.logical_name;
        let pk = &entity.primary_id;
        let stored: Vec<usize> = entity.stored_attributes().map(|(i, _)| i).collect();
        let column_list = stored
            .iter()
            .map(|&i| format!("t.{}", entity.attributes[i].logical_name))
            .collect::<Vec<_>>()
            .join(", ");

        // Name expressions for lookups: a LEFT JOIN per target, coalesced.
        let mut joins = String::new();
        let mut join_count = 0;
        let mut name_exprs: Vec<String> = Vec::new();
        let mut lookup_name_index: HashMap<&str, usize> = HashMap::new();
        for (_, attribute) in entity.stored_attributes() {
            if !attribute.attribute_type.is_lookup() {
                continue;
            }
            let mut parts = Vec::new();
            for target in &attribute.targets {
                let Some(target_entity) = catalog.entity(target) else {
                    continue;
                };
                let alias = format!("j{join_count}");
                join_count += 1;
                joins.push_str(&format!(
                    " LEFT JOIN {target} AS {alias} ON {alias}.{} = t.{}",
                    target_entity.primary_id, attribute.logical_name
                ));
                parts.push(format!("{alias}.{}", target_entity.primary_name));
            }
            let expr = match parts.len() {
                0 => dialect.null_text().to_string(),
                1 => parts.remove(0),
                _ => format!("COALESCE({})", parts.join(", ")),
            };
            lookup_name_index.insert(attribute.logical_name.as_str(), name_exprs.len());
            name_exprs.push(expr);
        }
        let names: Vec<(usize, usize)> = entity
            .attributes
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                let of = a.attribute_of.as_deref()?;
                Some((i, *lookup_name_index.get(of)?))
            })
            .collect();
        let names_list = if name_exprs.is_empty() {
            String::new()
        } else {
            format!(", {}", name_exprs.join(", "))
        };

        let next_version = dialect.next_version();
        let mut insert_columns = Vec::with_capacity(stored.len());
        let mut insert_values = Vec::with_capacity(stored.len());
        let mut insert_positions = Vec::with_capacity(stored.len());
        for &i in &stored {
            let name = entity.attributes[i].logical_name.as_str();
            insert_columns.push(name);
            match next_version {
                Some(next) if name == VERSION_NUMBER => insert_values.push(next.to_string()),
                _ => {
                    insert_positions.push(i);
                    insert_values.push(p(insert_positions.len()));
                }
            }
        }
        let returning = match next_version {
            Some(_) => format!(" RETURNING {VERSION_NUMBER}"),
            None => String::new(),
        };
        let copy_placeholders: Vec<String> = (1..=stored.len()).map(p).collect();
        let copy_updates: Vec<String> = insert_columns
            .iter()
            .filter(|c| **c != pk.as_str())
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        let copy = format!(
            "INSERT INTO {table} AS t ({}) VALUES ({}) ON CONFLICT ({pk}) DO UPDATE SET {} \
             WHERE t.{VERSION_NUMBER} < EXCLUDED.{VERSION_NUMBER}",
            insert_columns.join(", "),
            copy_placeholders.join(", "),
            copy_updates.join(", ")
        );
        let text_columns = entity
            .stored_attributes()
            .filter(|(_, a)| {
                use crate::metadata::AttributeType as T;
                matches!(a.attribute_type, T::String | T::Memo | T::EntityName)
            })
            .map(|(_, a)| a.logical_name.clone())
            .collect();
        TableSql {
            text_columns,
            select: format!(
                "SELECT {column_list} FROM {table} AS t WHERE t.{pk} = {}",
                p(1)
            ),
            select_with_names: format!(
                "SELECT {column_list}{names_list} FROM {table} AS t{joins} WHERE t.{pk} = {}",
                p(1)
            ),
            columns_with_names: format!("{column_list}{names_list}"),
            width_with_names: stored.len() + name_exprs.len(),
            columns: column_list,
            joins,
            insert: format!(
                "INSERT INTO {table} ({}) VALUES ({}){returning}",
                insert_columns.join(", "),
                insert_values.join(", ")
            ),
            insert_positions,
            copy,
            delete: format!("DELETE FROM {table} WHERE {pk} = {}", p(1)),
            delete_expect: format!(
                "DELETE FROM {table} WHERE {pk} = {} AND {VERSION_NUMBER} = {}",
                p(1),
                p(2)
            ),
            version: format!("SELECT {VERSION_NUMBER} FROM {table} WHERE {pk} = {}", p(1)),
            stored,
            names,
        }
    }

    /// The update of `changes` (stored columns other than the version) on row `id`, with its
    /// bound values. The new version is `version` when the caller assigns it, else the
    /// database's ([`Dialect::next_version`], returned by the statement); `expect` adds the
    /// compare-and-set on the current version.
    pub fn update(
        dialect: &dyn Dialect,
        entity: &Entity,
        id: Uuid,
        changes: &[(usize, Value)],
        version: i64,
        expect: Expect,
    ) -> (String, Vec<Value>) {
        let mut assignments = Vec::with_capacity(changes.len() + 1);
        let mut values: Vec<Value> = Vec::with_capacity(changes.len() + 3);
        for (position, value) in changes {
            let attribute = &entity.attributes[*position];
            if !attribute.is_stored() || attribute.logical_name == VERSION_NUMBER {
                continue;
            }
            values.push(value.clone());
            let placeholder = dialect.placeholder(values.len());
            assignments.push(format!("{} = {placeholder}", attribute.logical_name));
        }
        match dialect.next_version() {
            Some(next) => assignments.push(format!("{VERSION_NUMBER} = {next}")),
            None => {
                values.push(Value::Int(version));
                let placeholder = dialect.placeholder(values.len());
                assignments.push(format!("{VERSION_NUMBER} = {placeholder}"));
            }
        }
        values.push(Value::Guid(id));
        let mut text = format!(
            "UPDATE {} SET {} WHERE {} = {}",
            entity.logical_name,
            assignments.join(", "),
            entity.primary_id,
            dialect.placeholder(values.len())
        );
        if let Expect::Version(expected) = expect {
            values.push(Value::Int(expected));
            let placeholder = dialect.placeholder(values.len());
            text.push_str(&format!(" AND {VERSION_NUMBER} = {placeholder}"));
        }
        if dialect.next_version().is_some() {
            text.push_str(&format!(" RETURNING {VERSION_NUMBER}"));
        }
        (text, values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::{Postgres, Sqlite};

    /// Postgres' text with `$n` written as SQLite's `?n`.
    fn as_sqlite(text: &str) -> String {
        text.replace('$', "?")
    }

    #[test]
    fn both_dialects_share_one_table_sql() {
        let catalog = Catalog::with_channels().unwrap();
        for entity in catalog.entities() {
            let lite = TableSql::build(entity, &catalog, &Sqlite);
            let pg = TableSql::build(entity, &catalog, &Postgres);
            for (a, b) in [
                (&lite.select, &pg.select),
                (&lite.delete, &pg.delete),
                (&lite.delete_expect, &pg.delete_expect),
                (&lite.version, &pg.version),
                (&lite.copy, &pg.copy),
            ] {
                assert_eq!(*a, as_sqlite(b), "{}", entity.logical_name);
            }
            assert_eq!(lite.stored, pg.stored);
            if entity
                .position(crate::metadata::system::VERSION_NUMBER)
                .is_none()
            {
                // A read-only view (the audit table): never inserted into.
                continue;
            }
            // SQLite binds every stored column, the version too; PostgreSQL draws the version
            // from its sequence and returns it.
            assert_eq!(lite.insert_positions, lite.stored);
            assert_eq!(pg.insert_positions.len() + 1, pg.stored.len());
            assert!(!lite.insert.contains("RETURNING"), "{}", lite.insert);
            assert!(
                pg.insert.ends_with(") RETURNING versionnumber")
                    && pg.insert.contains("nextval('smsctx_versionnumber')"),
                "{}",
                pg.insert
            );
        }
    }

    #[test]
    fn updates_assign_the_version_where_the_dialect_says() {
        let catalog = Catalog::with_channels().unwrap();
        let entity = catalog.entity("msdyn_smsengagementctx").unwrap();
        let name = entity.position("msdyn_name").unwrap();
        let version = entity.position(VERSION_NUMBER).unwrap();
        let id = Uuid::nil();
        let changes = vec![(name, Value::Text("x".into())), (version, Value::Int(99))];
        let (text, values) = TableSql::update(&Sqlite, entity, id, &changes, 7, Expect::Any);
        assert_eq!(
            text,
            "UPDATE msdyn_smsengagementctx SET msdyn_name = ?1, versionnumber = ?2 WHERE msdyn_smsengagementctxid = ?3"
        );
        assert_eq!(
            values,
            vec![Value::Text("x".into()), Value::Int(7), Value::Guid(id)]
        );
        let (text, values) =
            TableSql::update(&Postgres, entity, id, &changes, 0, Expect::Version(5));
        assert_eq!(
            text,
            "UPDATE msdyn_smsengagementctx SET msdyn_name = $1, versionnumber = nextval('smsctx_versionnumber') \
             WHERE msdyn_smsengagementctxid = $2 AND versionnumber = $3 RETURNING versionnumber"
        );
        assert_eq!(
            values,
            vec![Value::Text("x".into()), Value::Guid(id), Value::Int(5)]
        );
    }
}
