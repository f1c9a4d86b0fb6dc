use super::*;

/// A graph with services named `names`, and handles to them.
fn graph_with(names: &[&str]) -> (Arc<Mutex<DependencyGraph>>, Vec<ServiceHandle>) {
    let graph = Arc::new(Mutex::new(DependencyGraph::new()));
    let handles = names
        .iter()
        .map(|name| {
            let (_tx, rx) = watch::channel(false);
            let id = graph.lock().add_node(name.to_string(), rx.clone());
            ServiceHandle::new(id, name.to_string(), rx, &graph)
        })
        .collect();
    (graph, handles)
}

fn order_names(graph: &Arc<Mutex<DependencyGraph>>) -> Vec<String> {
    let graph = graph.lock();
    graph
        .topological_order()
        .into_iter()
        .map(|id| graph.name(id).to_string())
        .collect()
}

#[test]
fn handle_basics() {
    let (_graph, handles) = graph_with(&["db"]);
    let db = &handles[0];
    assert_eq!(db.name(), "db");
    assert!(!*db.ready_watch().borrow());
    assert!(db.dependencies().is_empty());
}

#[test]
fn order_without_dependencies_is_insertion_order() {
    let (graph, _handles) = graph_with(&["a", "b", "c"]);
    assert_eq!(order_names(&graph), ["a", "b", "c"]);
}

#[test]
fn dependencies_come_first() {
    let (graph, h) = graph_with(&["frontend", "api", "auth", "cache", "db"]);
    let (frontend, api, auth, cache, db) = (&h[0], &h[1], &h[2], &h[3], &h[4]);
    frontend.add_dependency(api);
    api.add_dependencies([auth, cache, db]);
    auth.add_dependency(db.clone());
    // Duplicates are harmless.
    api.add_dependency(db);

    let deps: Vec<String> = api.dependencies().into_iter().map(|d| d.name).collect();
    assert_eq!(deps, ["auth", "cache", "db"]);

    let order = order_names(&graph);
    let pos = |name: &str| order.iter().position(|n| n == name).unwrap();
    assert!(pos("db") < pos("auth"));
    assert!(pos("auth") < pos("api"));
    assert!(pos("cache") < pos("api"));
    assert!(pos("api") < pos("frontend"));
    assert_eq!(order.len(), 5);
    // Among services free to start, the one added first goes first.
    assert_eq!(order, ["cache", "db", "auth", "api", "frontend"]);
}

#[test]
fn cycles_are_refused() {
    let (graph, h) = graph_with(&["a", "b", "c"]);
    let (a, b, c) = (&h[0], &h[1], &h[2]);

    let err = a.try_add_dependency(a).unwrap_err();
    assert_eq!(err.etype(), &ErrorType::InternalError);
    assert!(err.to_string().contains("cycle a -> a"), "{err}");

    a.try_add_dependency(b).unwrap();
    b.try_add_dependency(c).unwrap();
    let err = c.try_add_dependency(a).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cycle c -> a -> b -> c"), "{text}");

    // The logging variant refuses as well, without panicking.
    c.add_dependency(a);
    c.add_dependencies([b]);
    assert!(c.dependencies().is_empty());
    assert_eq!(order_names(&graph), ["c", "b", "a"]);
}

#[test]
fn handles_of_other_servers_are_refused() {
    let (_g1, h1) = graph_with(&["a"]);
    let (_g2, h2) = graph_with(&["b"]);
    let err = h1[0].try_add_dependency(&h2[0]).unwrap_err();
    assert!(err.to_string().contains("different servers"), "{err}");
    assert!(h1[0].dependencies().is_empty());
}

#[test]
fn handle_outliving_its_server() {
    let (graph, h) = graph_with(&["a", "b"]);
    drop(graph);
    let err = h[0].try_add_dependency(&h[1]).unwrap_err();
    assert!(err.to_string().contains("server is gone"), "{err}");
    assert!(h[0].dependencies().is_empty());
}

#[test]
fn notifier_signals_on_notify_and_on_drop() {
    let (tx, rx) = watch::channel(false);
    ServiceReadyNotifier::new(tx).notify_ready();
    assert!(*rx.borrow());

    let (tx, rx) = watch::channel(false);
    let notifier = ServiceReadyNotifier::new(tx);
    assert!(!*rx.borrow());
    drop(notifier);
    assert!(*rx.borrow());

    // Without receivers, notifying is still fine.
    let (tx, _) = watch::channel(false);
    ServiceReadyNotifier::new(tx).notify_ready();
}

struct Plain;

#[async_trait]
impl Service for Plain {
    fn name(&self) -> &str {
        "plain"
    }
    fn threads(&self) -> Option<usize> {
        Some(3)
    }
}

#[tokio::test]
async fn plain_services_are_ready_when_they_start() {
    let mut service: Box<dyn Service> = Box::new(Plain);
    assert_eq!(ServiceWithDependents::name(&*service), "plain");
    assert_eq!(ServiceWithDependents::threads(&*service), Some(3));
    service.on_startup_delay(Duration::from_millis(5));

    let (tx, rx) = watch::channel(false);
    let (_shutdown_tx, shutdown) = watch::channel(false);
    ServiceWithDependents::start_service(
        &mut *service,
        None,
        shutdown,
        1,
        ServiceReadyNotifier::new(tx),
    )
    .await;
    assert!(*rx.borrow());
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<ServiceHandle>();
    check::<ServiceReadyNotifier>();
    check::<Box<dyn ServiceWithDependents>>();
    check::<Box<dyn Service>>();
    check::<listening::Service<()>>();
}
