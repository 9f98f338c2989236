//! The notices' templates (minijinja): a plain-text and an HTML part per action, over a shared
//! layout, per language. Built in, and overridable file by file from an operator's folder
//! (`<dir>/<language>/<name>`). HTML parts are auto-escaped; an undefined variable is an error,
//! not a silent blank.

use std::path::PathBuf;
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior};

use super::builtin::{LANGUAGES, TEMPLATES};
use super::notice::Notice;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
#[error("template {template}: {detail}")]
pub struct TemplateError {
    pub template: String,
    pub detail: String,
}

pub struct Templates {
    env: Environment<'static>,
    default_language: String,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("default_language", &self.default_language)
            .finish_non_exhaustive()
    }
}

/// A template's source: the operator's file if there is one, else the built-in one. The shared
/// `sentences` file serves under a `.txt.j2` and an `.html.j2` name, so it is escaped as the part
/// that uses it needs.
fn source(overrides: Option<&PathBuf>, name: &str) -> Option<String> {
    let stored = name
        .replace("sentences.txt.j2", "sentences.j2")
        .replace("sentences.html.j2", "sentences.j2");
    if let Some(dir) = overrides
        && !stored
            .split('/')
            .any(|part| part == ".." || part.is_empty())
        && let Ok(text) = std::fs::read_to_string(dir.join(&stored))
    {
        return Some(text);
    }
    TEMPLATES
        .iter()
        .find(|(n, _)| *n == stored)
        .map(|(_, t)| (*t).to_owned())
}

impl Templates {
    /// `overrides`: a folder of templates replacing built-in ones by name; `default_language`
    /// for users whose locale has no templates.
    pub fn new(overrides: Option<PathBuf>, default_language: &str) -> Templates {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let overrides = Arc::new(overrides);
        env.set_loader(move |name| Ok(source(overrides.as_ref().as_ref(), name)));
        // `extends "layout.txt.j2"` inside `fr/enrolled.txt.j2` means `fr/layout.txt.j2`.
        env.set_path_join_callback(|name, parent| {
            if name.contains('/') {
                name.to_owned().into()
            } else {
                match parent.rsplit_once('/') {
                    Some((dir, _)) => format!("{dir}/{name}").into(),
                    None => name.to_owned().into(),
                }
            }
        });
        Templates {
            env,
            default_language: default_language.to_owned(),
        }
    }

    /// The language for a user's `profile.locale` (`fr_FR`, `fr-CA`, `en`): the first part, if
    /// templates exist for it; else the default.
    pub fn language(&self, locale: Option<&str>) -> String {
        locale
            .and_then(|l| l.split(['_', '-']).next())
            .map(str::to_ascii_lowercase)
            .filter(|l| LANGUAGES.contains(&l.as_str()))
            .unwrap_or_else(|| self.default_language.clone())
    }

    /// Renders a web page, `<language>/<name>.html.j2` (escaped as HTML), with `context`.
    pub fn render_page(
        &self,
        language: &str,
        name: &str,
        context: &impl serde::Serialize,
    ) -> Result<String, TemplateError> {
        let template = format!("{language}/{name}.html.j2");
        let err = |e: minijinja::Error| TemplateError {
            template: template.clone(),
            detail: format!("{e:#}"),
        };
        self.env
            .get_template(&template)
            .map_err(err)?
            .render(minijinja::Value::from(minijinja::value::Serde(context)))
            .map_err(err)
    }

    /// Renders the notice's subject, text and HTML in `language`.
    pub fn render(&self, language: &str, notice: &Notice) -> Result<Rendered, TemplateError> {
        let base = match notice.changes.as_slice() {
            [one] => one.action,
            _ => "several",
        };
        let part = |ext: &str| -> Result<(String, Option<String>), TemplateError> {
            let name = format!("{language}/{base}.{ext}.j2");
            let err = |e: minijinja::Error| TemplateError {
                template: name.clone(),
                detail: format!("{e:#}"),
            };
            let template = self.env.get_template(&name).map_err(err)?;
            let mut captured = template
                .render_captured(minijinja::Value::from(minijinja::value::Serde(notice)))
                .map_err(err)?;
            let subject = if ext == "txt" {
                Some(
                    captured
                        .with_state_mut(|state| state.render_block("subject"))
                        .map_err(err)?,
                )
            } else {
                None
            };
            Ok((captured.into_output(), subject))
        };
        let (text, subject) = part("txt")?;
        let (html, _) = part("html")?;
        Ok(Rendered {
            subject: super::notice::clean(&subject.unwrap_or_default()),
            text: text.trim_start().to_owned(),
            html,
        })
    }
}
