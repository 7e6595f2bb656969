//! The chat's messages: what a page sends (plain text, or a JSON object
//! addressed to some users), what the server sends back, and what nodes
//! tell each other over Redis. Pure functions, unit-tested below
//! (`cargo test --example chat`).

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// Most recipients one addressed message may name.
pub const MAX_RECIPIENTS: usize = 64;
/// Longest user name accepted in `to` (ours are much shorter).
pub const MAX_NAME_LEN: usize = 64;

/// One line from a page, parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// To everyone: plain text, or `{"text": "…"}`.
    Everyone(String),
    /// `{"to": ["guest-2", …], "text": "…"}`: only to those users (and back
    /// to the sender). Names are deduplicated, in the order given.
    Addressed { to: Vec<String>, text: String },
}

/// Parses one text message from a page. Plain text (not starting with `{`)
/// is a message to everyone; text starting with `{` must be a JSON object
/// with a string `text` and optionally `to`, a non-empty array of names.
/// Text longer than `max_chars` characters is cut there. `Err` is the reason,
/// sent back to the sender as `{"type":"error"}`.
pub fn parse_input(raw: &str, max_chars: usize) -> Result<Input, String> {
    let cut = |text: &str| -> Result<String, String> {
        let text = text.trim_end();
        if text.trim_start().is_empty() {
            return Err("nothing to send: the message is empty".into());
        }
        Ok(text.chars().take(max_chars).collect())
    };
    if !raw.trim_start().starts_with('{') {
        return cut(raw).map(Input::Everyone);
    }
    let value: Value = serde_json::from_str(raw).map_err(|e| format!("malformed JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("malformed message: expected a JSON object".into());
    };
    let text = match object.remove("text") {
        Some(Value::String(text)) => cut(&text)?,
        Some(_) => return Err("malformed message: \"text\" must be a string".into()),
        None => return Err("malformed message: \"text\" is missing".into()),
    };
    let to = match object.remove("to") {
        None | Some(Value::Null) => None,
        Some(Value::Array(names)) => Some(recipients(names)?),
        Some(_) => return Err("malformed message: \"to\" must be an array of user names".into()),
    };
    if let Some(field) = object.keys().next() {
        return Err(format!(
            "malformed message: unknown field {field:?} (only \"to\" and \"text\")"
        ));
    }
    Ok(match to {
        None => Input::Everyone(text),
        Some(to) => Input::Addressed { to, text },
    })
}

fn recipients(names: Vec<Value>) -> Result<Vec<String>, String> {
    if names.is_empty() {
        return Err("malformed message: \"to\" names nobody (send plain text to write to everyone)".into());
    }
    if names.len() > MAX_RECIPIENTS {
        return Err(format!(
            "malformed message: \"to\" names more than {MAX_RECIPIENTS} users"
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for name in names {
        let Value::String(name) = name else {
            return Err("malformed message: \"to\" must hold user names (strings)".into());
        };
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(format!("malformed message: {name:?} is not a user name"));
        }
        if seen.insert(name.clone()) {
            out.push(name);
        }
    }
    Ok(out)
}

/// The number in `guest-N`, for names handed out by a counter.
pub fn guest_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("guest-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

// ---- server to page ----------------------------------------------------------------------

/// `{"type":"welcome","name":…,"users":[…]}` (`users`: everyone else);
/// with `--redis`, `"redis": true|false` says whether the node reaches Redis.
pub fn welcome(name: &str, users: &[String], redis: Option<bool>) -> String {
    let mut event = json!({"type": "welcome", "name": name, "users": users});
    if let Some(up) = redis {
        event["redis"] = Value::Bool(up);
    }
    event.to_string()
}

pub fn join(name: &str) -> String {
    json!({"type": "join", "name": name}).to_string()
}

pub fn leave(name: &str) -> String {
    json!({"type": "leave", "name": name}).to_string()
}

/// `{"type":"msg","from":…,"text":…}`, with `"to":[…]` for an addressed message.
pub fn msg(from: &str, to: Option<&[String]>, text: &str) -> String {
    let mut event = json!({"type": "msg", "from": from, "text": text});
    if let Some(to) = to {
        event["to"] = json!(to);
    }
    event.to_string()
}

pub fn error(text: &str) -> String {
    json!({"type": "error", "text": text}).to_string()
}

/// Everyone in the chat now (the page drops its own name): sent when the list
/// changes by more than one join or leave (Redis lost: only this node's users).
pub fn users(names: &[String]) -> String {
    json!({"type": "users", "users": names}).to_string()
}

/// Whether this node reaches Redis (the chat spans the nodes) or not (only
/// this node's users), with a line for the page.
pub fn status(redis: bool, text: &str) -> String {
    json!({"type": "status", "redis": redis, "text": text}).to_string()
}

// ---- node to node (over Redis pub/sub) -----------------------------------------------------

/// What a node publishes for the others.
#[derive(Debug, PartialEq, Eq)]
pub enum Remote {
    /// A message from a user of that node; `to: None` is everyone.
    Msg {
        from: String,
        to: Option<Vec<String>>,
        text: String,
    },
    Join(String),
    Leave(String),
}

/// The published form: `{"node":…,"kind":"msg"|"join"|"leave",…}`.
pub fn encode_remote(node: &str, event: &Remote) -> String {
    match event {
        Remote::Msg { from, to, text } => {
            let mut v = json!({"node": node, "kind": "msg", "from": from, "text": text});
            if let Some(to) = to {
                v["to"] = json!(to);
            }
            v.to_string()
        }
        Remote::Join(name) => json!({"node": node, "kind": "join", "name": name}).to_string(),
        Remote::Leave(name) => json!({"node": node, "kind": "leave", "name": name}).to_string(),
    }
}

/// `(node, event)` from a published payload; `Err` for anything else (logged,
/// not relayed: another program may publish on the channel).
pub fn decode_remote(payload: &str) -> Result<(String, Remote), String> {
    let value: Value = serde_json::from_str(payload).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(o) = value else {
        return Err("not an object".into());
    };
    let node = string(&o, "node")?;
    let event = match string(&o, "kind")?.as_str() {
        "msg" => Remote::Msg {
            from: string(&o, "from")?,
            text: string(&o, "text")?,
            to: match o.get("to") {
                None => None,
                Some(Value::Array(names)) => Some(
                    names
                        .iter()
                        .map(|n| n.as_str().map(str::to_owned).ok_or("\"to\" holds a non-string"))
                        .collect::<Result<_, _>>()?,
                ),
                Some(_) => return Err("\"to\" is not an array".into()),
            },
        },
        "join" => Remote::Join(string(&o, "name")?),
        "leave" => Remote::Leave(string(&o, "name")?),
        other => return Err(format!("unknown kind {other:?}")),
    };
    Ok((node, event))
}

fn string(o: &Map<String, Value>, key: &str) -> Result<String, String> {
    match o.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(format!("no string {key:?}")),
    }
}

/// Where an addressed message from `sender` goes: `Ok((here, publish))`,
/// the users of this node that get it (the local recipients, and the sender,
/// who sees it marked as sent to them) and whether it must go out over Redis
/// (a recipient is on another node). `Err` names the unknown recipients: the
/// message goes nowhere.
pub fn route_addressed(
    sender: &str,
    to: &[String],
    is_local: impl Fn(&str) -> bool,
    is_remote: impl Fn(&str) -> bool,
) -> Result<(BTreeSet<String>, bool), String> {
    let unknown: Vec<&str> = to
        .iter()
        .map(String::as_str)
        .filter(|n| !is_local(n) && !is_remote(n))
        .collect();
    if !unknown.is_empty() {
        return Err(format!("not sent: no user named {} in the chat", unknown.join(", ")));
    }
    let mut here: BTreeSet<String> = to.iter().filter(|n| is_local(n)).cloned().collect();
    here.insert(sender.to_string());
    Ok((here, to.iter().any(|n| is_remote(n))))
}

/// Presence diff: which names a fresh snapshot of the other nodes' users adds
/// to what we knew, and which it removes (their node stopped refreshing them).
pub fn diff(known: &BTreeSet<String>, snapshot: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    let added = snapshot.difference(known).cloned().collect();
    let removed = known.difference(snapshot).cloned().collect();
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addressed(to: &[&str], text: &str) -> Input {
        Input::Addressed {
            to: to.iter().map(|s| s.to_string()).collect(),
            text: text.into(),
        }
    }

    #[test]
    fn plain_text_is_for_everyone() {
        assert_eq!(parse_input("hello  ", 100), Ok(Input::Everyone("hello".into())));
        // Not JSON unless it starts with `{`: a quoted string or an array is text.
        assert_eq!(parse_input("[1, 2]", 100), Ok(Input::Everyone("[1, 2]".into())));
        assert_eq!(parse_input("\"x\"", 100), Ok(Input::Everyone("\"x\"".into())));
    }

    #[test]
    fn long_text_is_cut_by_characters() {
        assert_eq!(parse_input("ééééé", 3), Ok(Input::Everyone("ééé".into())));
        let json = r#"{"to":["guest-1"],"text":"abcdef"}"#;
        assert_eq!(parse_input(json, 2), Ok(addressed(&["guest-1"], "ab")));
    }

    #[test]
    fn empty_is_an_error() {
        assert!(parse_input("   ", 100).unwrap_err().contains("empty"));
        assert!(parse_input(r#"{"text":" "}"#, 100).unwrap_err().contains("empty"));
    }

    #[test]
    fn addressed_messages() {
        let json = r#"{"to":["guest-2","guest-5","guest-2"],"text":"hi"}"#;
        assert_eq!(parse_input(json, 100), Ok(addressed(&["guest-2", "guest-5"], "hi")));
        // `{"text": …}` alone (how the page sends text starting with `{`) is for everyone.
        assert_eq!(
            parse_input(r#" {"text":"{x}"}"#, 100),
            Ok(Input::Everyone("{x}".into()))
        );
        assert_eq!(
            parse_input(r#"{"to":null,"text":"a"}"#, 100),
            Ok(Input::Everyone("a".into()))
        );
    }

    #[test]
    fn malformed_input_names_the_fault() {
        let err = |s: &str| parse_input(s, 100).unwrap_err();
        assert!(err("{not json").starts_with("malformed JSON"));
        assert!(err(r#"{"to":["guest-1"]}"#).contains("\"text\" is missing"));
        assert!(err(r#"{"text":5}"#).contains("\"text\" must be a string"));
        assert!(err(r#"{"to":"guest-1","text":"a"}"#).contains("\"to\" must be an array"));
        assert!(err(r#"{"to":[],"text":"a"}"#).contains("names nobody"));
        assert!(err(r#"{"to":[7],"text":"a"}"#).contains("strings"));
        assert!(err(r#"{"to":[""],"text":"a"}"#).contains("not a user name"));
        assert!(err(r#"{"text":"a","tO":["x"]}"#).contains("unknown field \"tO\""));
        let many: Vec<String> = (0..=MAX_RECIPIENTS).map(|i| format!("\"guest-{i}\"")).collect();
        assert!(err(&format!(r#"{{"to":[{}],"text":"a"}}"#, many.join(","))).contains("more than"));
    }

    #[test]
    fn guest_numbers() {
        assert_eq!(guest_number("guest-12"), Some(12));
        assert_eq!(guest_number("guest-"), None);
        assert_eq!(guest_number("guest-1a"), None);
        assert_eq!(guest_number("guest-a1b2-3"), None);
        assert_eq!(guest_number("guest-99999999999999999999999"), None);
    }

    #[test]
    fn events_to_the_page() {
        let v: Value = serde_json::from_str(&msg("guest-3", None, "hi")).unwrap();
        assert_eq!(v, json!({"type": "msg", "from": "guest-3", "text": "hi"}));
        let to = vec!["guest-2".to_string(), "guest-5".to_string()];
        let v: Value = serde_json::from_str(&msg("guest-3", Some(&to), "hi")).unwrap();
        assert_eq!(
            v,
            json!({"type": "msg", "from": "guest-3", "to": ["guest-2", "guest-5"], "text": "hi"})
        );
        let v: Value = serde_json::from_str(&welcome("guest-1", &[], None)).unwrap();
        assert!(v.get("redis").is_none());
        let v: Value = serde_json::from_str(&welcome("guest-1", &[], Some(false))).unwrap();
        assert_eq!(v["redis"], json!(false));
    }

    #[test]
    fn remote_events_round_trip() {
        for event in [
            Remote::Msg {
                from: "guest-1".into(),
                to: None,
                text: "a".into(),
            },
            Remote::Msg {
                from: "guest-1".into(),
                to: Some(vec!["guest-2".into()]),
                text: "b".into(),
            },
            Remote::Join("guest-4".into()),
            Remote::Leave("guest-4".into()),
        ] {
            let payload = encode_remote("n1", &event);
            assert_eq!(decode_remote(&payload), Ok(("n1".to_string(), event)));
        }
        assert!(decode_remote("{}").is_err());
        assert!(decode_remote(r#"{"node":"n","kind":"boom"}"#).is_err());
        assert!(decode_remote(r#"{"node":"n","kind":"msg","from":"a","text":"b","to":[1]}"#).is_err());
    }

    #[test]
    fn addressed_routing() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let local = |n: &str| ["guest-1", "guest-2", "guest-3"].contains(&n);
        let remote = |n: &str| ["guest-7", "guest-8"].contains(&n);
        // Local recipients and the sender; not guest-3, not published.
        let (here, publish) = route_addressed("guest-1", &names(&["guest-2"]), local, remote).unwrap();
        assert_eq!(here, names(&["guest-1", "guest-2"]).into_iter().collect());
        assert!(!publish);
        // A recipient on another node: only the sender here, published.
        let (here, publish) = route_addressed("guest-1", &names(&["guest-8"]), local, remote).unwrap();
        assert_eq!(here, names(&["guest-1"]).into_iter().collect());
        assert!(publish);
        // One unknown name: nobody gets it, the error names it (and only it).
        let err = route_addressed("guest-1", &names(&["guest-2", "guest-9", "guest-7"]), local, remote).unwrap_err();
        assert_eq!(err, "not sent: no user named guest-9 in the chat");
    }

    #[test]
    fn presence_diff() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let (added, removed) = diff(&set(&["guest-1", "guest-2"]), &set(&["guest-2", "guest-3"]));
        assert_eq!(added, vec!["guest-3".to_string()]);
        assert_eq!(removed, vec!["guest-1".to_string()]);
    }
}
