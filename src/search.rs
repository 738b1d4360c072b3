//! Accent- and case-insensitive search that behaves the same on SQLite and PostgreSQL: rows
//! keep a folded copy of their searchable text, queries are folded the same way, and a LIKE on
//! the folded column does the rest ("lazaro cardenas" finds "Lázaro Cárdenas").

use sea_orm::sea_query::LikeExpr;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lower-case, without diacritics, with runs of whitespace made single spaces.
pub fn fold(text: &str) -> String {
    let stripped: String = text
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase();
    stripped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A LIKE pattern matching folded text that contains the folded `query`, with `%`, `_` and `\`
/// in it taken literally.
pub fn contains(query: &str) -> LikeExpr {
    let text = fold(query);
    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    LikeExpr::new(format!("%{escaped}%")).escape('\\')
}

/// The folded text of several fields, for a row's search column.
pub fn index_text(parts: &[&str]) -> String {
    fold(&parts.join(" "))
}

/// A member's search column: the secretariat finds members by name or email. Every write that
/// sets either sets this too.
pub fn member_text(name: &str, email: &str) -> String {
    index_text(&[name, email])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accents_case_and_spacing_do_not_matter() {
        assert_eq!(fold("Lázaro  Cárdenas"), "lazaro cardenas");
        assert_eq!(fold("PANAMÁ Atlántico"), "panama atlantico");
        assert_eq!(fold("Valparaíso – Ñuñoa"), "valparaiso – nunoa");
    }

    #[test]
    fn the_migrations_fold_as_the_server_does() {
        use migration::folded_text::fold as migration_fold;
        for text in ["Índice  de DESEMPEÑO", "Lázaro Cárdenas\tport", "ÅÇÉ ǅ ß İ", ""] {
            assert_eq!(migration_fold(text), fold(text), "{text:?}");
        }
    }
}
