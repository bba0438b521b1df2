//! Label selectors (`app=db,tier!=test`), checked before they reach the API server.
//!
//! The API server answers a malformed selector with `400 Bad Request` on every list, so a
//! watch with one retries forever and the server never becomes ready. The grammar is
//! apimachinery's (`k8s.io/apimachinery/pkg/labels/selector.go`): requirements separated by
//! commas, each `key`, `!key`, `key=value` (`==`), `key!=value`, `key in (a,b)`,
//! `key notin (a,b)`, `key>N` or `key<N`; keys are an optional DNS subdomain prefix and `/`,
//! then a name; values are names or empty.

/// Why a selector is not one the API server accepts: the requirement and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(String);

fn fail<T>(message: String) -> Result<T, SelectorError> {
    Err(SelectorError(message))
}

/// Checks `selector` against the API server's grammar. An empty selector selects
/// everything, as it does for the API server.
pub fn check(selector: &str) -> Result<(), SelectorError> {
    if selector.is_empty() {
        return Ok(());
    }
    for requirement in split_requirements(selector)? {
        check_requirement(requirement.trim())?;
    }
    Ok(())
}

/// Splits at the commas that are not inside `( )`.
fn split_requirements(selector: &str) -> Result<Vec<&str>, SelectorError> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0u32, 0);
    for (at, c) in selector.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => return fail(format!("{selector:?}: nested parentheses")),
            ')' if depth == 1 => depth = 0,
            ')' => return fail(format!("{selector:?}: ')' without '('")),
            ',' if depth == 0 => {
                parts.push(&selector[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return fail(format!("{selector:?}: '(' without ')'"));
    }
    parts.push(&selector[start..]);
    Ok(parts)
}

fn check_requirement(requirement: &str) -> Result<(), SelectorError> {
    if requirement.is_empty() {
        return fail("an empty requirement (two commas, or a comma at an end)".into());
    }
    if let Some(key) = requirement.strip_prefix('!') {
        return check_key(key.trim(), requirement);
    }
    for set_op in [" notin ", " in "] {
        if let Some((key, values)) = requirement.split_once(set_op) {
            check_key(key.trim(), requirement)?;
            let values = values.trim();
            let Some(inner) = values.strip_prefix('(').and_then(|v| v.strip_suffix(')')) else {
                return fail(format!(
                    "{requirement:?}: the values of `{}` go in parentheses, e.g. (a,b)",
                    set_op.trim()
                ));
            };
            for value in inner.split(',') {
                check_value(value.trim(), requirement)?;
            }
            return Ok(());
        }
    }
    // `!=` and `==` before `=`; `>` and `<` compare integers.
    for op in ["!=", "==", "=", ">", "<"] {
        if let Some((key, value)) = requirement.split_once(op) {
            check_key(key.trim(), requirement)?;
            let value = value.trim();
            if op == ">" || op == "<" {
                if value.parse::<i64>().is_err() {
                    return fail(format!("{requirement:?}: `{op}` compares with an integer"));
                }
                return Ok(());
            }
            return check_value(value, requirement);
        }
    }
    check_key(requirement, requirement)
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain of at most 253 characters.
fn check_key(key: &str, requirement: &str) -> Result<(), SelectorError> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let subdomain = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !subdomain {
            return fail(format!(
                "{requirement:?}: key prefix {prefix:?} is not a DNS subdomain (e.g. app.kubernetes.io)"
            ));
        }
    }
    if name.is_empty() || !is_label_name(name) {
        return fail(format!(
            "{requirement:?}: key {key:?} is not a label name (at most 63 of a-z, A-Z, 0-9, '-', '_', '.', alphanumeric at both ends)"
        ));
    }
    Ok(())
}

fn check_value(value: &str, requirement: &str) -> Result<(), SelectorError> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        fail(format!(
            "{requirement:?}: value {value:?} is not a label value (at most 63 of a-z, A-Z, 0-9, '-', '_', '.', alphanumeric at both ends)"
        ))
    }
}

/// A label name or value: 1 to 63 characters, alphanumeric at both ends, `-_.` between.
fn is_label_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    let inner = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    matches!(
        (bytes.first(), bytes.last()),
        (Some(first), Some(last)) if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric()
    ) && bytes.len() <= 63
        && bytes.iter().all(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_the_api_server_accepts_pass_and_others_say_why() {
        fn check_ok(selector: &str) {
            assert_eq!(check(selector), Ok(()), "{selector}");
        }
        fn check_err(selector: &str, needle: &str) {
            let error = check(selector).expect_err(selector).to_string();
            assert!(error.contains(needle), "{selector}: {error}");
        }
        check_ok("app=db");
        check_ok("app==db,tier!=test");
        check_ok("app.kubernetes.io/name=web");
        check_ok("dns");
        check_ok("!canary");
        check_ok("env in (prod, staging),tier notin (test)");
        check_ok("release=");
        check_ok("generation>3");
        check_ok("");
        check_err(" ", "empty requirement");
        check_err("app=db,", "empty requirement");
        check_err("app=d b", "label value");
        check_err("app=(db", "'(' without ')'");
        check_err("env in prod", "parentheses");
        check_err("Bad_Prefix/x=y", "DNS subdomain");
        check_err("-app=db", "label name");
        check_err("generation>three", "integer");
        check_err(&format!("app={}", "v".repeat(64)), "label value");
    }
}
