//! The org object's group book and join policy in SQL (contract section 15): one row per
//! group, its sessions' seats in one column, its code sealed; at most `MAX_ENTRIES` rows,
//! entries with no member session dropped first.

use super::super::{int, ints, optional_text, rows, text, texts, Row};
use super::OrgStore;
use crate::core::book::{decode_seats, encode_seats, Entry, MAX_ENTRIES};

pub(super) const BOOK_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS book (group_jid TEXT PRIMARY KEY, subject TEXT, seats TEXT NOT NULL, code TEXT,
  members INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS book_order ON book (updated_ms, group_jid);
CREATE TABLE IF NOT EXISTS policy (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL);
";

const BOOK_COLUMNS: &str = "group_jid, subject, seats, code, updated_ms";

fn entry_from(mut row: Row) -> Entry {
    macro_rules! at {
        ($name:literal) => {
            col!(BOOK_COLUMNS, $name)
        };
    }
    Entry {
        group_jid: row.text(at!("group_jid")),
        subject: row.opt_text(at!("subject")),
        seats: decode_seats(&row.text(at!("seats"))),
        sealed_code: row.opt_text(at!("code")),
        updated_ms: row.int(at!("updated_ms")),
    }
}

impl OrgStore {
    /// One entry of the book.
    pub fn book_entry(&self, group_jid: &str) -> worker::Result<Option<Entry>> {
        Ok(rows(
            &self.sql,
            &format!("SELECT {BOOK_COLUMNS} FROM book WHERE group_jid = ?"),
            vec![text(group_jid)],
        )?
        .into_iter()
        .next()
        .map(entry_from))
    }

    /// Up to `limit` entries newest first (by `updated_ms`, then `group_jid`), after the
    /// entry `after` in that order when given.
    pub fn book_page(
        &self,
        after: Option<&(i64, String)>,
        limit: usize,
    ) -> worker::Result<Vec<Entry>> {
        let limit = int(i64::try_from(limit).unwrap_or(i64::MAX));
        let found = match after {
            None => rows(
                &self.sql,
                &format!("SELECT {BOOK_COLUMNS} FROM book ORDER BY updated_ms DESC, group_jid DESC LIMIT ?"),
                vec![limit],
            )?,
            Some((ms, jid)) => rows(
                &self.sql,
                &format!("SELECT {BOOK_COLUMNS} FROM book WHERE updated_ms < ? OR (updated_ms = ? AND group_jid < ?) ORDER BY updated_ms DESC, group_jid DESC LIMIT ?"),
                vec![int(*ms), int(*ms), text(jid), limit],
            )?,
        };
        Ok(found.into_iter().map(entry_from).collect())
    }

    /// Writes an entry, then keeps the book to `MAX_ENTRIES`: the entries with no member
    /// session go first, oldest first.
    pub fn save_entry(&self, entry: &Entry) -> worker::Result<()> {
        self.sql.exec(
            "INSERT OR REPLACE INTO book (group_jid, subject, seats, code, members, updated_ms) VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                text(&entry.group_jid),
                optional_text(entry.subject.as_deref()),
                text(&encode_seats(&entry.seats)),
                optional_text(entry.sealed_code.as_deref()),
                int(entry.members()),
                int(entry.updated_ms),
            ],
        )?;
        let len = ints(&self.sql, "SELECT COUNT(*) FROM book", vec![])?;
        let over = len.first().copied().unwrap_or(0) - MAX_ENTRIES;
        if over > 0 {
            self.sql.exec(
                "DELETE FROM book WHERE group_jid IN (SELECT group_jid FROM book ORDER BY members > 0, updated_ms, group_jid LIMIT ?)",
                vec![int(over)],
            )?;
        }
        Ok(())
    }

    /// The org's join policy as stored (its view's JSON), if it has one.
    pub fn policy(&self) -> worker::Result<Option<String>> {
        Ok(
            texts(&self.sql, "SELECT body FROM policy WHERE id = 1", vec![])?
                .into_iter()
                .next(),
        )
    }

    /// Stores the policy (`None`: no policy).
    pub fn save_policy(&self, body: Option<&str>) -> worker::Result<()> {
        match body {
            None => self.sql.exec("DELETE FROM policy", None).map(|_| ()),
            Some(body) => self
                .sql
                .exec(
                    "INSERT OR REPLACE INTO policy (id, body) VALUES (1, ?)",
                    vec![text(body)],
                )
                .map(|_| ()),
        }
    }
}
