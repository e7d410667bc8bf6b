//! olah's access rules: `[[accessibility.proxy]]` / `[[accessibility.cache]]`.

use regex::Regex;

/// One rule. `repo` is a wildcard pattern (`*` matches any run of characters including `/`,
/// `?` one character, `[…]` a class) or, with `use_re`, a regex anchored at the start only
/// (Python `re.match`).
#[derive(Debug, Clone)]
pub struct AccessRule {
    /// Pattern.
    pub repo: String,
    /// Allow or deny.
    pub allow: bool,
    /// Regex instead of wildcard.
    pub use_re: bool,
    re: Regex,
}

impl PartialEq for AccessRule {
    fn eq(&self, o: &Self) -> bool {
        self.repo == o.repo && self.allow == o.allow && self.use_re == o.use_re
    }
}

impl Eq for AccessRule {}

fn glob_to_regex(p: &str) -> String {
    let mut out = String::from("^");
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                let mut class = String::new();
                let mut closed = false;
                for d in chars.by_ref() {
                    if d == ']' {
                        closed = true;
                        break;
                    }
                    class.push(d);
                }
                if closed {
                    let body = class
                        .strip_prefix('!')
                        .map(|r| format!("^{}", regex::escape(r)))
                        .unwrap_or_else(|| regex::escape(&class));
                    out.push_str(&format!("[{}]", body.replace("\\-", "-")));
                } else {
                    out.push_str(&regex::escape(&format!("[{class}")));
                }
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    out
}

impl AccessRule {
    /// Compiles a rule; an invalid pattern is an error naming it.
    pub fn new(repo: &str, allow: bool, use_re: bool) -> Result<Self, String> {
        let src = if use_re {
            format!("^(?:{repo})")
        } else {
            glob_to_regex(repo)
        };
        let re = Regex::new(&src).map_err(|e| format!("invalid pattern {repo:?}: {e}"))?;
        Ok(Self {
            repo: repo.to_string(),
            allow,
            use_re,
            re,
        })
    }

    /// Whether the rule applies to `org/repo`.
    pub fn matches(&self, repo: &str) -> bool {
        self.re.is_match(repo)
    }
}

/// olah semantics: the last matching rule wins; with rules but no match, deny; no rules at all,
/// allow.
pub fn decide(rules: &[AccessRule], repo: &str) -> bool {
    if rules.is_empty() {
        return true;
    }
    rules
        .iter()
        .rev()
        .find(|r| r.matches(repo))
        .map(|r| r.allow)
        .unwrap_or(false)
}
