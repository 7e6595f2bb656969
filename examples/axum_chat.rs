//! axum's chat example (`examples/chat` in the axum repository) on the
//! crate's extractor: the same shape, a broadcast channel and a set of user
//! names, with `wsmachine::axum::WebSocketUpgrade` in place of
//! `axum::extract::ws::WebSocketUpgrade` (and permessage-deflate on).
//!
//! ```text
//! cargo run --features axum --example axum_chat [-- ADDR]   # default 127.0.0.1:3000
//! ```
//!
//! Open the page in several tabs: the first message a tab sends is its
//! name, the rest are broadcast to everyone as `name: text`.

use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse};
use axum::routing::{any, get};
use futures_util::StreamExt;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use wsmachine::axum::{WebSocket, WebSocketUpgrade};
use wsmachine::deflate::DeflateConfig;
use wsmachine::{Event, Message};

/// What every connection shares: the names in use and the channel.
pub struct AppState {
    user_set: Mutex<HashSet<String>>,
    tx: broadcast::Sender<String>,
}

/// The chat's router.
pub fn app() -> Router {
    let (tx, _rx) = broadcast::channel(100);
    let state = Arc::new(AppState {
        user_set: Mutex::new(HashSet::new()),
        tx,
    });
    Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route("/websocket", any(websocket_handler))
        .with_state(state)
}

async fn websocket_handler(ws: WebSocketUpgrade, State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ws.deflate(DeflateConfig::default())
        .on_upgrade(|socket| websocket(socket, state))
}

/// One user: the first text is the name, then each text is broadcast.
async fn websocket(stream: WebSocket, state: Arc<AppState>) {
    let (mut sender, mut receiver) = stream.split();
    let mut username = String::new();
    while let Some(Ok(event)) = receiver.next().await {
        if let Event::Text(name) = event {
            if check_username(&state, &name) {
                username = name.to_string();
                break;
            }
            let _ = sender.send(Message::from("Username already taken.")).await;
            return;
        }
    }
    if username.is_empty() {
        return;
    }
    let mut rx = state.tx.subscribe();
    let _ = state.tx.send(format!("{username} joined."));

    let mut send_task = tokio::spawn(async move {
        while let Ok(msg) = rx.recv().await {
            if sender.send(Message::from(msg)).await.is_err() {
                break;
            }
        }
    });
    let tx = state.tx.clone();
    let name = username.clone();
    let mut recv_task = tokio::spawn(async move {
        while let Some(Ok(event)) = receiver.next().await {
            if let Event::Text(text) = event {
                let _ = tx.send(format!("{name}: {}", &*text));
            }
        }
    });
    tokio::select! {
        _ = &mut send_task => recv_task.abort(),
        _ = &mut recv_task => send_task.abort(),
    };
    let _ = state.tx.send(format!("{username} left."));
    state.user_set.lock().unwrap().remove(&username);
}

fn check_username(state: &AppState, name: &str) -> bool {
    let mut user_set = state.user_set.lock().unwrap();
    !name.is_empty() && user_set.insert(name.to_owned())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("axum chat on http://{}", listener.local_addr()?);
    // axum::serve serves HTTP/1.1 and h2c, with SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3).
    axum::serve(listener, app()).await
}

const INDEX: &str = r##"<!doctype html>
<html><head><meta charset="utf-8"><title>WebSocket Chat</title></head>
<body>
<h1>WebSocket Chat Example</h1>
<input id="username" placeholder="username"><button id="join-chat">Join Chat</button>
<textarea id="chat" cols="80" rows="20" readonly></textarea>
<input id="input" placeholder="chat">
<script>
const username = document.querySelector("#username");
const join_btn = document.querySelector("#join-chat");
const textarea = document.querySelector("#chat");
const input = document.querySelector("#input");
join_btn.addEventListener("click", function () {
  this.disabled = true;
  const websocket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/websocket");
  websocket.onopen = () => websocket.send(username.value);
  websocket.onclose = () => { join_btn.disabled = false; };
  websocket.onmessage = (e) => { textarea.value += e.data + "\r\n"; };
  input.onkeydown = (e) => {
    if (e.key === "Enter") { websocket.send(input.value); input.value = ""; }
  };
});
</script>
</body></html>
"##;
