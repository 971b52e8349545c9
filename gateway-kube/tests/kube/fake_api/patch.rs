//! The patch formats the API server accepts, applied to JSON objects.

use serde_json::{Map, Value};

/// The patch format named by a PATCH request's `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchKind {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`, applied as a merge patch (no `$patch`
    /// directives, lists replaced whole).
    Strategic,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/apply-patch+yaml` (server-side apply), applied as a merge patch of the applied
    /// configuration: no field ownership, no conflicts between managers.
    Apply,
}

impl PatchKind {
    /// The patch kind for a `Content-Type` header value, `None` when the server would answer 415.
    pub(crate) fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        match essence {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/json-patch+json" => Some(Self::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Applies `patch` to `target` with the JSON merge patch rules of RFC 7386: objects merge
/// recursively, `null` removes a member, anything else (arrays included) replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target_members) = target {
        for (key, value) in patch_members {
            if value.is_null() {
                target_members.remove(key);
            } else {
                merge_patch(
                    target_members.entry(key.clone()).or_insert(Value::Null),
                    value,
                );
            }
        }
    }
}

/// Applies an RFC 6902 JSON patch (a list of operations) to `target`, all or nothing.
pub(crate) fn json_patch(target: &mut Value, operations: &Value) -> Result<(), String> {
    let Value::Array(operations) = operations else {
        return Err("a JSON patch must be a list of operations".to_owned());
    };
    let mut patched = target.clone();
    for (index, operation) in operations.iter().enumerate() {
        apply_operation(&mut patched, operation).map_err(|e| format!("operation {index}: {e}"))?;
    }
    *target = patched;
    Ok(())
}

fn apply_operation(target: &mut Value, operation: &Value) -> Result<(), String> {
    let field = |name: &str| {
        operation
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("missing string field `{name}`"))
    };
    let op = field("op")?;
    let path = field("path")?;
    let value = || {
        operation
            .get("value")
            .cloned()
            .ok_or_else(|| "missing field `value`".to_owned())
    };
    match op {
        "add" => add(target, path, value()?),
        "remove" => remove(target, path).map(drop),
        "replace" => {
            remove(target, path)?;
            add(target, path, value()?)
        }
        "move" => {
            let moved = remove(target, field("from")?)?;
            add(target, path, moved)
        }
        "copy" => {
            let copied = pointer(field("from")?)
                .and_then(|tokens| lookup(target, &tokens).cloned())
                .ok_or_else(|| "`from` names nothing".to_owned())?;
            add(target, path, copied)
        }
        "test" => {
            let expected = value()?;
            let actual = pointer(path).and_then(|tokens| lookup(target, &tokens).cloned());
            if actual.as_ref() == Some(&expected) {
                Ok(())
            } else {
                Err(format!("test failed at `{path}`"))
            }
        }
        other => Err(format!("unknown operation `{other}`")),
    }
}

/// The reference tokens of a JSON pointer (RFC 6901), `None` when it is malformed.
fn pointer(path: &str) -> Option<Vec<String>> {
    if path.is_empty() {
        return Some(Vec::new());
    }
    let rest = path.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|token| token.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}

fn lookup<'a>(value: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    tokens
        .iter()
        .try_fold(value, |current, token| match current {
            Value::Object(members) => members.get(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
}

fn parent_of<'a>(target: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), String> {
    let mut tokens = pointer(path).ok_or_else(|| format!("malformed path `{path}`"))?;
    let last = tokens
        .pop()
        .ok_or_else(|| "the whole document cannot be the target".to_owned())?;
    let mut current = target;
    for token in &tokens {
        current = match current {
            Value::Object(members) => members.get_mut(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("path `{path}` does not exist"))?;
    }
    Ok((current, last))
}

fn add(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let (parent, last) = parent_of(target, path)?;
    match parent {
        Value::Object(members) => {
            members.insert(last, value);
            Ok(())
        }
        Value::Array(items) if last == "-" => {
            items.push(value);
            Ok(())
        }
        Value::Array(items) => match last.parse::<usize>() {
            Ok(index) if index <= items.len() => {
                items.insert(index, value);
                Ok(())
            }
            _ => Err(format!("index `{last}` is out of bounds at `{path}`")),
        },
        _ => Err(format!("the parent of `{path}` is not a container")),
    }
}

fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = parent_of(target, path)?;
    let removed = match parent {
        Value::Object(members) => members.remove(&last),
        Value::Array(items) => match last.parse::<usize>() {
            Ok(index) if index < items.len() => Some(items.remove(index)),
            _ => None,
        },
        _ => None,
    };
    removed.ok_or_else(|| format!("path `{path}` does not exist"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut target, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn json_patch_is_all_or_nothing() {
        let mut target = json!({"spec": {"items": [1, 2]}});
        json_patch(
            &mut target,
            &json!([{"op": "add", "path": "/spec/items/-", "value": 3},
                    {"op": "replace", "path": "/spec/x", "value": 1}]),
        )
        .expect_err("replacing a missing member fails");
        assert_eq!(target, json!({"spec": {"items": [1, 2]}}));
        json_patch(
            &mut target,
            &json!([{"op": "add", "path": "/spec/items/-", "value": 3},
                    {"op": "test", "path": "/spec/items/2", "value": 3},
                    {"op": "move", "from": "/spec/items", "path": "/list"}]),
        )
        .expect("valid patch");
        assert_eq!(target, json!({"spec": {}, "list": [1, 2, 3]}));
    }
}
