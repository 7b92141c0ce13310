//! Name helpers: case conversion and "did you mean" suggestions.

/// `OrderItem` → `order_item`, `HTTPRequest` → `http_request`, `userId` → `user_id`.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev: Option<char> = None;
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let boundary = match prev {
                None | Some('_') => false,
                Some(p) => {
                    p.is_lowercase() || p.is_ascii_digit() || (p.is_uppercase() && next_is_lower)
                }
            };
            if boundary {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        prev = Some(c);
    }
    out
}

/// `balance` → `BALANCE`, `order_id` → `ORDER_ID`, `userId` → `USER_ID`.
pub(crate) fn screaming_snake_case(name: &str) -> String {
    snake_case(name).to_uppercase()
}

/// Levenshtein distance between two strings, by characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = i;
        let mut left = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(usize::MAX);
            let cost = usize::from(ca != cb);
            let value = (diagonal + cost).min(above + 1).min(left + 1);
            diagonal = above;
            left = value;
            if let Some(slot) = row.get_mut(j + 1) {
                *slot = value;
            }
        }
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
    }
    row.last().copied().unwrap_or(0)
}

/// The candidate closest to `lookup`, if it is close enough to be a likely typo (the threshold
/// rustc uses: a third of the length, at least one edit).
pub(crate) fn closest<'a>(
    lookup: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let max = lookup.chars().count().max(3) / 3;
    candidates
        .into_iter()
        .map(|c| (edit_distance(lookup, c), c))
        .filter(|&(d, _)| d <= max)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// "`a`, `b`, `c`".
pub(crate) fn backticked_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items
        .into_iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_of_struct_names() {
        assert_eq!(snake_case("User"), "user");
        assert_eq!(snake_case("OrderItem"), "order_item");
        assert_eq!(snake_case("HTTPRequest"), "http_request");
        assert_eq!(snake_case("User2Fa"), "user2_fa");
        assert_eq!(snake_case("already_snake"), "already_snake");
        assert_eq!(snake_case("A"), "a");
        assert_eq!(snake_case("userId"), "user_id");
        assert_eq!(snake_case("Ünïcode"), "ünïcode");
    }

    #[test]
    fn screaming_snake_case_of_field_names() {
        assert_eq!(screaming_snake_case("id"), "ID");
        assert_eq!(screaming_snake_case("order_id"), "ORDER_ID");
        assert_eq!(screaming_snake_case("userId"), "USER_ID");
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("idd", "id"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
    }

    #[test]
    fn closest_suggests_only_likely_typos() {
        let fields = ["id", "name", "region"];
        assert_eq!(closest("idd", fields), Some("id"));
        assert_eq!(closest("regoin", fields), Some("region"));
        assert_eq!(closest("balance", fields), None);
    }
}
