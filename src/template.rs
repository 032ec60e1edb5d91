//! Tag templates: `${KERNEL_FULL_VERSION}`, `${VERSION}-${KERNEL_FULL_VERSION}`, ...

use std::collections::BTreeMap;
use std::fmt;

use crate::domain::ParseError;

use crate::names::TEMPLATE_PLACEHOLDERS as BUILTIN_PLACEHOLDERS;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(String),
}

/// A parsed tag template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTemplate {
    text: String,
    parts: Vec<Part>,
}

impl TagTemplate {
    /// Parses `text`; every placeholder must be a builtin or one of `build_args`.
    pub fn parse<'a>(
        text: &str,
        build_args: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<Self, ParseError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find('$') {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 1..];
            let body = after.strip_prefix('{').ok_or_else(|| {
                ParseError::new(format!(
                    "`$` in tag template `{text}` does not start a placeholder"
                ))
                .with_help("placeholders are written `${NAME}`")
            })?;
            let end = body.find('}').ok_or_else(|| {
                ParseError::new(format!("unclosed placeholder in tag template `{text}`"))
            })?;
            let name = &body[..end];
            let known = BUILTIN_PLACEHOLDERS.contains(&name)
                || build_args.clone().into_iter().any(|a| a == name);
            if !known {
                let candidates: Vec<&str> = BUILTIN_PLACEHOLDERS
                    .into_iter()
                    .chain(build_args.clone())
                    .collect();
                let err =
                    ParseError::new(format!("unknown placeholder `${{{name}}}` in tag template"));
                return Err(
                    match crate::domain::did_you_mean(name, candidates.iter().copied()) {
                        Some(c) => err.with_help(format!("did you mean `${{{c}}}`?")),
                        None => err.with_help(format!(
                            "known placeholders: {}",
                            candidates
                                .iter()
                                .map(|c| format!("${{{c}}}"))
                                .collect::<Vec<_>>()
                                .join(" ")
                        )),
                    },
                );
            }
            parts.push(Part::Var(name.to_string()));
            rest = &body[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(TagTemplate {
            text: text.to_string(),
            parts,
        })
    }

    /// Substitutes every placeholder from `vars` and checks that the result is a valid tag.
    pub fn render(&self, vars: &BTreeMap<&str, &str>) -> Result<String, ParseError> {
        let mut out = String::with_capacity(self.text.len() + 48);
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Var(v) => out.push_str(vars.get(v.as_str()).copied().unwrap_or_default()),
            }
        }
        crate::domain::check_tag(&out)?;
        Ok(out)
    }

    /// Whether the template names `placeholder`.
    pub fn uses(&self, placeholder: &str) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v) if v == placeholder))
    }
}

impl fmt::Display for TagTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_builtins_and_build_args() {
        let t = TagTemplate::parse("${VERSION}-${KERNEL_FULL_VERSION}", ["VERSION"]).unwrap();
        let vars = BTreeMap::from([
            ("VERSION", "1.0"),
            ("KERNEL_FULL_VERSION", "6.1.0-50-amd64"),
        ]);
        assert_eq!(t.render(&vars).unwrap(), "1.0-6.1.0-50-amd64");
        assert!(t.uses("VERSION"));
    }

    #[test]
    fn unknown_placeholder_suggests_a_close_name() {
        let err = TagTemplate::parse("${KERNEL_FULL_VERSON}", ["VERSION"]).unwrap_err();
        assert_eq!(
            err.help.as_deref(),
            Some("did you mean `${KERNEL_FULL_VERSION}`?")
        );
        assert!(TagTemplate::parse("$VERSION", ["VERSION"]).is_err());
        assert!(TagTemplate::parse("${VERSION", ["VERSION"]).is_err());
    }

    #[test]
    fn rendered_tag_is_checked() {
        let t = TagTemplate::parse("v+${ARCH}", Vec::<&str>::new()).unwrap();
        assert!(t.render(&BTreeMap::from([("ARCH", "x86_64")])).is_err());
    }
}
