//! Multi-row INSERTs whose prepared statements the connection keeps.
//!
//! diesel prepares a multi-row INSERT of a `Vec` or slice afresh every time: it cannot know the
//! statement's text before counting the rows, so it marks the statement as not to be cached, builds
//! its SQL (every column name and placeholder of every row) and has the database parse it again.
//! For the intake writer, which inserts hundreds of rows per group, that was a fifth of its time.
//! Here the rows go in chunks of a few fixed sizes, and each size is a query type of its own,
//! whose statement the connection prepares once and then only binds and runs.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::insertable::{InsertValues, Insertable};
use diesel::query_builder::{AstPass, BatchInsert, QueryFragment, QueryId, ValuesClause};
use diesel::{Connection, QueryResult, RunQueryDsl, Table};

/// The row counts of the statements, largest first: rows are inserted in chunks of the largest
/// that fits, so at most one statement of each smaller size follows the full ones. The largest
/// keeps a statement of a 12-column table under SQLite's 32,766 bound parameters.
const CHUNK_SIZES: [usize; 9] = [256, 128, 64, 32, 16, 8, 4, 2, 1];

/// Inserts `rows` into `table` with statements of [`CHUNK_SIZES`] rows, kept by the connection.
/// Returns the number of rows inserted.
/// `rows` is a slice of anything diesel can insert into `table` (`&[Row]`).
pub fn insert_rows<Tab, Rows, V, Conn>(conn: &mut Conn, table: Tab, rows: Rows) -> QueryResult<usize>
where
    Conn: Connection,
    Tab: Table + Copy,
    Tab::FromClause: QueryFragment<Conn::Backend>,
    Rows: Insertable<Tab, Values = BatchInsert<Vec<ValuesClause<V, Tab>>, Tab, (), false>>,
    V: InsertValues<Conn::Backend, Tab> + QueryId,
{
    let values = rows.values().values;
    let mut rest = &values[..];
    let mut inserted = 0;
    while !rest.is_empty() {
        let size = CHUNK_SIZES.into_iter().find(|size| *size <= rest.len()).unwrap_or(1);
        let (chunk, after) = rest.split_at(size);
        inserted += match size {
            256 => run::<_, _, _, 256>(conn, table, chunk)?,
            128 => run::<_, _, _, 128>(conn, table, chunk)?,
            64 => run::<_, _, _, 64>(conn, table, chunk)?,
            32 => run::<_, _, _, 32>(conn, table, chunk)?,
            16 => run::<_, _, _, 16>(conn, table, chunk)?,
            8 => run::<_, _, _, 8>(conn, table, chunk)?,
            4 => run::<_, _, _, 4>(conn, table, chunk)?,
            2 => run::<_, _, _, 2>(conn, table, chunk)?,
            _ => run::<_, _, _, 1>(conn, table, chunk)?,
        };
        rest = after;
    }
    Ok(inserted)
}

/// Whether rows of this type are inserted with statements kept by their query type (rather than
/// looked up by their SQL text, which is built for every insert): so only when every column is
/// bound, i.e. the row type is derived with `treat_none_as_default_value = false` if it has
/// optional fields. For tests of the row types.
#[cfg(test)]
pub fn kept_by_type<Tab, Rows, V>(_table: Tab, _rows: Rows) -> bool
where
    Tab: Table,
    Rows: Insertable<Tab, Values = BatchInsert<Vec<ValuesClause<V, Tab>>, Tab, (), false>>,
    V: QueryId,
{
    V::HAS_STATIC_QUERY_ID
}

fn run<Tab, V, Conn, const N: usize>(conn: &mut Conn, table: Tab, rows: &[ValuesClause<V, Tab>]) -> QueryResult<usize>
where
    Conn: Connection,
    Tab: Table,
    Tab::FromClause: QueryFragment<Conn::Backend>,
    V: InsertValues<Conn::Backend, Tab> + QueryId,
{
    debug_assert_eq!(rows.len(), N, "a chunk has the size its statement was prepared for");
    KeptInsert::<Tab, V, N> { into: table.from_clause(), rows }.execute(conn)
}

/// `INSERT INTO table (columns) VALUES (...), (...)` of exactly `N` rows.
struct KeptInsert<'a, Tab: Table, V, const N: usize> {
    into: Tab::FromClause,
    rows: &'a [ValuesClause<V, Tab>],
}

/// The statement's identity: the columns and SQL types of a row (diesel's query id of the
/// values, which leaves out the bound values themselves) and the number of rows.
struct RowsOf<V, const N: usize>(PhantomData<V>);

impl<Tab: Table, V: QueryId, const N: usize> QueryId for KeptInsert<'_, Tab, V, N> {
    type QueryId = RowsOf<V::QueryId, N>;
    const HAS_STATIC_QUERY_ID: bool = V::HAS_STATIC_QUERY_ID;
}

impl<Tab, V, DB, const N: usize> QueryFragment<DB> for KeptInsert<'_, Tab, V, N>
where
    DB: Backend,
    Tab: Table,
    Tab::FromClause: QueryFragment<DB>,
    V: InsertValues<DB, Tab>,
{
    // The same text diesel writes for a multi-row insert of these rows.
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("INSERT INTO ");
        self.into.walk_ast(out.reborrow())?;
        let Some(first) = self.rows.first() else {
            return Err(diesel::result::Error::QueryBuilderError("an insert of no rows".into()));
        };
        out.push_sql(" (");
        first.values.column_names(out.reborrow())?;
        out.push_sql(") VALUES ");
        for (index, row) in self.rows.iter().enumerate() {
            out.push_sql(if index == 0 { "(" } else { ", (" });
            row.values.walk_ast(out.reborrow())?;
            out.push_sql(")");
        }
        Ok(())
    }
}

impl<Tab: Table, V, Conn, const N: usize> RunQueryDsl<Conn> for KeptInsert<'_, Tab, V, N> {}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
    use diesel::prelude::*;
    use diesel::sqlite::{Sqlite, SqliteConnection};

    use super::*;

    diesel::table! {
        notes (id) {
            id -> Integer,
            title -> Text,
            body -> Nullable<Text>,
        }
    }

    /// A row like the writer's: borrowed text, and an optional column bound as NULL.
    #[derive(Insertable)]
    #[diesel(table_name = notes, treat_none_as_default_value = false)]
    struct NewNote<'a> {
        id: i32,
        title: &'a str,
        body: Option<&'a str>,
    }

    /// The SQL of every statement the connection prepared and kept.
    fn record_kept(conn: &mut SqliteConnection) -> Arc<Mutex<Vec<String>>> {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&kept);
        let instrumentation = move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                sink.lock().unwrap().push(sql.to_owned());
            }
        };
        conn.set_instrumentation(Box::new(instrumentation) as Box<dyn Instrumentation>);
        kept
    }

    fn database() -> (tempfile::TempDir, SqliteConnection) {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = SqliteConnection::establish(&dir.path().join("kept.db").to_string_lossy()).unwrap();
        conn.batch_execute("CREATE TABLE notes (id INTEGER PRIMARY KEY NOT NULL, title TEXT NOT NULL, body TEXT)")
            .unwrap();
        (dir, conn)
    }

    #[test]
    fn rows_are_inserted_in_chunks_whose_statements_are_prepared_once() {
        let (_dir, mut conn) = database();
        let kept = record_kept(&mut conn);
        let titles: Vec<String> = (0..600).map(|i| format!("note {i}")).collect();
        let rows = |from: i32| -> Vec<NewNote<'_>> {
            (0..300)
                .map(|i| NewNote {
                    id: from + i,
                    title: &titles[(from + i) as usize],
                    body: (i % 3 == 0).then_some("kept"),
                })
                .collect()
        };
        let first = rows(0);
        // 300 rows: one statement each of 256, 32, 8 and 4 rows.
        assert_eq!(insert_rows(&mut conn, notes::table, &first[..]).unwrap(), 300);
        assert_eq!(kept.lock().unwrap().len(), 4);
        let second = rows(300);
        assert_eq!(insert_rows(&mut conn, notes::table, &second[..]).unwrap(), 300);
        assert_eq!(kept.lock().unwrap().len(), 4, "the second insert reuses the four statements");

        let stored: Vec<(i32, String, Option<String>)> =
            notes::table.order(notes::id).select((notes::id, notes::title, notes::body)).load(&mut conn).unwrap();
        assert_eq!(stored.len(), 600);
        for (index, (id, title, body)) in stored.into_iter().enumerate() {
            assert_eq!(id as usize, index);
            assert_eq!(title, format!("note {index}"));
            assert_eq!(body.as_deref(), ((index % 300) % 3 == 0).then_some("kept"), "row {index}");
        }
    }

    #[test]
    fn a_chunk_is_the_statement_diesel_writes_for_the_same_rows() {
        let rows: Vec<NewNote<'_>> =
            (0..4).map(|id| NewNote { id, title: "t", body: (id == 1).then_some("b") }).collect();
        let values = (&rows[..]).values().values;
        let ours = diesel::debug_query::<Sqlite, _>(&KeptInsert::<notes::table, _, 4> {
            into: notes::table.from_clause(),
            rows: &values,
        })
        .to_string();
        let diesels =
            diesel::debug_query::<Sqlite, _>(&diesel::insert_into(notes::table).values(&rows[..])).to_string();
        assert_eq!(ours, diesels);
        assert!(ours.starts_with("INSERT INTO `notes` (`id`, `title`, `body`) VALUES (?, ?, ?), (?, ?, ?)"), "{ours}");
    }

    #[test]
    fn no_rows_is_no_statement() {
        let (_dir, mut conn) = database();
        let kept = record_kept(&mut conn);
        let none: Vec<NewNote<'_>> = Vec::new();
        assert_eq!(insert_rows(&mut conn, notes::table, &none[..]).unwrap(), 0);
        assert!(kept.lock().unwrap().is_empty());
    }
}
