//! A cluster: three NATS servers as one JetStream cluster on loopback ports, and real
//! `switchboard` nodes (the binary) sharing tenant `default` through it
//! (docs/CLUSTER.md). Leases are short (1.5 s) so that the tests wait little; nothing is
//! asserted about speed beyond the contract's bound (another node routes within 5 s of
//! the lease's end). Skipped with a loud message without `nats-server`, unless `CI` is set.

mod common;
mod messenger_common;
mod nats_common;

use std::time::{Duration, Instant};

use common::{Process, ADMIN};
use nats_common::NatsCluster;
use serde_json::{json, Value};

/// The lease of every test node.
const LEASE_MS: u64 = 1500;
/// The contract: another node routes the tenant within this long after the lease's end.
const TAKEOVER_BOUND: Duration = Duration::from_secs(5);

/// One Switchboard node of the test cluster.
struct Node {
    id: String,
    process: Process,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start(nats: &NatsCluster, id: &str) -> Node {
        Node::with_lease(nats, id, LEASE_MS)
    }

    fn with_lease(nats: &NatsCluster, id: &str, lease_ms: u64) -> Node {
        Node::with_env(nats, id, lease_ms, &[])
    }

    /// A node with `extra` configuration variables beside the cluster's.
    fn with_env(nats: &NatsCluster, id: &str, lease_ms: u64, extra: &[(&str, &str)]) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = nats_common::free_port();
        let listen = format!("127.0.0.1:{port}");
        let url = format!("http://{listen}");
        let store = dir.path().join("data");
        let store = store.to_str().expect("utf-8 path");
        let urls = nats.urls();
        let lease = lease_ms.to_string();
        let mut env = vec![
            ("SWITCHBOARD_SERVER__LISTEN", listen.as_str()),
            ("SWITCHBOARD_STORE__PATH", store),
            ("SWITCHBOARD_CLUSTER__NATS_URL", urls.as_str()),
            ("SWITCHBOARD_CLUSTER__NODE_ID", id),
            ("SWITCHBOARD_CLUSTER__ADVERTISE_URL", url.as_str()),
            ("SWITCHBOARD_CLUSTER__LEASE_MS", lease.as_str()),
            ("SWITCHBOARD_CLUSTER__REPLICAS", "3"),
            // Small, so that a new owner restores a snapshot and replays a tail.
            ("SWITCHBOARD_CLUSTER__SNAPSHOT_EVERY", "7"),
            ("RUST_LOG", "warn,switchboard::cluster=info"),
        ];
        env.extend_from_slice(extra);
        let process = Process::start(dir.path(), &env);
        Node {
            id: id.into(),
            process,
            _dir: dir,
        }
    }

    fn pid(&self) -> i32 {
        self.process.child.id() as i32
    }

    fn base(&self) -> &str {
        &self.process.base
    }
}

/// A request that may fail (a node stopped or gone): `None` then.
async fn call(base: &str, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Option<(u16, Value)> {
    answer(base, method, path, token, body)
        .await
        .map(|(status, v, _)| (status, v))
}

/// [`call`], with the node that made the answer (`Switchboard-Node`).
async fn answer(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Option<(u16, Value, Option<String>)> {
    let client = awc::Client::builder().timeout(Duration::from_secs(3)).finish();
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let mut res = match body {
        Some(b) => req.send_json(&b).await.ok()?,
        None => req.send().await.ok()?,
    };
    let by = res
        .headers()
        .get("switchboard-node")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let bytes = res.body().limit(16 << 20).await.ok()?;
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Some((res.status().as_u16(), v, by))
}

/// Nodes `node-a`, `node-b` and `node-c` with leases of `lease_ms` and `extra` variables.
fn three_nodes(nats: &NatsCluster, lease_ms: u64, extra: &[(&str, &str)]) -> [Node; 3] {
    ["node-a", "node-b", "node-c"].map(|id| Node::with_env(nats, id, lease_ms, extra))
}

/// The node among `nodes` that routes tenant `default` now: it serves the admin's reads
/// itself (a standby forwards them, and the answer names the node that made it).
async fn routing(nodes: &[&Node]) -> Option<String> {
    for n in nodes {
        if let Some((200, _, Some(by))) = answer(n.base(), "GET", "/api/v1/queues", Some(ADMIN), None).await {
            if by == n.id {
                return Some(by);
            }
        }
    }
    None
}

/// Waits (up to `within`) until some node of `nodes` other than `not` routes the tenant.
async fn wait_owner(nodes: &[&Node], not: Option<&str>, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some(owner) = routing(nodes).await {
            if Some(owner.as_str()) != not {
                return owner;
            }
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = nodes
                .iter()
                .map(|n| format!("--- {}:\n{}", n.id, n.process.log_lines().join("\n")))
                .collect();
            panic!(
                "no node other than {not:?} took the tenant within {within:?}\n{}",
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates agent `id` (queue `support`) through node `via`: its token.
async fn agent_via(via: &Node, id: &str, name: &str) -> String {
    let (status, agent) = call(
        via.base(),
        "POST",
        "/api/v1/agents",
        Some(ADMIN),
        Some(json!({"id": id, "name": name, "queues": ["support"]})),
    )
    .await
    .expect("an answer");
    assert_eq!(status, 201, "{agent}");
    agent["token"].as_str().expect("token").to_string()
}

/// Connects the desktop of `token` to node `via` until a `hello` comes (the tenant may be
/// between owners): the desktop and its `hello`.
async fn resume(client: &awc::Client, via: &Node, token: &str) -> (common::Desktop, Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let url = format!("{}/api/v1/agents/me/ws?token={token}", via.base().replace("http", "ws"));
        if let Ok((_, framed)) = client.ws(url).max_frame_size(64 << 20).connect().await {
            let mut d = common::Desktop::from_framed(framed);
            if let Some(v) = d.within(Duration::from_secs(5)).await {
                if v["type"] == "hello" {
                    return (d, v);
                }
            }
        }
        assert!(Instant::now() < deadline, "the desktop did not resume on {}", via.id);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig})");
}

/// Creates a conversation through `base`: its id, once acknowledged (201).
async fn conversation(base: &str, customer: &str, text: &str) -> Option<String> {
    let body = json!({"entry_point": "demo-page", "customer": {"id": customer, "name": "Carol"}, "text": text});
    match call(base, "POST", "/api/v1/conversations", Some(ADMIN), Some(body)).await {
        Some((201, v)) => v["id"].as_str().map(String::from),
        _ => None,
    }
}

/// The texts of a conversation's transcript as `base` serves it.
async fn texts(base: &str, id: &str) -> Vec<String> {
    let (status, v) = call(base, "GET", &format!("/api/v1/conversations/{id}"), Some(ADMIN), None)
        .await
        .unwrap_or((0, Value::Null));
    assert_eq!(status, 200, "conversation {id} on {base}: {v}");
    common::texts(&v)
}

/// An operator runs three nodes on a three-server JetStream cluster. Clients write through
/// the owner of tenant `default`; the owner is SIGKILLed: another node routes the tenant
/// within 5 s of the lease's end, rebuilt from the snapshot and the log after it, with
/// every acknowledged conversation and message; standbys answer 503 `not_owner`. Then one
/// NATS server of three is killed: nothing stops (the owner goes on acknowledging), and
/// `GET /api/v1/cluster` shows the nodes and the new owner with its log position.
#[actix_web::test]
async fn owner_killed_another_node_routes_every_acknowledged_message() {
    let Some(mut nats) = NatsCluster::start().await else {
        return;
    };
    let nodes = three_nodes(&nats, LEASE_MS, &[]);
    let all: Vec<&Node> = nodes.iter().collect();
    let first = wait_owner(&all, None, Duration::from_secs(30)).await;
    let owner = nodes.iter().find(|n| n.id == first).expect("owner");
    let standby = nodes.iter().find(|n| n.id != first).expect("standby");

    // A standby routes nothing itself: it forwards to the owner (here a bad request, which
    // the owner refuses), and keeps its own metrics to itself, naming the owner.
    let (status, v) = call(
        standby.base(),
        "POST",
        "/api/v1/conversations",
        Some(ADMIN),
        Some(json!({})),
    )
    .await
    .expect("standby answers");
    assert_eq!(status, 400, "the owner's refusal, forwarded: {v}");
    let (status, v) = call(standby.base(), "GET", "/metrics", None, None)
        .await
        .expect("standby answers");
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "not_owner", "{v}");
    assert!(v["error"]["message"].as_str().unwrap_or("").contains(&first), "{v}");
    let (status, _) = call(standby.base(), "GET", "/readyz", None, None)
        .await
        .expect("readyz");
    assert_eq!(status, 200, "a standby that reaches NATS is ready");
    let (status, _) = call(standby.base(), "GET", "/api/v1/cluster", None, None)
        .await
        .expect("cluster");
    assert_eq!(
        status, 401,
        "the cluster's view needs the admin's or the operator's token"
    );

    // Acknowledged writes through the owner: conversations, and a second message in each.
    let mut acknowledged: Vec<(String, Vec<String>)> = Vec::new();
    for i in 0..20 {
        let customer = format!("customer-{i}");
        let first_text = format!("hello {i}");
        let id = conversation(owner.base(), &customer, &first_text)
            .await
            .unwrap_or_else(|| panic!("conversation {i} refused by the owner"));
        let second = format!("still there {i}");
        let body = json!({"entry_point": "demo-page", "customer": {"id": customer, "name": "Carol"}, "text": second});
        let (status, v) = call(owner.base(), "POST", "/api/v1/conversations", Some(ADMIN), Some(body))
            .await
            .expect("second message");
        assert!(status == 200 || status == 201, "{status}: {v}");
        // A customer's second message joins the open conversation.
        assert_eq!(v["id"].as_str(), Some(id.as_str()), "{v}");
        acknowledged.push((id, vec![first_text, second]));
    }

    // Snapshots were written (one every 7 entries here), and the log before the one but
    // last was removed: a new owner needs only the latest snapshot and what follows it.
    // (Each snapshot is an upload to three NATS servers: on a busy machine, seconds.)
    let deadline = Instant::now() + Duration::from_secs(60);
    while !owner.process.log_lines().iter().any(|l| l.contains("log truncated")) {
        assert!(
            Instant::now() < deadline,
            "the owner never truncated its log:\n{}",
            owner.process.log_lines().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGKILL the owner while a client is still writing.
    let killed = Instant::now();
    let owner_id = owner.id.clone();
    signal(owner.pid(), libc::SIGKILL);
    let lease_end = killed + Duration::from_millis(LEASE_MS);
    let survivors: Vec<&Node> = nodes.iter().filter(|n| n.id != owner_id).collect();
    let next = wait_owner(&survivors, Some(&owner_id), Duration::from_secs(30)).await;
    let took = Instant::now().saturating_duration_since(lease_end);
    eprintln!("the tenant was routed again {took:?} after the lease's end");
    for n in &survivors {
        eprintln!("--- {}:\n{}", n.id, n.process.log_lines().join("\n"));
    }
    assert!(
        took <= TAKEOVER_BOUND,
        "another node routed the tenant {took:?} after the lease's end (contract: within {TAKEOVER_BOUND:?})"
    );
    let next = survivors.iter().find(|n| n.id == next).expect("new owner");

    // Every acknowledged conversation and message is there.
    for (id, want) in &acknowledged {
        let have = texts(next.base(), id).await;
        for text in want {
            assert!(have.contains(text), "conversation {id} lost {text:?}: {have:?}");
        }
    }
    // And the new owner routes: a new conversation is acknowledged.
    assert!(conversation(next.base(), "after-failover", "hello again")
        .await
        .is_some());

    // One NATS server of three goes: the new owner goes on acknowledging, and serves
    // everything acknowledged before.
    nats.servers[2].kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after_kill = 0;
    while after_kill < 5 {
        let i = 100 + after_kill;
        match conversation(next.base(), &format!("customer-{i}"), &format!("hello {i}")).await {
            Some(id) => {
                acknowledged.push((id, vec![format!("hello {i}")]));
                after_kill += 1;
            }
            None => {
                assert!(
                    Instant::now() < deadline,
                    "the owner stopped acknowledging with 2 of 3 NATS servers up:\n{}",
                    next.process.log_lines().join("\n")
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    for (id, want) in &acknowledged {
        let have = texts(next.base(), id).await;
        for text in want {
            assert!(have.contains(text), "conversation {id} lost {text:?}: {have:?}");
        }
    }

    // The cluster's view names the owner and its log position, and lists the new owner
    // with its tenant (the node list is read from a bucket whose stream may still be
    // electing a leader after the NATS server's loss: asked again until it answers).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, v) = call(next.base(), "GET", "/api/v1/cluster", Some(ADMIN), None)
            .await
            .unwrap_or((0, Value::Null));
        let mine = v["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|x| x["id"] == next.id.as_str()))
            .cloned()
            .unwrap_or(Value::Null);
        // A node's entry is rewritten every third of a lease: it says what it owns shortly.
        if status == 200 && mine["tenants"] == json!(["default"]) {
            assert_eq!(v["tenants"][0]["owner"], next.id.as_str(), "{v}");
            assert!(v["tenants"][0]["log_position"].as_u64().unwrap_or(0) > 0, "{v}");
            assert!(mine["last_seen"].as_u64().unwrap_or(0) > 0, "{v}");
            assert_eq!(mine["url"], next.base(), "{v}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster's view does not list {}: {status} {v}",
            next.id
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// An owner frozen past its lease (SIGSTOP) and woken again (SIGCONT) finds another
/// node routing the tenant: it cannot append (fenced), acknowledges nothing more, and
/// steps down to standby; what the new owner acknowledged meanwhile stays.
#[actix_web::test]
async fn frozen_owner_is_fenced_and_steps_down() {
    let Some(nats) = NatsCluster::start().await else {
        return;
    };
    let nodes = [Node::start(&nats, "node-a"), Node::start(&nats, "node-b")];
    let all: Vec<&Node> = nodes.iter().collect();
    let first = wait_owner(&all, None, Duration::from_secs(30)).await;
    let old = nodes.iter().find(|n| n.id == first).expect("owner");
    let other = nodes.iter().find(|n| n.id != first).expect("other");
    let before = conversation(old.base(), "before", "before the freeze")
        .await
        .expect("acknowledged by the first owner");

    signal(old.pid(), libc::SIGSTOP);
    let next = wait_owner(&[other], Some(&first), Duration::from_secs(30)).await;
    assert_eq!(next, other.id);
    let during = conversation(other.base(), "during", "while the old owner is frozen")
        .await
        .expect("acknowledged by the new owner");

    signal(old.pid(), libc::SIGCONT);
    // Woken, the old owner acknowledges nothing itself: its lease lapsed, and its log
    // position is behind the new owner's takeover mark. (Once it has stepped down it
    // forwards to the new owner, whose acknowledgement names the new owner.)
    let body = json!({"entry_point": "demo-page", "customer": {"id": "stale", "name": "Carol"}, "text": "written to the old owner"});
    if let Some((status, _, by)) = answer(old.base(), "POST", "/api/v1/conversations", Some(ADMIN), Some(body)).await {
        assert!(
            status != 201 || by.as_deref() == Some(other.id.as_str()),
            "the fenced owner acknowledged a conversation ({status}, by {by:?})"
        );
    }
    // It steps down: a standby, which keeps no metrics of its own and names the new owner.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some((503, v)) = call(old.base(), "GET", "/metrics", None, None).await {
            if v["error"]["code"] == "not_owner" {
                assert!(v["error"]["message"].as_str().unwrap_or("").contains(&other.id), "{v}");
                break;
            }
        }
        assert!(Instant::now() < deadline, "the old owner did not step down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And forwards what it is asked to the new owner.
    assert_eq!(routing(&[old]).await, None);
    assert_eq!(
        texts(old.base(), &during).await,
        vec!["while the old owner is frozen".to_string()]
    );
    let log = old.process.log_lines().join("\n");
    assert!(
        log.contains("fenced") || log.contains("lease lost") || log.contains("stepped down"),
        "the old owner's log says nothing of stepping down:\n{log}"
    );
    // The new owner has both conversations, and the stale one nowhere.
    assert_eq!(
        texts(other.base(), &before).await,
        vec!["before the freeze".to_string()]
    );
    assert_eq!(
        texts(other.base(), &during).await,
        vec!["while the old owner is frozen".to_string()]
    );
    let (_, v) = call(other.base(), "GET", "/api/v1/cluster", Some(ADMIN), None)
        .await
        .expect("cluster");
    assert_eq!(v["tenants"][0]["owner"], other.id.as_str(), "{v}");
}

/// An operator stops the owner with SIGTERM (a deploy): it finishes, releases its lease,
/// and the standby routes the tenant at once, long before the (here 30 s) lease would have
/// lapsed, with what the old owner acknowledged.
#[actix_web::test]
async fn sigterm_hands_the_tenant_over_without_waiting_for_the_lease() {
    let Some(nats) = NatsCluster::start().await else {
        return;
    };
    let long = 30_000;
    let nodes = [
        Node::with_lease(&nats, "node-a", long),
        Node::with_lease(&nats, "node-b", long),
    ];
    let all: Vec<&Node> = nodes.iter().collect();
    let first = wait_owner(&all, None, Duration::from_secs(30)).await;
    let old = nodes.iter().find(|n| n.id == first).expect("owner");
    let other = nodes.iter().find(|n| n.id != first).expect("other");
    let id = conversation(old.base(), "handed-over", "before the deploy")
        .await
        .expect("acknowledged");
    let stopped = Instant::now();
    signal(old.pid(), libc::SIGTERM);
    let next = wait_owner(&[other], Some(&first), Duration::from_secs(20)).await;
    let took = stopped.elapsed();
    eprintln!("handed over {took:?} after SIGTERM");
    assert_eq!(next, other.id);
    assert!(
        took < Duration::from_millis(long),
        "the hand-over waited for the lease ({took:?})"
    );
    assert_eq!(texts(other.base(), &id).await, vec!["before the deploy".to_string()]);
}

/// A load balancer spreads clients over every node: an admin, a customer's channel and an
/// agent's desktop all talk to a node that does not route the tenant, which forwards them
/// to the owner. The desktop's offer comes through the forwarding node, and its accept goes
/// back through it. When the owner dies, the forwarded desktop is closed with 1012 and
/// resumes from `hello` on reconnecting (to the same node), with its conversation.
#[actix_web::test]
async fn any_node_serves_requests_and_desktops_by_forwarding_to_the_owner() {
    let Some(nats) = NatsCluster::start().await else {
        return;
    };
    let nodes = three_nodes(&nats, LEASE_MS, &[]);
    let all: Vec<&Node> = nodes.iter().collect();
    let first = wait_owner(&all, None, Duration::from_secs(30)).await;
    let owner = nodes.iter().find(|n| n.id == first).expect("owner");
    let standbys: Vec<&Node> = nodes.iter().filter(|n| n.id != first).collect();
    let (via, other) = (standbys[0], standbys[1]);

    // REST through a standby: what the owner answers, as it answers it.
    let token = agent_via(via, "ada", "Ada").await;
    let (status, from_owner) = call(owner.base(), "GET", "/api/v1/agents/ada", Some(ADMIN), None)
        .await
        .expect("owner");
    assert_eq!(status, 200);
    let (status, from_standby) = call(other.base(), "GET", "/api/v1/agents/ada", Some(ADMIN), None)
        .await
        .expect("forwarded");
    assert_eq!(status, 200);
    assert_eq!(from_owner, from_standby);
    // The owner's refusals come back as they are.
    let (status, v) = call(via.base(), "GET", "/api/v1/agents/nobody", Some(ADMIN), None)
        .await
        .expect("forwarded");
    assert_eq!(status, 404, "{v}");
    let (status, v) = call(via.base(), "GET", "/api/v1/queues", Some("wrong-token"), None)
        .await
        .expect("forwarded");
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{v}"
    );
    // One hop: a front server forwards to the tenant's own server, which never forwards;
    // a request that says it was forwarded already is served as any other.
    let client = awc::Client::default();
    let res = client
        .get(format!("{}/api/v1/queues", via.base()))
        .insert_header(("Authorization", format!("Bearer {ADMIN}")))
        .insert_header(("Switchboard-Forwarded-By", "node-x"))
        .send()
        .await
        .expect("answer");
    assert_eq!(res.status().as_u16(), 200);
    let node = res.headers().get("switchboard-node").and_then(|v| v.to_str().ok());
    assert_eq!(node, Some(owner.id.as_str()));

    // A desktop on the standby: a wrong token is refused as the owner refuses it, and the
    // agent's own token opens the socket there.
    let refused = client
        .ws(format!(
            "{}/api/v1/agents/me/ws?token=wrong",
            via.base().replace("http", "ws")
        ))
        .connect()
        .await;
    match refused {
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => assert_eq!(s.as_u16(), 401),
        Err(e) => panic!("a wrong token: {e}"),
        Ok(_) => panic!("a wrong token opened a desktop"),
    }
    let (mut desktop, hello) = common::connect_desktop(&client, via.base(), &token).await;
    assert_eq!(hello["agent"]["id"], "ada", "{hello}");
    let reply = desktop
        .command(json!({"type": "set_state", "state": "available"}))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");

    // A customer writes through the third node; the offer reaches the desktop through the
    // second, and the accept goes back through it.
    let cid = conversation(other.base(), "carol", "hello through any node")
        .await
        .expect("acknowledged");
    let offer = desktop.wait_for_in("offer", &cid).await;
    assert_eq!(offer["text"], "hello through any node", "{offer}");
    let reply = desktop.command(json!({"type": "accept", "conversation_id": cid})).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let reply = desktop
        .command(json!({"type": "send", "conversation_id": cid, "text": "hi Carol"}))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");

    // The owner dies: the forwarded socket closes with 1012 (reconnect), and the desktop
    // resumes from `hello` on the same node once another owner routes the tenant.
    signal(owner.pid(), libc::SIGKILL);
    let (reason, _) = desktop.until_closed(Duration::from_secs(10)).await;
    let reason = reason.expect("a close frame");
    assert_eq!(u16::from(reason.code), 1012, "{reason:?}");
    let survivors: Vec<&Node> = standbys.clone();
    wait_owner(&survivors, Some(&first), Duration::from_secs(30)).await;
    let (_, hello) = resume(&client, via, &token).await;
    let conversations = hello["agent"]["conversations"].as_array().cloned().unwrap_or_default();
    let mine = conversations
        .iter()
        .find(|c| c["id"] == cid.as_str())
        .unwrap_or_else(|| panic!("the accepted conversation is not in the resumed hello: {hello}"));
    let texts = common::texts(mine);
    assert!(texts.contains(&"hi Carol".to_string()), "{texts:?}");
}

/// The owner dies while a conversation is offered: the new owner keeps the offer with the
/// same agent and the same deadline (`expires_at` unchanged in the resumed `hello`), and
/// the offer moves to the other agent only when that original deadline passes; at no
/// moment do both agents hold it (checked from the desktops' own events, forwarded through
/// a standby).
#[actix_web::test]
async fn failover_keeps_each_offer_with_one_agent_until_its_original_deadline() {
    let Some(nats) = NatsCluster::start().await else {
        return;
    };
    // Long enough for a takeover to come well before the offer's deadline.
    let offer_ms = "8000";
    let env = [("SWITCHBOARD_ROUTING__OFFER_TIMEOUT_MS", offer_ms)];
    let nodes = three_nodes(&nats, LEASE_MS, &env);
    let all: Vec<&Node> = nodes.iter().collect();
    let first = wait_owner(&all, None, Duration::from_secs(30)).await;
    let owner = nodes.iter().find(|n| n.id == first).expect("owner");
    let standbys: Vec<&Node> = nodes.iter().filter(|n| n.id != first).collect();
    let via = standbys[0];

    let client = awc::Client::default();
    let mut tokens = Vec::new();
    let mut desktops = Vec::new();
    for (id, name) in [("ada", "Ada"), ("bob", "Bob")] {
        let token = agent_via(via, id, name).await;
        let (mut d, _) = common::connect_desktop(&client, via.base(), &token).await;
        let reply = d.command(json!({"type": "set_state", "state": "available"})).await;
        assert_eq!(reply["ok"], true, "{reply}");
        tokens.push(token);
        desktops.push(d);
    }

    let cid = conversation(via.base(), "carol", "offered across a failover")
        .await
        .expect("acknowledged");
    // Whichever agent gets the offer first: its deadline is the one to keep.
    let (first_agent, offer) = loop {
        let mut got = None;
        for (i, d) in desktops.iter_mut().enumerate() {
            if let Some(v) = d.within(Duration::from_millis(100)).await {
                if v["type"] == "offer" && v["conversation_id"] == cid.as_str() {
                    got = Some((i, v));
                    break;
                }
            }
        }
        if let Some(g) = got {
            break g;
        }
    };
    let other_agent = 1 - first_agent;
    let expires_at = offer["expires_at"].as_str().expect("expires_at").to_string();
    let deadline = chrono::DateTime::parse_from_rfc3339(&expires_at).expect("a time");

    // The owner dies with the offer pending.
    signal(owner.pid(), libc::SIGKILL);
    for d in &mut desktops {
        let (reason, _) = d.until_closed(Duration::from_secs(10)).await;
        assert_eq!(reason.map(|r| u16::from(r.code)), Some(1012));
    }
    wait_owner(&standbys, Some(&first), Duration::from_secs(30)).await;
    let (mut holder, hello) = resume(&client, via, &tokens[first_agent]).await;
    let resumed_at = chrono::Utc::now();
    let (mut waiting, other_hello) = resume(&client, via, &tokens[other_agent]).await;
    assert_eq!(
        other_hello["offers"],
        json!([]),
        "both agents hold the offer: {other_hello}"
    );
    if resumed_at < deadline {
        // The offer is still the first agent's, with its original deadline.
        let offers = hello["offers"].as_array().cloned().unwrap_or_default();
        assert_eq!(offers.len(), 1, "{hello}");
        assert_eq!(offers[0]["conversation_id"], cid.as_str(), "{hello}");
        assert_eq!(
            offers[0]["expires_at"],
            expires_at.as_str(),
            "the deadline moved: {hello}"
        );
    } else {
        eprintln!("the takeover came after the offer's deadline on this machine; checking the order only");
    }

    // At the original deadline the offer moves to the other agent, never earlier; the first
    // agent goes to RONA.
    let moved = waiting.wait_for_in("offer", &cid).await;
    let offered_at =
        chrono::DateTime::parse_from_rfc3339(moved["offered_at"].as_str().expect("offered_at")).expect("a time");
    assert!(
        offered_at >= deadline,
        "offered to the second agent at {offered_at} before the first offer's deadline {deadline}"
    );
    if resumed_at < deadline {
        let late = offered_at.signed_duration_since(deadline);
        assert!(
            late < chrono::Duration::seconds(3),
            "the deadline fired {late} after its time on the new owner"
        );
    }
    let rona = holder
        .wait_for_match("RONA", |v| v["type"] == "state_changed" && v["state"] == "rona")
        .await;
    assert_eq!(rona["state"], "rona", "{rona}");
}

/// An operator moves the tenant to a named node on purpose (maintenance of the owner's
/// machine): the request may reach any node; the owner answers 202, finishes, and the named
/// node routes the tenant at once, long before the (here 30 s) lease would lapse, with
/// what was acknowledged; a desktop forwarded through a third node resumes from `hello`.
/// Bad requests change nothing.
#[actix_web::test]
async fn an_operator_moves_the_tenant_to_a_named_node() {
    let Some(nats) = NatsCluster::start().await else {
        return;
    };
    let long = 30_000;
    let nodes = three_nodes(&nats, long, &[]);
    let all: Vec<&Node> = nodes.iter().collect();
    let first = wait_owner(&all, None, Duration::from_secs(30)).await;
    let standbys: Vec<&Node> = nodes.iter().filter(|n| n.id != first).collect();
    let (via, target) = (standbys[0], standbys[1]);
    let id = conversation(via.base(), "moved", "before the move")
        .await
        .expect("acknowledged");
    let token = agent_via(via, "ada", "Ada").await;
    let client = awc::Client::default();
    let (mut desktop, _) = common::connect_desktop(&client, via.base(), &token).await;

    // Refused, and nothing moves: the node list names every node within a third of a
    // lease of its start, so an unknown name is known to be unknown.
    let path = "/api/v1/tenants/default/move";
    for (token, body, want, code) in [
        (None, json!({"to": target.id}), 401, "unauthorized"),
        (Some(ADMIN), json!({"to": "node-x"}), 404, "unknown_node"),
        (Some(ADMIN), json!({"to": first}), 409, "already_owner"),
        (Some(ADMIN), json!({"where": "node-c"}), 400, "invalid_json"),
    ] {
        let (status, v) = call(via.base(), "POST", path, token, Some(body)).await.expect("answer");
        assert_eq!((status, v["error"]["code"].as_str()), (want, Some(code)), "{v}");
    }
    let (status, v) = call(
        via.base(),
        "POST",
        "/api/v1/tenants/other/move",
        Some(ADMIN),
        Some(json!({"to": target.id})),
    )
    .await
    .expect("answer");
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("unknown_tenant")),
        "{v}"
    );
    assert_eq!(routing(&all).await.as_deref(), Some(first.as_str()));

    // The move, asked of a standby (forwarded to the owner).
    let asked = Instant::now();
    let (status, v) = call(via.base(), "POST", path, Some(ADMIN), Some(json!({"to": target.id})))
        .await
        .expect("answer");
    assert_eq!(status, 202, "{v}");
    assert_eq!(v, json!({"tenant": "default", "from": first, "to": target.id}));
    let next = wait_owner(&all, Some(&first), Duration::from_secs(20)).await;
    let took = asked.elapsed();
    eprintln!("moved in {took:?}");
    assert_eq!(next, target.id, "the tenant went to another node than the one named");
    assert!(
        took < Duration::from_millis(long),
        "the move waited for the lease ({took:?})"
    );
    assert_eq!(texts(target.base(), &id).await, vec!["before the move".to_string()]);
    // The old owner is a standby now: it forwards to the new one (after at most a few
    // answers of 503 `not_owner` while it changes servers, which a client tries again).
    let old = nodes.iter().find(|n| n.id == first).expect("old owner");
    let body =
        json!({"entry_point": "demo-page", "customer": {"id": "after", "name": "Carol"}, "text": "after the move"});
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = call(
            old.base(),
            "POST",
            "/api/v1/conversations",
            Some(ADMIN),
            Some(body.clone()),
        )
        .await;
        match answer {
            Some((201, _)) => break,
            Some((503, ref v)) if v["error"]["code"] == "not_owner" => {}
            None => {}
            other => panic!("the old owner answered {other:?}"),
        }
        assert!(Instant::now() < deadline, "the old owner did not forward: {answer:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The desktop lost its owner and resumes on the same node.
    let (reason, _) = desktop.until_closed(Duration::from_secs(10)).await;
    assert!(reason.is_some(), "the desktop was not told to reconnect");
    let (_, hello) = resume(&client, via, &token).await;
    assert_eq!(hello["agent"]["id"], "ada", "{hello}");
}

/// A Messenger customer's conversation across a failover: the page's webhook and the
/// agent's REST calls reach a standby, which forwards them (the owner checks the webhook's
/// signature on the body as it came); five answers wait behind a failing Send API when
/// the owner is SIGKILLed; the new owner sends all five, once each, in order.
#[actix_web::test]
async fn messenger_answers_queued_at_a_failover_go_out_once_each_in_order() {
    use messenger_common::{deliver, messenger_env, page_event, text, PAGE_TOKEN, PSID};
    use switchboard::channels::messenger::fake_graph::{FakeGraph, Scripted};
    let Some(nats) = NatsCluster::start().await else {
        return;
    };
    let fake = FakeGraph::start().await.expect("fake graph");
    fake.fail_all(Scripted::Status(503, r#"{"error":{"message":"down","code":2}}"#.into()));
    let env = messenger_env(&fake.url());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let nodes = three_nodes(&nats, LEASE_MS, &env);
    let all: Vec<&Node> = nodes.iter().collect();
    let first = wait_owner(&all, None, Duration::from_secs(30)).await;
    let owner = nodes.iter().find(|n| n.id == first).expect("owner");
    let standbys: Vec<&Node> = nodes.iter().filter(|n| n.id != first).collect();
    let via = standbys[0];

    let token = agent_via(via, "a1", "Ann").await;
    let (status, v) = call(
        via.base(),
        "PUT",
        "/api/v1/agents/me/state",
        Some(&token),
        Some(json!({"state": "available"})),
    )
    .await
    .expect("forwarded");
    assert_eq!(status, 200, "{v}");
    let page = "200000000000002";
    let (status, v) = call(
        via.base(),
        "POST",
        "/api/v1/entry-points",
        Some(ADMIN),
        Some(
            json!({"id": "acme", "name": "Acme", "queue": "support", "page_id": page, "page_access_token": PAGE_TOKEN}),
        ),
    )
    .await
    .expect("forwarded");
    assert_eq!(status, 201, "{v}");
    let mut hello = text(PSID, "m-first", "hello");
    hello["recipient"]["id"] = json!(page);
    let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    deliver(&client, via.base(), &page_event(&[(page, vec![hello])])).await;
    let (_, agent) = call(via.base(), "GET", "/api/v1/agents/a1", Some(ADMIN), None)
        .await
        .expect("forwarded");
    let cid = agent["offers"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no offer: {agent}"))
        .to_string();
    let path = format!("/api/v1/conversations/{cid}");
    let (status, v) = call(via.base(), "POST", &format!("{path}/accept"), Some(&token), None)
        .await
        .expect("forwarded");
    assert_eq!(status, 200, "{v}");
    let answers: Vec<String> = (1..=5).map(|i| format!("answer {i}")).collect();
    for t in &answers {
        let (status, v) = call(
            via.base(),
            "POST",
            &format!("{path}/messages"),
            Some(&token),
            Some(json!({"text": t})),
        )
        .await
        .expect("forwarded");
        assert_eq!(status, 201, "{v}");
    }
    // The Send API is being tried, and failing, when the owner dies.
    fake.wait_until(common::WAIT, |r| r.iter().any(|r| r.answered == 503))
        .await;
    signal(owner.pid(), libc::SIGKILL);
    fake.recover_for_new_connections();
    wait_owner(&standbys, Some(&first), Duration::from_secs(30)).await;
    fake.wait_until(Duration::from_secs(30), |r| {
        r.iter().filter(|r| r.answered == 200 && r.method == "POST").count() >= answers.len()
    })
    .await;
    // Nothing more comes (a second copy would follow within the backoff of 20 ms at most).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent: Vec<String> = fake
        .accepted_sends()
        .iter()
        .filter_map(|r| r.body["message"]["text"].as_str().map(String::from))
        .collect();
    assert_eq!(sent, answers, "once each, in order");
}

/// The operator's token of the multi-tenant test.
const OPERATOR: &str = "op-7f3a9c1e5b2d8f4a6c0e9b7d3f1a5c8e";

/// The node routing tenant `tenant` now, as `GET /api/v1/cluster` on `via` shows it.
async fn owner_of(via: &Node, tenant: &str) -> Option<String> {
    let (status, v) = call(via.base(), "GET", "/api/v1/cluster", Some(OPERATOR), None).await?;
    if status != 200 {
        return None;
    }
    v["tenants"]
        .as_array()?
        .iter()
        .find(|t| t["id"] == tenant)
        .and_then(|t| t["owner"].as_str())
        .map(String::from)
}

/// Waits (up to `within`) until a node other than `not` routes `tenant` and answers its
/// admin's reads through `via`: that node.
async fn wait_tenant(via: &Node, tenant: &str, admin: &str, not: Option<&str>, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some(owner) = owner_of(via, tenant).await.filter(|o| Some(o.as_str()) != not) {
            if let Some((200, _, Some(by))) = answer(via.base(), "GET", "/api/v1/queues", Some(admin), None).await {
                if by == owner {
                    return owner;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "tenant {tenant} was not routed (other than by {not:?}) within {within:?}: {}",
            via.process.log_lines().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A tenant's floor through `via`: queue `q1`, entry point `web`, agent `a1`; its token.
async fn tenant_floor(via: &Node, admin: &str, name: &str) -> String {
    for (path, body) in [
        ("/api/v1/queues", json!({"id": "q1", "name": "Queue One"})),
        (
            "/api/v1/entry-points",
            json!({"id": "web", "name": "Web", "queue": "q1"}),
        ),
    ] {
        let (status, v) = call(via.base(), "POST", path, Some(admin), Some(body))
            .await
            .expect("answer");
        assert_eq!(status, 201, "{path}: {v}");
    }
    let (status, a) = call(
        via.base(),
        "POST",
        "/api/v1/agents",
        Some(admin),
        Some(json!({"id": "a1", "name": name, "queues": ["q1"]})),
    )
    .await
    .expect("answer");
    assert_eq!(status, 201, "{a}");
    a["token"].as_str().expect("token").to_string()
}

/// An operator creates two tenants beside `default` through one node: the three spread
/// over the three nodes (one each), every node serves every tenant's admin, desktop and
/// customers, and no tenant sees another's. The owner of one tenant is SIGKILLed: another
/// node takes that tenant within 5 s of its lease's end with its conversation, its agent's
/// desktop resumes through a surviving node, and the other tenants' owners never change.
/// A Messenger batch for the other tenant's page, posted to a node that does not route it,
/// lands in that tenant (so its delete is refused while the conversation is open). Then
/// the operator moves the first tenant to a named node, changes its limits (in force on
/// its owner), and deletes a third, empty one (its tokens stop working; it leaves the
/// cluster's list).
#[actix_web::test]
async fn tenants_spread_over_the_nodes_and_each_survives_its_owner() {
    use messenger_common::{deliver, messenger_env, page_event, text, PAGE_TOKEN, PSID};
    let Some(nats) = NatsCluster::start().await else { return };
    let fake = switchboard::channels::messenger::fake_graph::FakeGraph::start()
        .await
        .expect("fake graph");
    let mut env = messenger_env(&fake.url());
    env.push(("SWITCHBOARD_API__OPERATOR_TOKEN".into(), OPERATOR.into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let nodes = three_nodes(&nats, LEASE_MS, &env);
    let all: Vec<&Node> = nodes.iter().collect();
    let default_owner = wait_owner(&all, None, Duration::from_secs(30)).await;
    let by_id = |id: &str| nodes.iter().find(|n| n.id == id).expect("node");
    // Every node reads the others' heartbeats (what each owns) a few times a lease.
    tokio::time::sleep(Duration::from_millis(LEASE_MS / 2)).await;

    // Two tenants, created through one node; each is taken by the least busy node.
    let mut admins = Vec::new();
    let mut owners = vec![("default".to_string(), default_owner.clone())];
    for (i, id) in ["acme", "globex"].into_iter().enumerate() {
        let via = &nodes[i];
        let (status, t) = call(
            via.base(),
            "POST",
            "/api/v1/tenants",
            Some(OPERATOR),
            Some(json!({"id": id, "name": id})),
        )
        .await
        .expect("answer");
        assert_eq!(status, 201, "{t}");
        let admin = t["admin_token"].as_str().expect("admin token").to_string();
        assert!(
            admin.starts_with(&format!("{id}.")),
            "a tenant's token names it: {admin}"
        );
        let owner = wait_tenant(&nodes[2], id, &admin, None, Duration::from_secs(20)).await;
        owners.push((id.to_string(), owner));
        admins.push(admin);
        // Let every node's next heartbeat say what it owns now.
        tokio::time::sleep(Duration::from_millis(LEASE_MS)).await;
    }
    let mut distinct: Vec<&str> = owners.iter().map(|(_, o)| o.as_str()).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "one tenant per node: {owners:?}");
    let (acme, globex) = (admins[0].clone(), admins[1].clone());
    let acme_owner = owners[1].1.clone();
    let survivors: Vec<&Node> = nodes.iter().filter(|n| n.id != acme_owner).collect();

    // Each tenant's floor, set up through a node that does not route it.
    let other_than = |owner: &str| nodes.iter().find(|n| n.id != owner).expect("node");
    let ada = tenant_floor(other_than(&acme_owner), &acme, "Ada of Acme").await;
    assert!(ada.starts_with("acme."), "{ada}");
    let gil = tenant_floor(other_than(&owners[2].1), &globex, "Gil of Globex").await;
    // Globex's Facebook Page: Meta posts its events to a node that does not route globex.
    let page = "300000000000003";
    let (status, v) = call(
        nodes[0].base(),
        "POST",
        "/api/v1/entry-points",
        Some(&globex),
        Some(json!({"id": "fb", "name": "Facebook", "queue": "q1", "page_id": page, "page_access_token": PAGE_TOKEN})),
    )
    .await
    .expect("answer");
    assert_eq!(status, 201, "{v}");
    // A page belongs to one tenant across the cluster: acme's owner (another node) refuses it.
    let (status, v) = call(
        nodes[2].base(),
        "POST",
        "/api/v1/entry-points",
        Some(&acme),
        Some(json!({"id": "fb", "name": "Facebook", "queue": "q1", "page_id": page, "page_access_token": PAGE_TOKEN})),
    )
    .await
    .expect("answer");
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("page_in_use")), "{v}");
    let mut hello = text(PSID, "m-globex-1", "Hello Globex");
    hello["recipient"]["id"] = json!(page);
    let webhook_client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    deliver(
        &webhook_client,
        other_than(&owners[2].1).base(),
        &page_event(&[(page, vec![hello])]),
    )
    .await;
    let (status, q) = call(nodes[1].base(), "GET", "/api/v1/queues/q1", Some(&globex), None)
        .await
        .expect("answer");
    assert_eq!((status, q["waiting"].as_u64()), (200, Some(1)), "{q}");
    for other in [ADMIN, acme.as_str()] {
        let (_, q) = call(nodes[1].base(), "GET", "/api/v1/queues/q1", Some(other), None)
            .await
            .expect("answer");
        assert_ne!(
            q["waiting"].as_u64(),
            Some(1),
            "the page's message went to one tenant only: {q}"
        );
    }
    // Isolation: a tenant's objects are nobody else's, through any node.
    for n in &nodes {
        let (status, v) = call(n.base(), "GET", "/api/v1/agents/a1", Some(ADMIN), None)
            .await
            .expect("answer");
        assert_eq!(status, 404, "default's admin sees no tenant's agent: {v}");
        let (status, v) = call(n.base(), "GET", "/api/v1/agents/a1", Some(&acme), None)
            .await
            .expect("answer");
        assert_eq!((status, v["name"].as_str()), (200, Some("Ada of Acme")), "{v}");
        let (status, v) = call(n.base(), "GET", "/api/v1/agents/a1", Some(&globex), None)
            .await
            .expect("answer");
        assert_eq!((status, v["name"].as_str()), (200, Some("Gil of Globex")), "{v}");
    }

    // Acme's agent on a desktop through a survivor; a customer writes through the third
    // node; the offer comes to the desktop and is accepted there.
    let client = awc::Client::default();
    let desk_node = survivors[0];
    let (mut desk, hello) = resume(&client, desk_node, &ada).await;
    assert!(hello["agent"].is_object(), "{hello}");
    let (status, _) = call(
        desk_node.base(),
        "PUT",
        "/api/v1/agents/me/state",
        Some(&ada),
        Some(json!({"state": "available"})),
    )
    .await
    .expect("answer");
    assert_eq!(status, 200);
    let body = json!({"entry_point": "web", "customer": {"id": "cust-1", "name": "Carol"}, "text": "Hello Acme"});
    let (status, conv) = call(
        survivors[1].base(),
        "POST",
        "/api/v1/conversations",
        Some(&acme),
        Some(body),
    )
    .await
    .expect("answer");
    assert_eq!(status, 201, "{conv}");
    let cid = conv["id"].as_str().expect("id").to_string();
    desk.wait_for_in("offer", &cid).await;
    let accepted = desk.command(json!({"type": "accept", "conversation_id": cid})).await;
    assert_eq!(accepted["ok"], true, "{accepted}");
    let sent = desk
        .command(json!({"type": "send", "conversation_id": cid, "text": "Hi Carol"}))
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    // A file Ada sends is kept in the cluster: whichever node routes acme next serves it.
    let png = b"\x89PNG\r\n\x1a\n the plan of Acme".to_vec();
    let boundary = "----switchboard-cluster-boundary";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"plan.png\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(&png);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut res = client
        .post(format!(
            "{}/api/v1/conversations/{cid}/attachments",
            survivors[1].base()
        ))
        .insert_header(("Authorization", format!("Bearer {ada}")))
        .insert_header(("Content-Type", format!("multipart/form-data; boundary={boundary}")))
        .send_body(form)
        .await
        .expect("upload");
    let m: Value = res.json().await.expect("json");
    assert_eq!(res.status().as_u16(), 201, "{m}");
    let file_url = m["attachments"][0]["url"].as_str().expect("url").to_string();
    assert!(
        file_url.starts_with("/files/acme."),
        "a tenant's file names it: {file_url}"
    );

    // SIGKILL acme's owner: another node takes acme; default and globex stay where they are.
    let killed = Instant::now();
    signal(by_id(&acme_owner).pid(), libc::SIGKILL);
    let new_owner = wait_tenant(survivors[0], "acme", &acme, Some(&acme_owner), Duration::from_secs(20)).await;
    let took = killed.elapsed();
    eprintln!("acme moved from {acme_owner} to {new_owner} {took:?} after the kill");
    assert!(
        took <= Duration::from_millis(LEASE_MS) + TAKEOVER_BOUND,
        "acme was taken {took:?} after the kill"
    );
    for (tenant, owner) in &owners {
        if tenant != "acme" {
            assert_eq!(
                owner_of(survivors[0], tenant).await.as_deref(),
                Some(owner.as_str()),
                "{tenant}"
            );
        }
    }
    let (status, v) = call(
        survivors[1].base(),
        "GET",
        &format!("/api/v1/conversations/{cid}"),
        Some(&acme),
        None,
    )
    .await
    .expect("answer");
    assert_eq!(status, 200, "{v}");
    let said = common::texts(&v);
    assert_eq!(&said[..2], ["Hello Acme", "Hi Carol"], "{v}");
    // The file, which the new owner never held, fetched from the cluster through a front.
    let mut res = client
        .get(format!("{}{file_url}", survivors[0].base()))
        .send()
        .await
        .expect("file");
    assert_eq!(res.status().as_u16(), 200, "{file_url}");
    assert_eq!(res.body().await.expect("bytes").as_ref(), png.as_slice());
    // The desktop was closed with the owner; it resumes through a survivor with the chat.
    let (_desk, hello) = resume(&client, survivors[1], &ada).await;
    assert!(
        hello.to_string().contains(&cid),
        "the resumed hello holds the chat: {hello}"
    );
    // Globex still answers its agent's desktop.
    let (_gdesk, ghello) = resume(&client, survivors[0], &gil).await;
    assert!(ghello["agent"].is_object(), "{ghello}");

    // Moved on purpose to the other survivor.
    let to = survivors.iter().find(|n| n.id != new_owner).expect("another survivor");
    let (status, v) = call(
        survivors[0].base(),
        "POST",
        "/api/v1/tenants/acme/move",
        Some(&acme),
        Some(json!({"to": to.id})),
    )
    .await
    .expect("answer");
    assert_eq!(status, 202, "{v}");
    assert_eq!(
        wait_tenant(survivors[1], "acme", &acme, Some(&new_owner), Duration::from_secs(20)).await,
        to.id
    );

    // Limits changed through one node are in force on the owner.
    let (status, v) = call(
        survivors[0].base(),
        "PATCH",
        "/api/v1/tenants/acme",
        Some(OPERATOR),
        Some(json!({"limits": {"max_agents": 1}})),
    )
    .await
    .expect("answer");
    assert_eq!(status, 200, "{v}");
    // One agent is there already: a new one is refused once the owner has the limit (one
    // created before it arrived stays, and the next is refused all the same).
    let mut refused = None;
    for i in 2..50 {
        let (status, v) = call(
            survivors[1].base(),
            "POST",
            "/api/v1/agents",
            Some(&acme),
            Some(json!({"id": format!("a{i}"), "name": "Another", "queues": ["q1"]})),
        )
        .await
        .expect("answer");
        if status == 409 {
            refused = Some(v);
            break;
        }
        assert_eq!(status, 201, "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let refused = refused.expect("the limit was never put in force");
    assert_eq!(refused["error"]["code"], "tenant_limit", "{refused}");

    // Globex holds the customer's conversation: it is not deleted.
    let (status, v) = call(
        survivors[0].base(),
        "DELETE",
        "/api/v1/tenants/globex",
        Some(OPERATOR),
        None,
    )
    .await
    .expect("answer");
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("tenant_not_empty")),
        "{v}"
    );
    // A third tenant, empty, is deleted: its tokens stop working everywhere.
    let (status, t) = call(
        survivors[1].base(),
        "POST",
        "/api/v1/tenants",
        Some(OPERATOR),
        Some(json!({"id": "initech", "name": "Initech"})),
    )
    .await
    .expect("answer");
    assert_eq!(status, 201, "{t}");
    let initech = t["admin_token"].as_str().expect("admin token").to_string();
    wait_tenant(survivors[0], "initech", &initech, None, Duration::from_secs(20)).await;
    let (status, v) = call(
        survivors[0].base(),
        "DELETE",
        "/api/v1/tenants/initech",
        Some(OPERATOR),
        None,
    )
    .await
    .expect("answer");
    assert_eq!(status, 204, "{v}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let gone = owner_of(survivors[1], "initech").await.is_none();
        let (status, _) = call(survivors[1].base(), "GET", "/api/v1/queues", Some(&initech), None)
            .await
            .expect("answer");
        if gone && status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "initech still answers: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, list) = call(survivors[1].base(), "GET", "/api/v1/tenants", Some(OPERATOR), None)
        .await
        .expect("answer");
    assert_eq!(status, 200);
    let ids: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(ids, ["default", "acme", "globex"], "{list}");
}
