//! `like` / `ilike` patterns: one meaning on every backend.
//!
//! A pattern is SQL's: `%` matches any run of characters (none included), `_` exactly one
//! character, and a backslash makes the next character literal (`\%`, `\_`, `\\`); a backslash
//! at the very end stands for itself. [`escape`] turns any text into a pattern that matches
//! exactly that text.
//!
//! * `like` is **case-sensitive** and compares characters exactly, on every backend.
//!   PostgreSQL: `col COLLATE "C" LIKE p` (the backslash is its default escape character).
//!   SQLite, whose `LIKE` ignores ASCII case, gets `col GLOB g`: `g` is the same pattern in
//!   `GLOB` syntax (`*`, `?`, and literal `*`, `?`, `[` as `[*]`, `[?]`, `[[]`), and `GLOB` is
//!   case-sensitive.
//! * `ilike` is **case-insensitive for the ASCII letters `A`–`Z` only**, on every backend:
//!   `E` matches `e`, but `É` does not match `é`. That is what SQLite's `LIKE` does (without
//!   the ICU extension: `col LIKE p ESCAPE '\'`), and what PostgreSQL's `ILIKE` does in the
//!   `C` collation, which Grant asks for: `col COLLATE "C" ILIKE p`. (Under a locale,
//!   PostgreSQL's `ILIKE` folds every Unicode letter, which SQLite cannot: the backends would
//!   disagree.)

/// The pieces of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// `%`.
    Any,
    /// `_`.
    One,
    /// A character matched literally.
    Lit(char),
}

fn pieces(pattern: &str) -> Vec<Piece> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '%' => Piece::Any,
            '_' => Piece::One,
            '\\' => Piece::Lit(chars.next().unwrap_or('\\')),
            c => Piece::Lit(c),
        });
    }
    out
}

/// `text` as a pattern that matches exactly `text`: `%`, `_` and `\` get a backslash.
///
/// # Examples
///
/// ```
/// use grant_core::like::escape;
/// assert_eq!(escape("50%_off\\"), "50\\%\\_off\\\\");
/// // `User::NAME.like(format!("{}%", escape(prefix)))` matches names starting with `prefix`.
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The pattern in canonical `LIKE ... ESCAPE '\'` form: the same matches, every escape
/// explicit (a trailing lone backslash doubled, which PostgreSQL would otherwise refuse).
pub fn canonical(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 2);
    for piece in pieces(pattern) {
        match piece {
            Piece::Any => out.push('%'),
            Piece::One => out.push('_'),
            Piece::Lit(c) => {
                if matches!(c, '%' | '_' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
        }
    }
    out
}

/// The pattern as a SQLite `GLOB` pattern with the same (case-sensitive) matches.
///
/// # Examples
///
/// ```
/// use grant_core::like::to_glob;
/// assert_eq!(to_glob("a%b_c"), "a*b?c");
/// assert_eq!(to_glob("*?[\\%"), "[*][?][[]%");
/// ```
pub fn to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    for piece in pieces(pattern) {
        match piece {
            Piece::Any => out.push('*'),
            Piece::One => out.push('?'),
            Piece::Lit(c @ ('*' | '?' | '[')) => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            Piece::Lit(c) => out.push(c),
        }
    }
    out
}

/// Whether `text` matches `pattern` as Grant's `like` (case-sensitive) or, with
/// `ascii_case_insensitive`, its `ilike` defines it: a reference implementation, used by tests.
pub fn matches(pattern: &str, text: &str, ascii_case_insensitive: bool) -> bool {
    let fold = |c: char| {
        if ascii_case_insensitive {
            c.to_ascii_lowercase()
        } else {
            c
        }
    };
    let pattern = pieces(pattern);
    let text: Vec<char> = text.chars().collect();
    // Classic wildcard matching with backtracking to the last `%`.
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Piece::One) => {
                p += 1;
                t += 1;
            }
            Some(Piece::Lit(c)) if fold(*c) == fold(text[t]) => {
                p += 1;
                t += 1;
            }
            Some(Piece::Any) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|piece| *piece == Piece::Any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_makes_every_character_literal() {
        for text in ["50%", "a_b", "back\\slash", "%_\\", "", "日本_%"] {
            let pattern = escape(text);
            assert!(matches(&pattern, text, false), "{text}");
            assert!(!matches(&pattern, &format!("{text}x"), false), "{text}");
            assert_eq!(canonical(&pattern), pattern);
        }
    }

    #[test]
    fn canonical_form_keeps_the_meaning() {
        assert_eq!(canonical("a\\b"), "ab");
        assert_eq!(canonical("a\\"), "a\\\\");
        assert_eq!(canonical("%\\%_"), "%\\%_");
    }

    #[test]
    fn glob_translation() {
        assert_eq!(to_glob("%crash%"), "*crash*");
        assert_eq!(to_glob("a\\%b\\_c"), "a%b_c");
        assert_eq!(to_glob("[x]"), "[[]x]");
        assert_eq!(to_glob("a\\\\"), "a\\");
    }

    #[test]
    fn reference_matching() {
        assert!(matches("%crash%", "a crash b", false));
        assert!(!matches("%crash%", "a CRASH b", false));
        assert!(matches("%crash%", "a CRASH b", true));
        assert!(!matches("é%", "École", true));
        assert!(matches("_", "日", false));
        assert!(!matches("_", "", false));
        assert!(matches("a%b%c", "aXbYbZc", false));
        assert!(!matches("a%b%c", "aXbYbZ", false));
        assert!(matches("%", "", false));
    }
}
