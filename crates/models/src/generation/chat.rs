//! Chat prompts from a model's Jinja chat template (`chat_template.jinja`, or the
//! `chat_template` field of `tokenizer_config.json`), rendered with MiniJinja the way
//! transformers' `apply_chat_template` does (`messages`, `add_generation_prompt`, the special
//! tokens as variables, `raise_exception`).

use std::path::{Path, PathBuf};

use minijinja::{context, Environment, Error, ErrorKind};

use crate::error::{ModelError, Result};

/// File name of a standalone chat template in a Hugging Face model directory.
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message from `role`.
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A chat template and the special tokens it may refer to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    path: PathBuf,
    bos_token: String,
    eos_token: String,
}

fn token_string(value: Option<&serde_json::Value>) -> String {
    match value {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v
            .get("content")
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .to_string(),
        None => String::new(),
    }
}

impl ChatTemplate {
    /// A template from its source text.
    pub fn new(source: impl Into<String>, bos_token: &str, eos_token: &str) -> Self {
        Self {
            source: source.into(),
            path: PathBuf::from("<template>"),
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        }
    }

    /// The template of a model directory: `chat_template.jinja`, else the `chat_template` of
    /// `tokenizer_config.json`; `bos_token`/`eos_token` come from `tokenizer_config.json`.
    /// `Ok(None)` when the directory has no template.
    ///
    /// # Errors
    /// [`ModelError::Io`] / [`ModelError::Config`] for unreadable or malformed files.
    pub fn from_model_dir(dir: &Path) -> Result<Option<Self>> {
        let config_path = dir.join("tokenizer_config.json");
        let config: serde_json::Value = if config_path.is_file() {
            crate::error::read_json(&config_path)?
        } else {
            serde_json::Value::Null
        };
        let file = dir.join(CHAT_TEMPLATE_FILE);
        let (source, path) = if file.is_file() {
            (crate::error::read_to_string(&file)?, file)
        } else if let Some(s) = config.get("chat_template").and_then(|t| t.as_str()) {
            (s.to_string(), config_path)
        } else {
            return Ok(None);
        };
        Ok(Some(Self {
            source,
            path,
            bos_token: token_string(config.get("bos_token")),
            eos_token: token_string(config.get("eos_token")),
        }))
    }

    /// Renders `messages`, followed by the assistant header when `add_generation_prompt`.
    ///
    /// # Errors
    /// [`ModelError::Config`] naming the template for a syntax or rendering error.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let mut env = Environment::new();
        // transformers renders with trim_blocks and lstrip_blocks.
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("the default delimiters are valid");
        env.set_syntax(syntax);
        env.add_function(
            "raise_exception",
            |message: String| -> std::result::Result<String, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        let err = |e: Error| ModelError::Config {
            path: self.path.clone(),
            message: format!("chat template: {e:#}"),
        };
        env.add_template("chat", &self.source).map_err(err)?;
        let template = env.get_template("chat").map_err(err)?;
        template
            .render(context! {
                messages => messages_value(messages),
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(err)
    }
}

/// `[{"role": .., "content": ..}, ..]` as a template value.
fn messages_value(messages: &[ChatMessage]) -> minijinja::Value {
    messages
        .iter()
        .map(|m| {
            let map: std::collections::BTreeMap<&str, minijinja::Value> = [
                ("role", minijinja::Value::from(m.role.as_str())),
                ("content", minijinja::Value::from(m.content.as_str())),
            ]
            .into();
            minijinja::Value::from(map)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_the_smollm2_template_like_transformers() {
        let t = ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>");
        let out = t.render(&[ChatMessage::new("user", "Hi?")], true).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
             Face<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn template_errors_name_the_template() {
        let t = ChatTemplate::new("{% if %}", "", "");
        let err = t.render(&[], false).unwrap_err().to_string();
        assert!(err.contains("chat template"), "{err}");
        let t = ChatTemplate::new("{{ raise_exception('no system role') }}", "", "");
        let err = t.render(&[], false).unwrap_err().to_string();
        assert!(err.contains("no system role"), "{err}");
    }
}
