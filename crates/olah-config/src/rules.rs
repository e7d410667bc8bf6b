//! olah's access rules: `[[accessibility.proxy]]` and `[[accessibility.cache]]`.
//!
//! A rule's `repo` is matched against the repository id `"org/repo"` (no repo type: a model and
//! a dataset with the same id share rules, as in olah).
//!
//! - Wildcard rules (the default) follow Python's `fnmatch.fnmatchcase`, implemented here (no
//!   external glob crate: `globset` and `wildmatch` treat `/`, `[!…]` or unterminated `[`
//!   differently): the whole id must match; `*` matches any run of characters **including `/`**
//!   (so `*` alone matches every id, and `*/*` every id with a slash); `?` matches one character;
//!   `[abc]`, `[a-z]` and `[!abc]` are character classes (a `]` right after `[` or `[!` is a
//!   literal, reversed ranges like `[z-a]` are empty, `[]`-style classes without a closing `]`
//!   make the `[` literal). There is no escape character. Matching is case-sensitive.
//! - With `use_re = true`, `repo` is a regular expression (Rust `regex` syntax, which covers the
//!   Python syntax people write in these rules; look-around and back-references are rejected at
//!   load time) anchored at the start only, like Python's `re.match`: `acme` matches
//!   `acme/anything` and also `acmeco/x`.
//!
//! Each pattern is compiled once, when the rule is built.

use regex::Regex;

use crate::ConfigError;

/// One access rule, as written in `configs.toml`.
///
/// Build it with [`AccessRule::new`], which compiles the pattern; the public fields describe the
/// rule and should be treated as read-only (changing `repo` afterwards does not recompile the
/// matcher).
#[derive(Debug, Clone)]
pub struct AccessRule {
    /// The pattern matched against `"org/repo"` (wildcard, or regex when `use_re`).
    pub repo: String,
    /// What a match decides: `true` allows, `false` denies.
    pub allow: bool,
    /// `true`: `repo` is a regex anchored at the start; `false`: an `fnmatch` wildcard.
    pub use_re: bool,
    matcher: Regex,
}

impl PartialEq for AccessRule {
    fn eq(&self, other: &Self) -> bool {
        self.repo == other.repo && self.allow == other.allow && self.use_re == other.use_re
    }
}

impl Eq for AccessRule {}

impl AccessRule {
    /// Compiles a rule. An invalid regex (with `use_re`) is an error naming the pattern.
    pub fn new(repo: impl Into<String>, allow: bool, use_re: bool) -> Result<Self, ConfigError> {
        Self::compile(repo.into(), allow, use_re).map_err(|msg| ConfigError::Invalid {
            key: "repo".into(),
            msg,
        })
    }

    /// [`AccessRule::new`] with the reason as a plain one-line string.
    pub(crate) fn compile(repo: String, allow: bool, use_re: bool) -> Result<Self, String> {
        let source = if use_re {
            format!("^(?:{repo})")
        } else {
            glob_to_regex(&repo)
        };
        let matcher = Regex::new(&source)
            .map_err(|e| format!("invalid regex {repo:?}: {}", regex_reason(&e)))?;
        Ok(Self {
            repo,
            allow,
            use_re,
            matcher,
        })
    }

    /// Whether this rule applies to the repository id `repo` (`"org/repo"`).
    pub fn matches(&self, repo: &str) -> bool {
        self.matcher.is_match(repo)
    }
}

/// Whether `repo` is allowed by `rules`, with olah's semantics:
///
/// - the **last** matching rule wins (its `allow` is the answer);
/// - rules present but none matches: **deny** (a rule list is a whitelist);
/// - no rules at all: **allow** (olah's built-in defaults are `*` and `*/*` allowed, and any list
///   in the file replaces them).
pub fn decide(rules: &[AccessRule], repo: &str) -> bool {
    if rules.is_empty() {
        return true;
    }
    rules
        .iter()
        .rev()
        .find(|r| r.matches(repo))
        .is_some_and(|r| r.allow)
}

/// The last line of a regex syntax error ("error: unclosed group"), so messages stay on one line.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.trim()
        .strip_prefix("error: ")
        .unwrap_or(last.trim())
        .to_string()
}

/// Escapes one character for use inside or outside a regex class.
fn push_literal(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    out.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

/// Translates an `fnmatch` pattern into an equivalent, fully anchored regex.
fn glob_to_regex(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    // `(?s)`: `*` and `?` also match newlines, as in fnmatch.
    let mut out = String::from("(?s)^");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                // Runs of `*` are one `*`.
                while chars.get(i) == Some(&'*') {
                    i += 1;
                }
                out.push_str(".*");
            }
            '?' => out.push('.'),
            '[' => match class_end(&chars, i) {
                Some(end) => {
                    push_class(&mut out, &chars[i..end]);
                    i = end + 1;
                }
                // No closing `]`: the `[` is a literal; what follows is matched normally.
                None => push_literal(&mut out, '['),
            },
            c => push_literal(&mut out, c),
        }
    }
    out.push_str("\\z");
    out
}

/// Index of the `]` closing a class whose body starts at `start`, if any.
fn class_end(chars: &[char], start: usize) -> Option<usize> {
    let mut j = start;
    if chars.get(j) == Some(&'!') {
        j += 1;
    }
    // A `]` first in the class is a literal member.
    if chars.get(j) == Some(&']') {
        j += 1;
    }
    (j..chars.len()).find(|&k| chars[k] == ']')
}

/// Emits the regex for a class body (the text between `[` and `]`).
fn push_class(out: &mut String, body: &[char]) {
    let (negated, body) = match body.split_first() {
        Some(('!', rest)) => (true, rest),
        _ => (false, body),
    };
    let mut items = String::new();
    let mut k = 0;
    while k < body.len() {
        if k + 2 < body.len() && body[k + 1] == '-' {
            let (lo, hi) = (body[k], body[k + 2]);
            // A reversed range matches nothing (fnmatch drops it).
            if lo <= hi {
                push_literal(&mut items, lo);
                items.push('-');
                push_literal(&mut items, hi);
            }
            k += 3;
        } else {
            push_literal(&mut items, body[k]);
            k += 1;
        }
    }
    match (negated, items.is_empty()) {
        // Every member was an empty range: nothing matches...
        (false, true) => out.push_str("[^\\x{0}-\\x{10FFFF}]"),
        // ...and its negation matches any one character.
        (true, true) => out.push('.'),
        (false, false) => {
            out.push('[');
            out.push_str(&items);
            out.push(']');
        }
        (true, false) => {
            out.push_str("[^");
            out.push_str(&items);
            out.push(']');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str) -> AccessRule {
        AccessRule::new(p, true, false).unwrap()
    }

    fn re(p: &str) -> AccessRule {
        AccessRule::new(p, true, true).unwrap()
    }

    #[test]
    fn star_matches_slashes_and_the_whole_id_must_match() {
        assert!(glob("*").matches("acme/tiny"), "* also matches /");
        assert!(glob("*").matches("gpt2"), "ids without an org too");
        assert!(glob("*").matches(""));
        assert!(glob("*/*").matches("acme/tiny"));
        assert!(!glob("*/*").matches("gpt2"), "*/* needs a slash");
        assert!(glob("acme/*").matches("acme/tiny"));
        assert!(glob("acme/*").matches("acme/a/b"), "* crosses /");
        assert!(!glob("acme/*").matches("other/tiny"));
        assert!(
            !glob("acme/*").matches("xacme/tiny"),
            "anchored at the start"
        );
        assert!(!glob("acme").matches("acme/tiny"), "anchored at the end");
        assert!(glob("*-7B").matches("mistralai/Mistral-7B"));
        assert!(!glob("Acme/*").matches("acme/tiny"), "case-sensitive");
        assert!(glob("a**b").matches("a/x/b"));
    }

    #[test]
    fn question_mark_and_classes() {
        assert!(glob("acme/t?ny").matches("acme/tiny"));
        assert!(glob("acme?tiny").matches("acme/tiny"), "? matches /");
        assert!(!glob("acme/t?ny").matches("acme/tny"));
        assert!(glob("acme/[st]iny").matches("acme/tiny"));
        assert!(!glob("acme/[st]iny").matches("acme/liny"));
        assert!(glob("acme/[a-z]iny").matches("acme/tiny"));
        assert!(!glob("acme/[!t]iny").matches("acme/tiny"));
        assert!(glob("acme/[!t]iny").matches("acme/piny"));
        assert!(glob("[]]x").matches("]x"), "] first is literal");
        assert!(glob("[!]]x").matches("ax"));
        assert!(!glob("[!]]x").matches("]x"));
        assert!(glob("[a-]").matches("-"), "trailing - is literal");
        assert!(glob("[-a]").matches("-"), "leading - is literal");
        assert!(!glob("[z-a]").matches("z"), "reversed range is empty");
        assert!(glob("[!z-a]").matches("z"), "negated empty class: any char");
        assert!(glob("[^a]").matches("^"), "^ is not negation in fnmatch");
        assert!(!glob("[^a]").matches("b"));
    }

    #[test]
    fn unterminated_class_and_regex_metacharacters_are_literal() {
        assert!(glob("a[b").matches("a[b"));
        assert!(
            glob("a[*").matches("a[xyz"),
            "* after a lone [ is still a wildcard"
        );
        assert!(glob("a.b").matches("a.b"));
        assert!(!glob("a.b").matches("axb"));
        assert!(glob("a+(b)|c$").matches("a+(b)|c$"));
        assert!(glob("a\\b").matches("a\\b"), "no escape character");
        assert!(glob("[\\]").matches("\\"));
        assert!(glob("[&&]").matches("&"));
    }

    #[test]
    fn regex_is_anchored_at_the_start_only() {
        assert!(re("^acme/.*").matches("acme/x"));
        assert!(re("acme/.*").matches("acme/x"));
        assert!(re("acme").matches("acme/x"), "not anchored at the end");
        assert!(re("acme").matches("acmeco/x"));
        assert!(!re("acme").matches("x/acme"), "anchored at the start");
        assert!(re("mistralai/Mistral.*").matches("mistralai/Mistral-7B"));
        assert!(!re("a|b").matches("xb"), "alternation stays anchored");
        assert!(re("a|b").matches("b/x"));
    }

    #[test]
    fn invalid_regex_names_the_pattern_on_one_line() {
        let e = AccessRule::new("(", true, true).unwrap_err().to_string();
        assert!(e.contains("\"(\""), "{e}");
        assert!(e.contains("repo"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        // The same text as a wildcard is fine.
        assert!(AccessRule::new("(", true, false).unwrap().matches("("));
    }

    #[test]
    fn decide_last_match_wins_no_match_denies_no_rules_allow() {
        assert!(decide(&[], "any/thing"), "no rules: allow");
        let rule = |p: &str, allow: bool| AccessRule::new(p, allow, false).unwrap();
        let rules = vec![rule("*", true), rule("acme/*", false)];
        assert!(!decide(&rules, "acme/x"), "last match wins");
        assert!(decide(&rules, "other/x"));
        let rules = vec![rule("acme/*", false), rule("*", true)];
        assert!(decide(&rules, "acme/x"), "order matters");
        let rules = vec![rule("cais/mmlu", true)];
        assert!(decide(&rules, "cais/mmlu"));
        assert!(
            !decide(&rules, "other/x"),
            "rules present, none matches: deny"
        );
        let rules = vec![
            rule("mistralai/*", true),
            AccessRule::new("mistralai/Mistral.*", false, true).unwrap(),
        ];
        assert!(decide(&rules, "mistralai/Mixtral-8x7B"));
        assert!(!decide(&rules, "mistralai/Mistral-7B"));
    }

    #[test]
    fn equality_ignores_the_compiled_form() {
        assert_eq!(glob("a/*"), glob("a/*"));
        assert_ne!(glob("a/*"), AccessRule::new("a/*", false, false).unwrap());
        assert_ne!(glob("a/*"), re("a/*"));
    }
}
