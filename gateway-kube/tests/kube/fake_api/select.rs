//! Label and field selectors, as given in `labelSelector` and `fieldSelector` query parameters.

use serde_json::Value;

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed selector: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Selector {
    requirements: Vec<Requirement>,
}

/// Splits on commas outside parentheses (`a in (x,y),b=c`).
fn terms(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0_usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(text[start..].trim());
    out.into_iter().filter(|t| !t.is_empty()).collect()
}

fn set_values(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set of values, got `{text}`"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect())
}

/// A `key!=value`, `key==value` or `key=value` term, the forms label and field selectors
/// share.
fn equality(term: &str) -> Option<Requirement> {
    let pair = |(key, value): (&str, &str)| (key.trim().to_owned(), value.trim().to_owned());
    if let Some((key, value)) = term.split_once("!=").map(pair) {
        Some(Requirement::NotEquals(key, value))
    } else {
        let (key, value) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .map(pair)?;
        Some(Requirement::Equals(key, value))
    }
}

impl Selector {
    /// Parses a label selector (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`).
    pub(crate) fn labels(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in terms(text) {
            let requirement = if let Some(requirement) = equality(term) {
                requirement
            } else if let Some((key, values)) = term.split_once(" notin ") {
                Requirement::NotIn(key.trim().to_owned(), set_values(values)?)
            } else if let Some((key, values)) = term.split_once(" in ") {
                Requirement::In(key.trim().to_owned(), set_values(values)?)
            } else if let Some(key) = term.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_owned())
            } else if term.contains(char::is_whitespace) || term.contains(['(', ')']) {
                return Err(format!("unable to parse requirement `{term}`"));
            } else {
                Requirement::Exists(term.to_owned())
            };
            requirements.push(requirement);
        }
        Ok(Self { requirements })
    }

    /// Parses a field selector (`path=value`, `path==value`, `path!=value`, comma separated).
    pub(crate) fn fields(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in terms(text) {
            let requirement =
                equality(term).ok_or_else(|| format!("invalid field selector term `{term}`"))?;
            requirements.push(requirement);
        }
        Ok(Self { requirements })
    }

    /// Whether the labels of `object` satisfy this selector.
    pub(crate) fn matches_labels(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.requirements.iter().all(|r| evaluate(r, get))
    }

    /// Whether the fields of `object` satisfy this selector; a field is a dotted path
    /// (`metadata.name`, `spec.type`) and compares as its string form.
    pub(crate) fn matches_fields(&self, object: &Value) -> bool {
        let get = |path: &str| {
            let pointer = format!("/{}", path.replace('.', "/"));
            object.pointer(&pointer).map(|value| match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        self.requirements.iter().all(|r| evaluate_owned(r, get))
    }
}

fn evaluate<'a>(requirement: &Requirement, get: impl Fn(&str) -> Option<&'a str>) -> bool {
    match requirement {
        Requirement::Equals(key, value) => get(key) == Some(value.as_str()),
        Requirement::NotEquals(key, value) => get(key) != Some(value.as_str()),
        Requirement::In(key, values) => get(key).is_some_and(|v| values.iter().any(|x| x == v)),
        Requirement::NotIn(key, values) => get(key).is_none_or(|v| values.iter().all(|x| x != v)),
        Requirement::Exists(key) => get(key).is_some(),
        Requirement::NotExists(key) => get(key).is_none(),
    }
}

fn evaluate_owned(requirement: &Requirement, get: impl Fn(&str) -> Option<String>) -> bool {
    match requirement {
        // An absent field compares as the empty string, as the API server does.
        Requirement::Equals(key, value) => get(key).unwrap_or_default() == *value,
        Requirement::NotEquals(key, value) => get(key).unwrap_or_default() != *value,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let object = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        let yes = [
            "app=web",
            "app==web,tier",
            "tier in (front, back)",
            "app notin (db),!missing",
        ];
        for text in yes {
            assert!(
                Selector::labels(text).expect(text).matches_labels(&object),
                "{text}"
            );
        }
        let no = ["app=db", "app!=web", "missing", "tier in (back)", "!app"];
        for text in no {
            assert!(
                !Selector::labels(text).expect(text).matches_labels(&object),
                "{text}"
            );
        }
        assert!(Selector::labels("app in web").is_err());
    }

    #[test]
    fn field_selectors() {
        let object =
            json!({"metadata": {"name": "a", "namespace": "ns"}, "type": "kubernetes.io/tls"});
        let selector =
            Selector::fields("metadata.name=a,metadata.namespace!=other").expect("valid");
        assert!(selector.matches_fields(&object));
        assert!(
            Selector::fields("type=kubernetes.io/tls")
                .expect("valid")
                .matches_fields(&object)
        );
        assert!(
            !Selector::fields("metadata.name=b")
                .expect("valid")
                .matches_fields(&object)
        );
        assert!(Selector::fields("metadata.name").is_err());
    }
}
