//! An org's join policy (contract section 15): which groups its sessions may join, read
//! from the `policy` of `PUT /v1/admin/orgs/{org}`, and what a join checks before its join
//! request: the expected group, then the rules, against the invite's preview (or, for an
//! invite message, which cannot be previewed, against its group JID alone). Pure.

use serde_json::{json, Map, Value};

use super::error::{ApiError, ErrorCode};
use super::ids::GroupJid;
use super::json::{present, reject_unknown, whole_number};

pub const MAX_ALLOWED_GROUPS: usize = 10_000;
pub const MAX_TERMS: usize = 100;
pub const MAX_TERM_CHARS: usize = 100;
pub const MAX_SIZE_LIMIT: u64 = 100_000;

/// When a join previews its invite even with no rule set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PreviewFirst {
    /// Job items only (the default).
    #[default]
    Jobs,
    Always,
    Never,
}

impl PreviewFirst {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jobs => "jobs",
            Self::Always => "always",
            Self::Never => "never",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Jobs, Self::Always, Self::Never]
            .into_iter()
            .find(|p| p.as_str() == text)
    }
}

/// A rule of the policy, named in a refusal's `details.rule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    AllowedGroups,
    BlockedSubjectTerms,
    MaxSize,
}

impl Rule {
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::AllowedGroups,
            Self::BlockedSubjectTerms,
            Self::MaxSize,
        ]
        .into_iter()
        .find(|rule| rule.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllowedGroups => "allowed_groups",
            Self::BlockedSubjectTerms => "blocked_subject_terms",
            Self::MaxSize => "max_size",
        }
    }
}

/// The org's join policy; the default is the empty policy (no rule, previews as `jobs`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Policy {
    /// Group JIDs, duplicates collapsed, in the order given.
    pub allowed_groups: Option<Vec<String>>,
    /// As given; an empty list is no rule.
    pub blocked_subject_terms: Option<Vec<String>>,
    pub max_size: Option<u64>,
    pub preview_first: Option<PreviewFirst>,
}

/// What a session needs of its org's policy to know whether a join previews first; travels
/// between Durable Objects as `{"rules":bool,"preview_first":"jobs"}`.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct PolicyMode {
    pub rules: bool,
    pub preview_first: PreviewFirst,
}

impl PolicyMode {
    /// As it travels between the objects (read back by [`PolicyMode::read`]); written by
    /// hand, as serde_json's reader of parsed values would be in the wasm for this alone.
    pub fn view(self) -> Value {
        json!({ "rules": self.rules, "preview_first": self.preview_first.as_str() })
    }

    pub fn read(value: &Value) -> Option<Self> {
        Some(Self {
            rules: value.get("rules")?.as_bool()?,
            preview_first: PreviewFirst::parse(value.get("preview_first")?.as_str()?)?,
        })
    }
}

/// What a preview says about the group an invite leads to.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct GroupFacts {
    pub group_jid: String,
    pub subject: Option<String>,
    pub size: Option<u64>,
}

fn field_of(name: &str) -> String {
    format!("policy.{name}")
}

fn list<'a>(value: &'a Value, name: &str, what: &str) -> Result<&'a Vec<Value>, ApiError> {
    value
        .as_array()
        .ok_or_else(|| ApiError::invalid(&field_of(name), format!("must be a list of {what}")))
}

fn parse_groups(value: &Value) -> Result<Vec<String>, ApiError> {
    let items = list(value, "allowed_groups", "group JIDs")?;
    if items.is_empty() || items.len() > MAX_ALLOWED_GROUPS {
        return Err(ApiError::invalid(
            "policy.allowed_groups",
            "must list 1 to 10000 group JIDs",
        ));
    }
    // A set as serde_json's map: its tree is in the wasm already, a hash table would not be.
    let mut seen = serde_json::Map::new();
    let mut groups = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let field = format!("policy.allowed_groups[{index}]");
        let text = item
            .as_str()
            .ok_or_else(|| ApiError::invalid(&field, "must be a string"))?;
        let jid = GroupJid::parse(text).map_err(|e| ApiError::invalid(&field, e.0))?;
        if seen.insert(jid.as_str().to_string(), Value::Null).is_none() {
            groups.push(jid.to_string());
        }
    }
    Ok(groups)
}

fn parse_terms(value: &Value) -> Result<Vec<String>, ApiError> {
    let items = list(value, "blocked_subject_terms", "strings")?;
    if items.len() > MAX_TERMS {
        return Err(ApiError::invalid(
            "policy.blocked_subject_terms",
            "must list at most 100 terms",
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let field = format!("policy.blocked_subject_terms[{index}]");
            let text = item
                .as_str()
                .ok_or_else(|| ApiError::invalid(&field, "must be a string"))?;
            // Characters, not bytes: a term in another script is as long as it reads.
            if !(1..=MAX_TERM_CHARS).contains(&text.chars().count()) {
                return Err(ApiError::invalid(&field, "must be 1-100 characters"));
            }
            Ok(text.to_string())
        })
        .collect()
}

impl Policy {
    /// The `policy` field of `PUT /v1/admin/orgs/{org}` (and the stored form, `view()`'s
    /// JSON). `{}` is the empty policy; a member that is `null` counts as left out.
    pub fn parse(value: &Value) -> Result<Policy, ApiError> {
        let map: &Map<String, Value> = value
            .as_object()
            .ok_or_else(|| ApiError::invalid("policy", "must be an object"))?;
        reject_unknown(
            map,
            &[
                "allowed_groups",
                "blocked_subject_terms",
                "max_size",
                "preview_first",
            ],
            "policy.",
        )?;
        let max_size = present(map, "max_size")
            .map(|value| {
                whole_number(value)
                    .and_then(|n| u64::try_from(n).ok())
                    .filter(|n| (1..=MAX_SIZE_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "policy.max_size",
                            "must be a whole number from 1 to 100000",
                        )
                    })
            })
            .transpose()?;
        let preview_first = present(map, "preview_first")
            .map(|value| {
                value.as_str().and_then(PreviewFirst::parse).ok_or_else(|| {
                    ApiError::invalid("policy.preview_first", "must be jobs, always or never")
                })
            })
            .transpose()?;
        Ok(Policy {
            allowed_groups: present(map, "allowed_groups")
                .map(parse_groups)
                .transpose()?,
            blocked_subject_terms: present(map, "blocked_subject_terms")
                .map(parse_terms)
                .transpose()?,
            max_size,
            preview_first,
        })
    }

    /// The policy as the org routes show it, and as it is stored: only the fields set.
    pub fn view(&self) -> Value {
        let mut view = Map::new();
        if let Some(groups) = &self.allowed_groups {
            view.insert("allowed_groups".into(), Value::from(groups.clone()));
        }
        if let Some(terms) = &self.blocked_subject_terms {
            view.insert("blocked_subject_terms".into(), Value::from(terms.clone()));
        }
        if let Some(max) = self.max_size {
            view.insert("max_size".into(), Value::from(max));
        }
        if let Some(preview) = self.preview_first {
            view.insert("preview_first".into(), Value::from(preview.as_str()));
        }
        Value::Object(view)
    }

    fn terms(&self) -> Option<&[String]> {
        self.blocked_subject_terms
            .as_deref()
            .filter(|terms| !terms.is_empty())
    }

    /// Whether any rule is set (an empty terms list is none).
    pub fn has_rules(&self) -> bool {
        self.allowed_groups.is_some() || self.terms().is_some() || self.max_size.is_some()
    }

    pub fn mode(&self) -> PolicyMode {
        PolicyMode {
            rules: self.has_rules(),
            preview_first: self.preview_first.unwrap_or_default(),
        }
    }

    fn check_group(&self, group_jid: &str) -> Result<(), Rule> {
        match &self.allowed_groups {
            Some(groups) if !groups.iter().any(|g| g == group_jid) => Err(Rule::AllowedGroups),
            _ => Ok(()),
        }
    }

    /// After a preview: the first rule the group breaks, in the order allowed_groups,
    /// blocked_subject_terms, max_size. A subject is matched by Unicode lower case; no
    /// subject matches no term; a preview without a size breaks `max_size`.
    ///
    /// `lower` is Unicode lower case (`str::to_lowercase`; in the Worker the runtime's
    /// `String.prototype.toLowerCase`, which spares the wasm Rust's case tables).
    pub fn judge(&self, facts: &GroupFacts, lower: fn(&str) -> String) -> Result<(), Rule> {
        self.check_group(&facts.group_jid)?;
        if let (Some(terms), Some(subject)) = (self.terms(), facts.subject.as_deref()) {
            let subject = lower(subject);
            if terms.iter().any(|term| subject.contains(&lower(term))) {
                return Err(Rule::BlockedSubjectTerms);
            }
        }
        match self.max_size {
            Some(max) if facts.size.is_none_or(|size| size > max) => Err(Rule::MaxSize),
            _ => Ok(()),
        }
    }

    /// A join by invite message: no preview is possible, so only `allowed_groups` can
    /// pass it; while a rule that needs the preview is set, it is refused by that rule.
    pub fn judge_message(&self, group_jid: &str) -> Result<(), Rule> {
        self.check_group(group_jid)?;
        if self.terms().is_some() {
            return Err(Rule::BlockedSubjectTerms);
        }
        if self.max_size.is_some() {
            return Err(Rule::MaxSize);
        }
        Ok(())
    }
}

/// Whether a join by link previews its invite first: an expected group, any rule, or
/// `preview_first` (always: every join; jobs: job items only; never: none). A join by
/// invite message cannot be previewed (`Policy::judge_message`).
pub fn preview_needed(mode: PolicyMode, job_item: bool, expected: bool) -> bool {
    expected
        || mode.rules
        || match mode.preview_first {
            PreviewFirst::Always => true,
            PreviewFirst::Jobs => job_item,
            PreviewFirst::Never => false,
        }
}

/// The facts of a preview answer's data (`{ group_jid, subject, size?, … }`); `None` when
/// it names no group.
pub fn facts_of(preview: &Value) -> Option<GroupFacts> {
    Some(GroupFacts {
        group_jid: preview.get("group_jid")?.as_str()?.to_string(),
        subject: preview
            .get("subject")
            .and_then(Value::as_str)
            .map(str::to_owned),
        size: preview
            .get("size")
            .and_then(whole_number)
            .and_then(|n| u64::try_from(n).ok()),
    })
}

/// `invite_mismatch` (with the group the invite leads to) when a group was expected and
/// the preview names another.
pub fn check_expected(facts: &GroupFacts, expected: Option<&str>) -> Result<(), ApiError> {
    match expected {
        Some(expected) if expected != facts.group_jid => {
            Err(ApiError::new(ErrorCode::InviteMismatch)
                .with_detail("group_jid", facts.group_jid.as_str()))
        }
        _ => Ok(()),
    }
}

/// 403 `join_refused_by_policy` naming the rule; no join request was sent.
pub fn refused(rule: Rule) -> ApiError {
    let why = match rule {
        Rule::AllowedGroups => "the group is not in its allowed_groups",
        Rule::BlockedSubjectTerms => {
            "the group's subject holds a blocked term, or cannot be checked"
        }
        Rule::MaxSize => "the group is larger than its max_size, or its size is unknown",
    };
    ApiError::new(ErrorCode::JoinRefusedByPolicy)
        .with_message(format!(
            "The org's join policy refuses this group ({why}); no join request was sent."
        ))
        .with_detail("rule", rule.as_str())
}

#[cfg(test)]
mod tests;
