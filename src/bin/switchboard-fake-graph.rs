//! Try the Messenger channel without Facebook.
//!
//! `switchboard-fake-graph serve [--listen 127.0.0.1:9990]`: a fake Graph API that accepts
//! every Send API request and prints it (point `messenger.graph_base_url` at it).
//!
//! `switchboard-fake-graph webhook --text "hi"`: sends a signed Messenger webhook event
//! (a customer's text message) to a running Switchboard, as Meta would.
//!
//! `switchboard-fake-graph receive --secret S [--listen 127.0.0.1:9991]`: receives
//! Switchboard's own webhook events (events out) and prints each one with whether its
//! signature checks; `--fail N` refuses the first N, to watch the retries.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use serde_json::json;
use switchboard::channels::messenger::fake_graph::FakeGraph;
use switchboard::channels::messenger::webhook::sign;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "A fake Graph API and a webhook sender, to try Switchboard's Messenger channel locally"
)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve a fake Graph API on loopback and print every request it receives.
    Serve {
        #[arg(long, default_value = "127.0.0.1:9990")]
        listen: SocketAddr,
        /// Names for the User Profile API, as PSID=First Last (repeatable).
        #[arg(long = "profile", value_name = "PSID=NAME")]
        profiles: Vec<String>,
        /// Page tokens to answer with Graph error 190, as an expired token (repeatable):
        /// the entry point turns unauthorized until a new token is set.
        #[arg(long = "expired-token", value_name = "TOKEN")]
        expired: Vec<String>,
    },
    /// Receive Switchboard's events out and print each one (subscribe the printed URL
    /// with `POST /api/v1/webhooks`; the engine needs `webhooks.allow_private = true` to
    /// send to a loopback address).
    Receive {
        #[arg(long, default_value = "127.0.0.1:9991")]
        listen: SocketAddr,
        /// The subscription's secret, to check each signature with.
        #[arg(long)]
        secret: String,
        /// Answer 500 to the first N events (Switchboard tries them again).
        #[arg(long, default_value_t = 0)]
        fail: u32,
    },
    /// Send one signed webhook event (a customer's message) to Switchboard.
    Webhook {
        /// Switchboard's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The app secret Switchboard is configured with (messenger.app_secret); default:
        /// the environment's SWITCHBOARD_MESSENGER__APP_SECRET.
        #[arg(long)]
        secret: Option<String>,
        /// The page id of the entry point (the default config's demo page).
        #[arg(long, default_value = "100000000000001")]
        page: String,
        /// The customer's page-scoped id.
        #[arg(long, default_value = "1254459154682919")]
        psid: String,
        /// The message id; a new one each time unless given (a repeat is ignored).
        #[arg(long)]
        mid: Option<String>,
        #[arg(long)]
        text: String,
    },
}

fn main() {
    let args = Args::parse();
    let result: Result<(), String> = actix_rt::System::new().block_on(async move {
        match args.command {
            Cmd::Serve {
                listen,
                profiles,
                expired,
            } => serve(listen, profiles, expired).await,
            Cmd::Receive { listen, secret, fail } => receive(listen, secret, fail).await,
            Cmd::Webhook {
                url,
                secret,
                page,
                psid,
                mid,
                text,
            } => {
                let secret = secret
                    .or_else(|| std::env::var("SWITCHBOARD_MESSENGER__APP_SECRET").ok())
                    .ok_or("give --secret or set SWITCHBOARD_MESSENGER__APP_SECRET")?;
                webhook(url, secret, page, psid, mid, text).await
            }
        }
    });
    if let Err(e) = result {
        eprintln!("switchboard-fake-graph: {e}");
        std::process::exit(1);
    }
}

async fn serve(listen: SocketAddr, profiles: Vec<String>, expired: Vec<String>) -> Result<(), String> {
    let fake = FakeGraph::bind(listen, true)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    for p in profiles {
        let (psid, name) = p.split_once('=').ok_or("--profile takes PSID=First Last")?;
        let (first, last) = name.split_once(' ').unwrap_or((name, ""));
        fake.profile(psid, first, last);
    }
    for token in expired {
        fake.expire(&token);
    }
    println!(
        "fake Graph API on {}: set SWITCHBOARD_MESSENGER__GRAPH_BASE_URL={}",
        fake.addr,
        fake.url()
    );
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

async fn receive(listen: SocketAddr, secret: String, fail: u32) -> Result<(), String> {
    let receiver = switchboard::webhook_receiver::Receiver::start(listen, &secret, true)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    receiver.fail_next(fail);
    println!(
        "receiving events out on {}: POST /api/v1/webhooks with {{\"url\": \"{}\", \"events\": [...], \"secret\": ...}}",
        receiver.addr, receiver.url
    );
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

async fn webhook(
    url: String,
    secret: String,
    page: String,
    psid: String,
    mid: Option<String>,
    text: String,
) -> Result<(), String> {
    let now = chrono::Utc::now().timestamp_millis();
    let mid = mid.unwrap_or_else(|| format!("m_local_{now}"));
    let body = json!({
        "object": "page",
        "entry": [{
            "id": page,
            "time": now,
            "messaging": [{
                "sender": {"id": psid},
                "recipient": {"id": page},
                "timestamp": now,
                "message": {"mid": mid, "text": text},
            }],
        }],
    })
    .to_string();
    let signature = sign(secret.as_bytes(), body.as_bytes());
    let mut res = awc::Client::default()
        .post(format!("{}/webhooks/messenger", url.trim_end_matches('/')))
        .insert_header(("content-type", "application/json"))
        .insert_header(("x-hub-signature-256", signature))
        .send_body(body)
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let answer = res.body().await.map_err(|e| e.to_string())?;
    println!("{} {}", res.status(), String::from_utf8_lossy(&answer));
    if res.status().is_success() {
        Ok(())
    } else {
        Err("the webhook was refused".into())
    }
}
