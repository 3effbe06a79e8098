//! Property tests for the aggregates: random command sequences against a reference model.
//! After every step the aggregate accepts exactly what the model accepts, a refused command
//! emits nothing and changes nothing, the version counts the events, every event survives a
//! round trip through its stored form, and replaying the events from scratch gives the same
//! state as applying them as they came.
//!
//! Seeded: the seed is printed; `MCPD_PROPTEST_SEED=<seed>` replays a run, and
//! `MCPD_PROPTEST_CASES` runs more cases (the default is the test command's short run).
#![forbid(unsafe_code)]

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use domain::ResourceName;
use domain::secret::{KeyUse, NewSecretData, Secret, SecretCommand, SecretError, SecretEvent};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

fn config(test: &str) -> Config {
    let seed = std::env::var("MCPD_PROPTEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand_seed);
    let cases = std::env::var("MCPD_PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256);
    eprintln!("{test}: proptest seed {seed}, {cases} cases (replay with MCPD_PROPTEST_SEED={seed})");
    Config { cases, rng_seed: RngSeed::Fixed(seed), failure_persistence: None, ..Config::default() }
}

fn rand_seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7)
}

fn n(s: &str) -> ResourceName {
    ResourceName::parse(s).unwrap()
}

const KEYS: [&str; 3] = ["A", "B", "C"];
const BACKENDS: [&str; 2] = ["default", "bao"];

/// One step of a client's life with a secret; indexes pick keys and backends.
#[derive(Debug, Clone)]
enum Op {
    Create {
        backend_exists: bool,
        backend: usize,
        keys: Vec<usize>,
    },
    Update {
        expected: Option<i64>,
        backend: Option<usize>,
        keys: Option<Vec<usize>>,
        description: u8,
        uses: Vec<usize>,
    },
    Migrate {
        to: usize,
        from_current: bool,
        copied_offset: u8,
        pinned: bool,
    },
    Cleanup {
        ok: bool,
    },
    Delete {
        expected: Option<i64>,
        in_use: bool,
    },
}

fn keys() -> impl Strategy<Value = Vec<usize>> {
    proptest::sample::subsequence(vec![0usize, 1, 2], 1..=3)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<bool>(), 0..2usize, keys()).prop_map(|(backend_exists, backend, keys)| Op::Create {
            backend_exists,
            backend,
            keys
        }),
        (
            proptest::option::of(-1i64..=1),
            proptest::option::of(0..2usize),
            proptest::option::of(keys()),
            0..2u8,
            proptest::sample::subsequence(vec![0usize, 1, 2], 0..=2)
        )
            .prop_map(|(expected, backend, keys, description, uses)| Op::Update {
                expected,
                backend,
                keys,
                description,
                uses
            }),
        (0..2usize, any::<bool>(), 0..2u8, proptest::bool::weighted(0.1)).prop_map(
            |(to, from_current, copied_offset, pinned)| Op::Migrate { to, from_current, copied_offset, pinned }
        ),
        any::<bool>().prop_map(|ok| Op::Cleanup { ok }),
        (proptest::option::of(-1i64..=1), proptest::bool::weighted(0.2))
            .prop_map(|(expected, in_use)| Op::Delete { expected, in_use }),
    ]
}

/// What the model says a secret is.
#[derive(Debug, Clone, Default)]
struct Model {
    version: u64,
    live: Option<Live>,
}

#[derive(Debug, Clone)]
struct Live {
    backend: String,
    keys: Vec<String>,
    data_version: u64,
    description: String,
}

/// The command for `op` given the model's state, and the model's verdict: `Ok(emits)` (whether
/// an event results) or `Err(the refusal)`.
fn command(model: &Model, op: &Op, step: usize) -> (SecretCommand, Result<bool, &'static str>) {
    let name = n("s");
    let expected = |offset: &Option<i64>| offset.map(|o| (model.version as i64 + o).max(0) as u64);
    let stale = |e: Option<u64>| e.is_some_and(|e| e != model.version);
    let key_names = |ks: &[usize]| ks.iter().map(|k| KEYS[*k].to_owned()).collect::<Vec<_>>();
    match op {
        Op::Create { backend_exists, backend, keys } => {
            let data = NewSecretData {
                keys: key_names(keys),
                changed_keys: key_names(keys),
                value_ref: format!("r{step}"),
                external_ref: None,
                backend: n(BACKENDS[*backend]),
            };
            let verdict = if model.live.is_some() {
                Err("AlreadyExists")
            } else if !backend_exists {
                Err("BackendNotFound")
            } else {
                Ok(true)
            };
            let command = SecretCommand::CreateSecret {
                name,
                backend: n(BACKENDS[*backend]),
                backend_exists: *backend_exists,
                description: String::new(),
                data,
            };
            (command, verdict)
        }
        Op::Update { expected: offset, backend, keys, description, uses } => {
            let expected_version = expected(offset);
            let live_backend = model.live.as_ref().map_or("default", |l| l.backend.as_str());
            let data = keys.as_ref().map(|ks| NewSecretData {
                keys: key_names(ks),
                changed_keys: key_names(ks),
                value_ref: format!("r{step}"),
                external_ref: None,
                backend: n(live_backend),
            });
            let description = format!("d{description}");
            let key_uses: Vec<KeyUse> =
                uses.iter().map(|k| KeyUse { user: "llm \"x\"".into(), key: KEYS[*k].to_owned() }).collect();
            let verdict = match &model.live {
                None => Err("NotFound"),
                Some(_) if stale(expected_version) => Err("StaleVersion"),
                Some(live) if backend.is_some_and(|b| BACKENDS[b] != live.backend) => Err("BackendChanged"),
                Some(_) if keys.as_ref().is_some_and(|ks| key_uses.iter().any(|u| !key_names(ks).contains(&u.key))) => {
                    Err("KeyInUse")
                }
                Some(live) => Ok(keys.is_some() || description != live.description),
            };
            let command = SecretCommand::UpdateSecret {
                name,
                backend: backend.map(|b| n(BACKENDS[b])),
                description,
                data,
                key_uses,
                expected_version,
            };
            (command, verdict)
        }
        Op::Migrate { to, from_current, copied_offset, pinned } => {
            let live_backend = model.live.as_ref().map_or("default", |l| l.backend.as_str());
            let from = if *from_current {
                live_backend
            } else if live_backend == "default" {
                "bao"
            } else {
                "default"
            };
            let data_version = model.live.as_ref().map_or(0, |l| l.data_version);
            let copied = data_version + u64::from(*copied_offset);
            let verdict = match &model.live {
                None => Err("NotFound"),
                Some(_) if *pinned => Err("Pinned"),
                Some(_) if !from_current => Err("NotOnBackend"),
                Some(_) if *copied_offset != 0 => Err("DataChanged"),
                Some(_) => Ok(true),
            };
            let command = SecretCommand::MigrateSecret {
                name,
                from: n(from),
                to: n(BACKENDS[*to]),
                copied_data_version: copied,
                value_ref: format!("m{step}"),
                external_ref: None,
                run: "run-1".into(),
                pinned_by: if *pinned { vec!["bao".into()] } else { vec![] },
            };
            (command, verdict)
        }
        Op::Cleanup { ok } => {
            let outcome = if *ok { Ok(()) } else { Err("denied".to_owned()) };
            let command =
                SecretCommand::RecordSourceCleanup { name, backend: n("default"), outcome, run: "run-1".into() };
            (command, if model.live.is_some() { Ok(true) } else { Err("NotFound") })
        }
        Op::Delete { expected: offset, in_use } => {
            let expected_version = expected(offset);
            let verdict = match &model.live {
                None => Err("NotFound"),
                Some(_) if stale(expected_version) => Err("StaleVersion"),
                Some(_) if *in_use => Err("InUse"),
                Some(_) => Ok(true),
            };
            let users = if *in_use { vec!["llm \"x\"".into()] } else { vec![] };
            (SecretCommand::DeleteSecret { name, users, expected_version }, verdict)
        }
    }
}

/// The model after `event`.
fn advance(model: &mut Model, event: &SecretEvent) {
    model.version += 1;
    match event {
        SecretEvent::SecretCreated { backend, description, keys, data_version, .. } => {
            model.live = Some(Live {
                backend: backend.as_str().to_owned(),
                keys: keys.clone(),
                data_version: *data_version,
                description: description.clone(),
            });
        }
        SecretEvent::SecretUpdated { description, keys, data_version, .. } => {
            let live = model.live.as_mut().expect("updated while live");
            live.description = description.clone();
            live.keys = keys.clone();
            live.data_version = *data_version;
        }
        SecretEvent::SecretMigrated { to, .. } => {
            model.live.as_mut().expect("migrated while live").backend = to.as_str().to_owned()
        }
        SecretEvent::SecretDeleted {} => model.live = None,
        SecretEvent::SecretSourceDeleted { .. } | SecretEvent::SecretSourceDeleteFailed { .. } => {}
    }
}

fn variant(error: &SecretError) -> &'static str {
    match error {
        SecretError::AlreadyExists(_) => "AlreadyExists",
        SecretError::NotFound(_) => "NotFound",
        SecretError::StaleVersion { .. } => "StaleVersion",
        SecretError::BackendNotFound(_) => "BackendNotFound",
        SecretError::BackendChanged { .. } => "BackendChanged",
        SecretError::InUse { .. } => "InUse",
        SecretError::KeyInUse { .. } => "KeyInUse",
        SecretError::NotOnBackend { .. } => "NotOnBackend",
        SecretError::Pinned { .. } => "Pinned",
        SecretError::DataChanged { .. } => "DataChanged",
    }
}

fn state(secret: &Secret) -> serde_json::Value {
    serde_json::to_value(secret).expect("the aggregate serialises (snapshots)")
}

#[test]
fn the_secret_aggregate_agrees_with_its_model_and_replays_to_the_same_state() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut runner = TestRunner::new(config("secret aggregate"));
    runner
        .run(&proptest::collection::vec(op(), 1..40), |ops| {
            let (mut secret, mut model, mut log) = (Secret::default(), Model::default(), Vec::<SecretEvent>::new());
            for (step, op) in ops.iter().enumerate() {
                let (command, verdict) = command(&model, op, step);
                let before = state(&secret);
                let sink = EventSink::default();
                let handled = runtime.block_on(secret.handle(command, &(), &sink));
                let events = runtime.block_on(sink.collect());
                match (&verdict, &handled) {
                    (Ok(emits), Ok(())) => {
                        prop_assert_eq!(events.len(), usize::from(*emits), "step {}: {:?}", step, op)
                    }
                    (Err(expected), Err(error)) => {
                        prop_assert_eq!(*expected, variant(error), "step {}: {:?}", step, op);
                        prop_assert!(events.is_empty(), "a refused command emitted {:?}", events);
                        prop_assert_eq!(&state(&secret), &before, "a refused command changed the state");
                    }
                    _ => prop_assert!(
                        false,
                        "step {step}: {op:?}: the model said {verdict:?}, the aggregate {handled:?}"
                    ),
                }
                for event in events {
                    // The stored form: what the event log keeps and reads back.
                    let stored = serde_json::to_value(&event).unwrap();
                    let read: SecretEvent = serde_json::from_value(stored).unwrap();
                    prop_assert_eq!(read.event_type(), event.event_type());
                    prop_assert_eq!(serde_json::to_value(&read).unwrap(), serde_json::to_value(&event).unwrap());
                    advance(&mut model, &event);
                    log.push(read);
                }
                prop_assert_eq!(state(&secret)["version"].as_u64(), Some(log.len() as u64));
                prop_assert_eq!(model.version, log.len() as u64);
                let mut replayed = Secret::default();
                for event in log.iter().cloned() {
                    replayed.apply(event);
                }
                prop_assert_eq!(state(&replayed), state(&secret), "replaying the log gives another state");
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// JSON shaped like stored event payloads, and anything else.
fn payload() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![Just("openai"), Just("anthropic"), Just("fast"), Just("heavy"), Just("m")].prop_map(Value::from),
        "\\PC{0,10}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        let key = prop_oneof![
            Just("LlmCreated"),
            Just("LlmUpdated"),
            Just("spec"),
            Just("type"),
            Just("model"),
            Just("tier"),
            Just("extra"),
            Just("url"),
            Just("apiKeyRef"),
            Just("name"),
            Just("key"),
            Just("description"),
        ]
        .prop_map(str::to_owned);
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map(key, inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Fuzzed: any stored payload, of any event type and version, is upcast and then decoded or
/// refused; never a panic. An upcast payload is current, and upcasting it again changes nothing.
#[test]
fn any_stored_payload_is_upcast_and_decoded_or_refused() {
    let types =
        prop_oneof![Just("LlmCreated"), Just("LlmUpdated"), Just("LlmDeleted"), Just("SecretCreated"), Just("Other")];
    let versions = prop_oneof![Just("1"), Just("2"), Just("3"), Just("")];
    let mut runner = TestRunner::new(config("event upcasting"));
    runner
        .run(&(types, versions, payload()), |(event_type, version, payload)| {
            let (now, upcast) = domain::upcast::upcast(event_type, version, payload);
            prop_assert!(domain::upcast::is_current(event_type, &now), "{} {} is not current", event_type, now);
            let (again, twice) = domain::upcast::upcast(event_type, &now, upcast.clone());
            prop_assert_eq!((&again, &twice), (&now, &upcast));
            let _ = serde_json::from_value::<domain::llm::LlmEvent>(upcast.clone());
            let _ = serde_json::from_value::<SecretEvent>(upcast);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// What holds for every aggregate, whatever the commands: a refused command emits nothing and
/// changes nothing, every event survives its stored form, and replaying the events from
/// scratch gives the state applying them as they came gave.
fn holds_for_any_sequence<A>(runtime: &tokio::runtime::Runtime, commands: Vec<A::Command>) -> Result<(), TestCaseError>
where
    A: Aggregate<Services = ()> + std::fmt::Debug,
    A::Command: std::fmt::Debug,
{
    let state = |a: &A| serde_json::to_value(a).expect("the aggregate serialises (snapshots)");
    let (mut aggregate, mut log) = (A::default(), Vec::<A::Event>::new());
    for (step, command) in commands.into_iter().enumerate() {
        let before = state(&aggregate);
        let sink = EventSink::default();
        let shown = format!("{command:?}");
        let handled = runtime.block_on(aggregate.handle(command, &(), &sink));
        let events = runtime.block_on(sink.collect());
        if handled.is_err() {
            prop_assert!(events.is_empty(), "step {}: refused {} yet emitted {:?}", step, shown, events);
            prop_assert_eq!(&state(&aggregate), &before, "step {}: refused {} changed the state", step, shown);
        }
        for event in events {
            let stored = serde_json::to_value(&event).unwrap();
            let read: A::Event = serde_json::from_value(stored.clone()).unwrap();
            prop_assert_eq!(serde_json::to_value(&read).unwrap(), stored);
            prop_assert_eq!(read.event_type(), event.event_type());
            log.push(read);
        }
        let mut replayed = A::default();
        for event in log.iter().cloned() {
            replayed.apply(event);
        }
        prop_assert_eq!(state(&replayed), state(&aggregate), "step {}: replay differs after {}", step, shown);
    }
    Ok(())
}

fn expected_version() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(0u64..5)
}

#[test]
fn every_other_aggregate_refuses_cleanly_and_replays_to_the_same_state() {
    use domain::llm::{Llm, LlmCommand, LlmSpec, LlmType, SecretKeyRef, Tier};
    use domain::rbac::{Role, RoleBinding, RoleBindingCommand, RoleBindingSpec, RoleCommand, RoleSpec, Rule};
    use domain::token::{Token, TokenCommand};
    use domain::user::{User, UserCommand};

    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let spec = (0..2usize, 0..2usize, any::<bool>(), any::<bool>(), 0..3u8).prop_map(|(p, t, url, key, m)| LlmSpec {
        provider: LlmType::parse(["openai", "anthropic"][p]).unwrap(),
        model: format!("m{m}"),
        url: url.then(|| "http://127.0.0.1:9".to_owned()),
        tier: Tier::parse(["fast", "heavy"][t]).unwrap(),
        description: String::new(),
        api_key_ref: key.then(|| SecretKeyRef { name: n("k"), key: "API_KEY".into() }),
        extra: Default::default(),
    });
    let keys =
        proptest::option::of(proptest::sample::subsequence(vec!["API_KEY".to_owned(), "OTHER".to_owned()], 0..=2));
    let llm = prop_oneof![
        (spec.clone(), keys.clone()).prop_map(|(spec, referenced_secret_keys)| LlmCommand::CreateLlm {
            name: n("l"),
            spec,
            referenced_secret_keys
        }),
        (spec, keys, expected_version()).prop_map(|(spec, referenced_secret_keys, expected_version)| {
            LlmCommand::UpdateLlm { name: n("l"), spec, referenced_secret_keys, expected_version }
        }),
        expected_version().prop_map(|expected_version| LlmCommand::DeleteLlm { name: n("l"), expected_version }),
    ];
    let binding_spec =
        (0..2usize, proptest::sample::subsequence(vec!["ann", "bob", "cy"], 0..=3)).prop_map(|(r, users)| {
            RoleBindingSpec {
                description: String::new(),
                role: ["viewer", "editor"][r].into(),
                users: users.into_iter().map(str::to_owned).collect(),
            }
        });
    let binding = prop_oneof![
        binding_spec.clone().prop_map(|spec| RoleBindingCommand::Create { name: n("b"), spec }),
        (binding_spec, expected_version()).prop_map(|(spec, expected_version)| RoleBindingCommand::Update {
            name: n("b"),
            spec,
            expected_version
        }),
        expected_version().prop_map(|expected_version| RoleBindingCommand::Delete { name: n("b"), expected_version }),
    ];
    let rules = proptest::sample::subsequence(vec!["llms", "secrets", "users"], 0..=3).prop_map(|resources| RoleSpec {
        description: String::new(),
        rules: resources
            .into_iter()
            .map(|r| Rule { resources: vec![r.into()], verbs: vec!["view".into()], ..Rule::default() })
            .collect(),
    });
    let role = prop_oneof![
        rules.clone().prop_map(|spec| RoleCommand::Create { name: n("r"), spec }),
        (rules, expected_version()).prop_map(|(spec, expected_version)| RoleCommand::Update {
            name: n("r"),
            spec,
            expected_version
        }),
        (any::<bool>(), expected_version()).prop_map(|(bound, expected_version)| RoleCommand::Delete {
            name: n("r"),
            bound_by: if bound { vec!["b".into()] } else { vec![] },
            expected_version
        }),
    ];
    let user = prop_oneof![
        Just(UserCommand::CreateUser { name: n("u"), description: String::new() }),
        Just(UserCommand::DeleteUser { name: n("u") }),
    ];
    let token = prop_oneof![
        (any::<bool>(), proptest::option::of(Just("2030-01-01T00:00:00Z".to_owned()))).prop_map(
            |(user_exists, expires_at)| {
                TokenCommand::IssueToken {
                    id: "tok-1".into(),
                    user: n("u"),
                    user_exists,
                    hash: "h".into(),
                    expires_at,
                    description: String::new(),
                }
            }
        ),
        Just(TokenCommand::RevokeToken { id: "tok-1".into() }),
    ];

    let mut runner = TestRunner::new(config("every other aggregate"));
    let sequences = (
        proptest::collection::vec(llm, 1..25),
        proptest::collection::vec(binding, 1..25),
        proptest::collection::vec(role, 1..25),
        proptest::collection::vec(user, 1..10),
        proptest::collection::vec(token, 1..10),
    );
    runner
        .run(&sequences, |(llm, binding, role, user, token)| {
            holds_for_any_sequence::<Llm>(&runtime, llm)?;
            holds_for_any_sequence::<RoleBinding>(&runtime, binding)?;
            holds_for_any_sequence::<Role>(&runtime, role)?;
            holds_for_any_sequence::<User>(&runtime, user)?;
            holds_for_any_sequence::<Token>(&runtime, token)?;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
