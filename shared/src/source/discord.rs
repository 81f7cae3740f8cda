//! Discord HTTP interactions, as received on the interactions endpoint.
//!
//! Mirrors <https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-object>
//! with only the fields bugbot reads.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Discord id (snowflake). Discord sends them as strings; so do we.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Snowflake(pub u64);

impl fmt::Debug for Snowflake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Snowflake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Snowflake {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Snowflake {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A direct visitor, not an untagged enum: untagged buffers through serde's `Content`,
        // which costs wasm size on every struct that holds an id.
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Snowflake;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a snowflake id")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Snowflake, E> {
                v.parse().map(Snowflake).map_err(|_| E::custom("a snowflake must be a decimal id"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Snowflake, E> {
                Ok(Snowflake(v))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Interaction types, <https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-object-interaction-type>.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InteractionType {
    Ping,
    ApplicationCommand,
    MessageComponent,
    Autocomplete,
    ModalSubmit,
    Other(u8),
}

impl<'de> Deserialize<'de> for InteractionType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match u8::deserialize(d)? {
            1 => Self::Ping,
            2 => Self::ApplicationCommand,
            3 => Self::MessageComponent,
            4 => Self::Autocomplete,
            5 => Self::ModalSubmit,
            n => Self::Other(n),
        })
    }
}

/// An incoming interaction.
#[derive(Debug, Clone, Deserialize)]
pub struct Interaction {
    pub id: Snowflake,
    pub application_id: Snowflake,
    #[serde(rename = "type")]
    pub kind: InteractionType,
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub data: Option<InteractionData>,
    #[serde(default)]
    pub guild_id: Option<Snowflake>,
    #[serde(default)]
    pub channel_id: Option<Snowflake>,
    /// Present in guilds.
    #[serde(default)]
    pub member: Option<Member>,
    /// Present in DMs.
    #[serde(default)]
    pub user: Option<User>,
    /// The message a component was attached to.
    #[serde(default)]
    pub message: Option<Message>,
}

impl Interaction {
    /// The invoking user, whether in a guild (`member.user`) or a DM (`user`).
    pub fn invoker(&self) -> Option<&User> {
        self.member.as_ref().and_then(|m| m.user.as_ref()).or(self.user.as_ref())
    }

    /// Role ids of the invoking member (empty in DMs).
    pub fn roles(&self) -> &[Snowflake] {
        self.member.as_ref().map_or(&[], |m| m.roles.as_slice())
    }
}

/// `data` of an application command, component or modal submit interaction.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InteractionData {
    #[serde(default)]
    pub name: Option<String>,
    /// Command type: 1 `CHAT_INPUT`, 2 USER, 3 MESSAGE.
    #[serde(default, rename = "type")]
    pub command_type: Option<u8>,
    #[serde(default)]
    pub options: Vec<CommandOption>,
    #[serde(default)]
    pub target_id: Option<Snowflake>,
    #[serde(default)]
    pub resolved: Option<Resolved>,
    /// Components and modals.
    #[serde(default)]
    pub custom_id: Option<String>,
    #[serde(default)]
    pub component_type: Option<u8>,
    /// Select menus.
    #[serde(default)]
    pub values: Vec<String>,
    /// Modal submits: action rows (legacy) or labels (current) around text inputs.
    #[serde(default)]
    pub components: Vec<ModalComponent>,
}

/// An application command option, <https://discord.com/developers/docs/interactions/application-commands#application-command-object-application-command-interaction-data-option-structure>.
#[derive(Debug, Clone, Deserialize)]
pub struct CommandOption {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: u8,
    #[serde(default)]
    pub value: Option<OptionValue>,
    #[serde(default)]
    pub options: Vec<CommandOption>,
}

/// The value of an option: string, integer, number or boolean.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl<'de> Deserialize<'de> for OptionValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = OptionValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_bool<E>(self, v: bool) -> Result<OptionValue, E> {
                Ok(OptionValue::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<OptionValue, E> {
                Ok(OptionValue::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<OptionValue, E> {
                i64::try_from(v).map(OptionValue::Int).map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<OptionValue, E> {
                Ok(OptionValue::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<OptionValue, E> {
                Ok(OptionValue::Str(v.to_owned()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `data.resolved` — for message commands the full target message.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Resolved {
    #[serde(default)]
    pub messages: BTreeMap<String, Message>,
}

/// A Discord message, <https://discord.com/developers/docs/resources/message#message-object>.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Message {
    pub id: Snowflake,
    #[serde(default)]
    pub channel_id: Option<Snowflake>,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub author: Option<User>,
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// A Discord user (only what bugbot shows or authorizes on).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct User {
    pub id: Snowflake,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub global_name: Option<String>,
}

/// A guild member.
#[derive(Debug, Clone, Deserialize)]
pub struct Member {
    #[serde(default)]
    pub user: Option<User>,
    #[serde(default)]
    pub roles: Vec<Snowflake>,
}

/// A component of a submitted modal: an action row (type 1) or label (type 18) wrapping inputs.
#[derive(Debug, Clone, Deserialize)]
pub struct ModalComponent {
    #[serde(default)]
    pub custom_id: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub components: Vec<ModalComponent>,
    #[serde(default)]
    pub component: Option<Box<ModalComponent>>,
}

impl ModalComponent {
    /// Every `(custom_id, value)` inside, depth first. Select values are joined with commas.
    pub fn fields(&self, out: &mut Vec<(String, String)>) {
        if let Some(id) = &self.custom_id {
            if let Some(v) = &self.value {
                out.push((id.clone(), v.clone()));
            } else if !self.values.is_empty() {
                out.push((id.clone(), self.values.join(",")));
            }
        }
        for child in self.components.iter().chain(self.component.as_deref()) {
            child.fields(out);
        }
    }
}

/// Interaction callback types, <https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-response-object-interaction-callback-type>.
pub mod callback {
    pub const PONG: u8 = 1;
    pub const CHANNEL_MESSAGE_WITH_SOURCE: u8 = 4;
    pub const DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: u8 = 5;
    pub const DEFERRED_UPDATE_MESSAGE: u8 = 6;
    pub const AUTOCOMPLETE_RESULT: u8 = 8;
    /// Message flag: only the invoking user sees it.
    pub const EPHEMERAL: u64 = 1 << 6;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> String {
        std::fs::read_to_string(format!("{}/../fixtures/discord/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn parses_message_context_command() {
        let i: Interaction =
            serde_json::from_str(&fixture("api_docs_examples/interaction_message_context_command.json")).unwrap();
        assert_eq!(i.kind, InteractionType::ApplicationCommand);
        let data = i.data.unwrap();
        assert_eq!(data.command_type, Some(3));
        let target = data.target_id.unwrap();
        assert_eq!(data.resolved.unwrap().messages[&target.to_string()].content, "some message");
        assert_eq!(i.member.unwrap().user.unwrap().username, "ian");
    }

    #[test]
    fn parses_real_captured_interactions() {
        let all: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(&fixture("ssmmiles_real_interactions.json")).unwrap();
        for (name, v) in all {
            let i: Interaction = serde_json::from_value(v).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(i.invoker().is_some(), "{name}");
        }
    }

    #[test]
    fn modal_fields_both_layouts() {
        let v: serde_json::Value =
            serde_json::from_str(&fixture("api_docs_examples/interaction_modal_submit_text_input_partial.json"))
                .unwrap();
        let data: InteractionData = serde_json::from_value(v["data"].clone()).unwrap();
        let mut out = vec![];
        for c in &data.components {
            c.fields(&mut out);
        }
        assert_eq!(out[0].0, "game_feedback");
        let legacy: InteractionData = serde_json::from_str(
            r#"{"custom_id":"m","components":[{"type":1,"components":[{"type":4,"custom_id":"a","value":"x"}]}]}"#,
        )
        .unwrap();
        let mut out = vec![];
        legacy.components[0].fields(&mut out);
        assert_eq!(out, vec![("a".to_string(), "x".to_string())]);
    }

    #[test]
    fn snowflake_forms() {
        let s: Snowflake = serde_json::from_str("\"123\"").unwrap();
        assert_eq!(s, Snowflake(123));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"123\"");
        assert!(serde_json::from_str::<Snowflake>("\"12x\"").is_err());
    }
}
