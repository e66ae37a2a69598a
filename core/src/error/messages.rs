//! The message helpers of [`Error`](super::Error)'s `Display` (the `#[error(...)]`
//! formats call them).

use super::AliasConflict;
use crate::graph::Path;

pub(super) fn context(at: &str) -> String {
    if at.is_empty() {
        String::new()
    } else {
        format!("{at}: ")
    }
}

pub(super) fn grad_loss_missing(has_aux: bool) -> &'static str {
    if has_aux {
        "with has_aux the function must return a tuple (loss, aux) whose loss is an array"
    } else {
        "grad requires the function to return a scalar array"
    }
}

pub(super) fn stream_tag(tag: &Option<String>) -> String {
    tag.as_ref().map(|t| format!(" '{t}'")).unwrap_or_default()
}

pub(super) fn expected_suffix(expected: &Option<&'static str>) -> String {
    expected
        .map(|e| format!(" (expected {e})"))
        .unwrap_or_default()
}

pub(super) fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

pub(super) fn paths_list(paths: &[Path]) -> String {
    let items: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    format!("[{}]", items.join(", "))
}

pub(super) fn merge_mismatch(missing: &[Path], unexpected: &[Path]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing paths {}", paths_list(missing)));
    }
    if !unexpected.is_empty() {
        parts.push(format!("unexpected paths {}", paths_list(unexpected)));
    }
    parts.join("; ")
}

pub(super) fn trace_levels(object_level: u32, current_level: u32) -> String {
    format!(
        " (the object belongs to trace level {object_level}, the mutation came from level {current_level}; pass the object as an argument of the transform instead of capturing it)"
    )
}

pub(super) fn alias_conflicts(conflicts: &[AliasConflict]) -> String {
    let blocks: Vec<String> = conflicts
        .iter()
        .map(|c| {
            let lines: Vec<String> = c
                .occurrences
                .iter()
                .map(|(path, prefix)| format!("  {path}: {prefix}"))
                .collect();
            format!("Node: {}\n{}", c.type_name, lines.join("\n"))
        })
        .collect();
    blocks.join("\n")
}

pub(super) fn rng_streams_hint(available: &[String]) -> String {
    if available.is_empty() {
        "It has no streams.".to_owned()
    } else {
        let names: Vec<String> = available.iter().map(|n| format!("'{n}'")).collect();
        format!(
            "Its streams are {}, and there is no 'default' stream to fall back to.",
            names.join(", ")
        )
    }
}
