use serde_json::{Value, json};

use super::*;

const BOT_APP: &str = "566bf9d7-c55a-45f8-91a6-e55e9b9b1325";
const BOT_LINE: &str = "5d96cf7f-265b-4da9-8f0c-26ef4243ed52";
const CONTOSO: &str = "5e6a0a2e-dd70-434d-81d7-7cffb7decc0c";
const FABRIKAM: &str = "b37523a5-3b4a-4ee2-8463-513755ac0ecd";

macro_rules! example {
    ($name:literal) => {
        include_str!(concat!("../../examples/notifications/", $name))
    };
}

/// Every example file, so a file added later without a test fails `examples_are_all_tested`.
const EXAMPLES: &[&str] = &[
    "README.md",
    "anonymous-caller-no-id.json",
    "batch-two-invites.json",
    "call-deleted-terminated.json",
    "call-from-other-bot-application.json",
    "call-updated-established.json",
    "group-call-invite-chatinfo-organizer.json",
    "guest-caller.json",
    "legacy-resource-field-identityprovider.json",
    "p2p-aad-user-audio.json",
    "p2p-aad-user-region-apac-ko.json",
    "p2p-aad-user-region-westeurope-fr.json",
    "p2p-aad-user-video.json",
    "participants-roster-updated.json",
    "pstn-caller-with-countrycode.json",
    "pstn-caller-without-countrycode.json",
];

fn s(value: &str) -> Option<String> {
    Some(value.to_owned())
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|word| (*word).to_owned()).collect()
}

fn parsed(body: &str) -> Notifications {
    parse(body.as_bytes()).expect("example parses")
}

fn only_invite(body: &str) -> Facts {
    let notifications = parsed(body);
    assert_eq!(notifications.skipped, []);
    assert_eq!(notifications.invites.len(), 1);
    notifications.invites.into_iter().next().unwrap()
}

fn only_skip(body: &str) -> Skipped {
    let notifications = parsed(body);
    assert_eq!(notifications.invites, []);
    assert_eq!(notifications.skipped.len(), 1);
    notifications.skipped.into_iter().next().unwrap()
}

fn bot_app() -> Target {
    Target {
        id: s(BOT_APP),
        kind: s("application"),
    }
}

fn bot_line() -> Target {
    Target {
        id: s(BOT_LINE),
        kind: s("applicationInstance"),
    }
}

/// The expected facts of a one-to-one call to our tenant's bot.
fn direct_call(
    call_id: &str,
    caller: Caller,
    target: Target,
    modalities: &[&str],
    call_chain_id: &str,
) -> Facts {
    Facts {
        call_id: call_id.to_owned(),
        caller,
        target,
        tenant: s(CONTOSO),
        modalities: words(modalities),
        group: false,
        meeting: Meeting {
            kind: None,
            organizer_id: None,
            organizer_tenant: None,
        },
        chat_thread: None,
        transferred: false,
        on_behalf_of_id: None,
        call_chain_id: s(call_chain_id),
    }
}

// === example files ===

#[test]
fn examples_are_all_tested() {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/notifications");
    let mut found: Vec<String> = std::fs::read_dir(folder)
        .expect("examples folder")
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    found.sort();
    assert_eq!(found, EXAMPLES);
}

#[test]
fn example_p2p_aad_user_audio() {
    let caller = Caller {
        kind: "user".into(),
        id: s("aed09b82-4ca8-4fc2-bfb6-37dd5bae2d26"),
        name: s("Caller A"),
        tenant: s(CONTOSO),
        provider: None,
        phone: None,
        asserted: None,
        region: s("amer"),
        language: s("en-US"),
        country: s("US"),
        endpoint: s("default"),
    };
    assert_eq!(
        only_invite(example!("p2p-aad-user-audio.json")),
        direct_call(
            "683447c1-0cc8-4f11-9d4e-abbd1fcfb980",
            caller,
            bot_app(),
            &["audio"],
            "d330a549-4d14-4f1a-8cc3-46363c234038",
        )
    );
}

#[test]
fn example_p2p_aad_user_video_from_external_tenant() {
    let caller = Caller {
        kind: "user".into(),
        id: s("baecde5b-af5d-4bb0-9f2e-9ea4765890e0"),
        name: s("Caller B"),
        tenant: s(FABRIKAM),
        provider: None,
        phone: None,
        asserted: None,
        region: s("emea"),
        language: s("de-DE"),
        country: s("DE"),
        endpoint: s("default"),
    };
    assert_eq!(
        only_invite(example!("p2p-aad-user-video.json")),
        direct_call(
            "f94855d0-d178-4030-b5c9-a8c4668dc8f4",
            caller,
            bot_app(),
            &["audio", "video"],
            "f1f0742a-0e46-4215-b5fa-5b0cdb18bd76",
        )
    );
}

#[test]
fn example_p2p_aad_user_region_westeurope_fr() {
    let caller = Caller {
        kind: "user".into(),
        id: s("e8cbb19d-c55c-46e0-a83d-063fe345c182"),
        name: s("Caller I"),
        tenant: s(FABRIKAM),
        provider: None,
        phone: None,
        asserted: None,
        region: s("westeurope"),
        language: s("fr-FR"),
        country: s("FR"),
        endpoint: s("default"),
    };
    assert_eq!(
        only_invite(example!("p2p-aad-user-region-westeurope-fr.json")),
        direct_call(
            "ead5c02a-25c8-4409-92a6-9ac037848b77",
            caller,
            bot_app(),
            &["audio"],
            "1454929e-4697-4deb-a82c-e7ffcad8f6bd",
        )
    );
}

#[test]
fn example_p2p_aad_user_region_apac_ko() {
    let caller = Caller {
        kind: "user".into(),
        id: s("4c7dae9d-4c74-47b8-b849-a411a377cf5a"),
        name: s("Caller J"),
        tenant: s(CONTOSO),
        provider: None,
        phone: None,
        asserted: None,
        region: s("apac"),
        language: s("ko-KR"),
        country: s("KR"),
        endpoint: s("default"),
    };
    assert_eq!(
        only_invite(example!("p2p-aad-user-region-apac-ko.json")),
        direct_call(
            "8a356a49-798b-436c-92a7-4c3169e00599",
            caller,
            bot_app(),
            &["audio"],
            "de83bc13-4dcc-4f77-a19c-fa0816c60a7f",
        )
    );
}

#[test]
fn example_pstn_caller_with_country_code() {
    let caller = Caller {
        kind: "phone".into(),
        id: s("+15555550123"),
        name: None,
        tenant: None,
        provider: None,
        phone: s("+15555550123"),
        asserted: None,
        region: s("amer"),
        language: s("en-US"),
        country: s("US"),
        endpoint: s("default"),
    };
    assert_eq!(
        only_invite(example!("pstn-caller-with-countrycode.json")),
        direct_call(
            "3a7cfb36-6088-455f-8763-54b65ed08d6b",
            caller,
            bot_line(),
            &["audio"],
            "da0aea0e-aa72-470b-9d63-d2a5d1764460",
        )
    );
}

#[test]
fn example_pstn_caller_without_country_code() {
    let caller = Caller {
        kind: "phone".into(),
        id: s("+15555550188"),
        name: s("Caller D"),
        tenant: None,
        provider: None,
        phone: s("+15555550188"),
        asserted: None,
        region: None,
        language: None,
        country: None,
        endpoint: s("default"),
    };
    assert_eq!(
        only_invite(example!("pstn-caller-without-countrycode.json")),
        direct_call(
            "f585675f-d177-4781-9438-a5b507bda21c",
            caller,
            bot_line(),
            &["audio"],
            "54c6c4b3-70fa-436f-b78e-da4fea394aba",
        )
    );
}

#[test]
fn example_anonymous_caller_without_id() {
    let caller = Caller {
        kind: "anonymous".into(),
        id: None,
        name: s("Anonymous"),
        tenant: None,
        provider: None,
        phone: None,
        asserted: None,
        region: s("amer"),
        language: s("en-US"),
        country: None,
        endpoint: s("default"),
    };
    assert_eq!(
        only_invite(example!("anonymous-caller-no-id.json")),
        direct_call(
            "2e012631-9a72-480d-908a-3e291dd257d5",
            caller,
            bot_line(),
            &["audio"],
            "535f2002-b9f7-489e-8689-c846b6b81ec6",
        )
    );
}

#[test]
fn example_guest_caller() {
    let caller = Caller {
        kind: "guest".into(),
        id: s("0473b824-8ac0-4649-9644-2260559d7e79"),
        name: s("Caller F (Guest)"),
        tenant: None,
        provider: None,
        phone: None,
        asserted: None,
        region: s("apac"),
        language: s("ja-JP"),
        country: s("JP"),
        endpoint: s("default"),
    };
    assert_eq!(
        only_invite(example!("guest-caller.json")),
        direct_call(
            "02c89680-e98c-4884-857c-e06bf9a21be1",
            caller,
            bot_app(),
            &["audio", "video"],
            "b2a57e60-6d09-4f94-92e0-6b36b9ea43d4",
        )
    );
}

#[test]
fn example_call_from_other_bot_application() {
    let caller = Caller {
        kind: "application".into(),
        id: s("9823beb1-e6ba-4ad7-8de4-5321ad915a36"),
        name: s("Other Bot"),
        tenant: None,
        provider: None,
        phone: None,
        asserted: None,
        region: s("emea"),
        language: s("en-US"),
        country: None,
        endpoint: s("default"),
    };
    assert_eq!(
        only_invite(example!("call-from-other-bot-application.json")),
        direct_call(
            "12400dfa-cf73-4131-b1b0-b480ac7a0c5d",
            caller,
            bot_app(),
            &["audio"],
            "3173f9f7-b59e-4f10-9c6c-f0c200ae623f",
        )
    );
}

#[test]
fn example_legacy_resource_field_with_identity_provider() {
    // Carries both `resourceUrl` and the deprecated `resource`, and an incomingContext
    // without transferor or onBehalfOf.
    let caller = Caller {
        kind: "user".into(),
        id: s("0ac92aa6-6161-442d-8ce6-7426dde3aa61"),
        name: s("Caller N"),
        tenant: s(CONTOSO),
        provider: s("AAD"),
        phone: None,
        asserted: None,
        region: s("amer"),
        language: s("en-US"),
        country: s("US"),
        endpoint: s("default"),
    };
    assert_eq!(
        only_invite(example!("legacy-resource-field-identityprovider.json")),
        direct_call(
            "48e468c4-72ff-4d06-ad77-d09fb253be39",
            caller,
            bot_app(),
            &["audio"],
            "261c8618-55b4-40a7-b061-1ec6d6b5b8ce",
        )
    );
}

#[test]
fn example_group_call_invite_with_chat_and_organizer() {
    let expected = Facts {
        call_id: "ea70df2d-2560-4be3-8444-a62e8d1eac03".into(),
        caller: Caller {
            kind: "user".into(),
            id: s("0ecb476f-9f61-462f-88f8-f1642f2a4442"),
            name: s("Caller G"),
            tenant: s(CONTOSO),
            provider: None,
            phone: None,
            asserted: None,
            region: s("amer"),
            language: s("en-GB"),
            country: s("GB"),
            endpoint: s("default"),
        },
        target: bot_app(),
        tenant: s(CONTOSO),
        modalities: words(&["audio", "video", "videobasedscreensharing"]),
        group: true,
        meeting: Meeting {
            kind: s("organizer"),
            organizer_id: s("2f862cec-6965-4425-b110-d30a9d411e83"),
            organizer_tenant: s(CONTOSO),
        },
        chat_thread: s("19:meeting_7eQTvkDe08XIQwKfu3RDn_aeIhY92_JQWXB3YAwTSTgofub7@thread.v2"),
        transferred: false,
        on_behalf_of_id: None,
        call_chain_id: s("c1e6c246-cca2-4337-b202-aed9b49fe4dd"),
    };
    assert_eq!(
        only_invite(example!("group-call-invite-chatinfo-organizer.json")),
        expected
    );
}

#[test]
fn example_batch_of_two_invites_keeps_order() {
    let notifications = parsed(example!("batch-two-invites.json"));
    assert_eq!(notifications.skipped, []);
    let user = Caller {
        kind: "user".into(),
        id: s("5d0a2a43-fa69-4704-96eb-f52a1b227b51"),
        name: s("Caller K"),
        tenant: s(CONTOSO),
        provider: None,
        phone: None,
        asserted: None,
        region: s("amer"),
        language: s("en-US"),
        country: s("US"),
        endpoint: s("default"),
    };
    let phone = Caller {
        kind: "phone".into(),
        id: s("+15555550145"),
        name: s("Caller L"),
        tenant: None,
        provider: None,
        phone: s("+15555550145"),
        asserted: None,
        region: s("amer"),
        language: s("es-US"),
        country: s("US"),
        endpoint: s("default"),
    };
    assert_eq!(
        notifications.invites,
        [
            direct_call(
                "765b1f48-d33c-48de-aa68-268ccaf9a1f4",
                user,
                bot_app(),
                &["audio"],
                "f009528b-743c-4bf4-86e6-994b3cc17d11",
            ),
            direct_call(
                "01f752bc-3f10-4ac5-86ad-f2a1be6f3d77",
                phone,
                bot_line(),
                &["audio", "video"],
                "1b86236b-db15-4e2b-8c43-766ac88007a0",
            ),
        ]
    );
}

#[test]
fn example_call_updated_established_is_skipped() {
    assert_eq!(
        only_skip(example!("call-updated-established.json")),
        Skipped {
            index: 0,
            call_id: s("ba52fff4-2c57-47ba-b8c9-127883ab0c1e"),
            change_type: s("updated"),
            why: SkipReason::NotCreated,
        }
    );
}

#[test]
fn example_call_deleted_terminated_is_skipped() {
    assert_eq!(
        only_skip(example!("call-deleted-terminated.json")),
        Skipped {
            index: 0,
            call_id: s("31643087-af6f-4ad0-9f20-c770621477ba"),
            change_type: s("deleted"),
            why: SkipReason::NotCreated,
        }
    );
}

#[test]
fn example_participants_roster_is_skipped_with_its_call_id() {
    assert_eq!(
        only_skip(example!("participants-roster-updated.json")),
        Skipped {
            index: 0,
            call_id: s("0803b5b6-070b-4848-9c8b-ea5a2f5ddb2d"),
            change_type: s("updated"),
            why: SkipReason::NotCreated,
        }
    );
}

#[test]
fn example_readme_lists_every_example() {
    let readme = example!("README.md");
    for name in EXAMPLES.iter().filter(|name| name.ends_with(".json")) {
        assert!(readme.contains(name), "{name} missing from README.md");
    }
}

// === crafted notifications ===

/// A minimal new incoming call with `extra` merged into its `resourceData`.
fn invite(id: &str, extra: Value) -> Value {
    let mut call = json!({
        "@odata.type": "#microsoft.graph.call",
        "state": "incoming",
        "direction": "incoming",
        "id": id,
    });
    if let (Some(call), Value::Object(extra)) = (call.as_object_mut(), extra) {
        call.extend(extra);
    }
    json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "created",
        "resourceUrl": format!("/communications/calls/{id}"),
        "resourceData": call,
    })
}

/// An invite whose caller is `identity`, with a complete-looking call around it.
fn full_invite(id: &str, identity: Value) -> Value {
    invite(
        id,
        json!({
            "source": { "identity": identity, "region": "amer", "languageId": "en-US" },
            "targets": [{ "identity": { "application": { "id": BOT_APP } } }],
            "requestedModalities": ["audio"],
            "tenantId": CONTOSO,
        }),
    )
}

fn batch(elements: &[Value]) -> Notifications {
    let body = serde_json::to_vec(&json!({ "value": elements })).unwrap();
    parse(&body).expect("batch parses")
}

fn one_invite(element: Value) -> Facts {
    only_invite(&json!({ "value": [element] }).to_string())
}

fn one_skip(element: Value) -> Skipped {
    only_skip(&json!({ "value": [element] }).to_string())
}

fn caller_of(identity: Value) -> Caller {
    one_invite(invite("c1", json!({ "source": { "identity": identity } }))).caller
}

fn error_of(body: &[u8]) -> NotificationError {
    parse(body).expect_err("body is refused")
}

#[test]
fn each_identity_member_names_the_caller_kind() {
    let members = [
        ("user", "user"),
        ("onPremises", "onPremises"),
        ("guest", "guest"),
        ("azureCommunicationServicesUser", "acsUser"),
        ("applicationInstance", "applicationInstance"),
        ("application", "application"),
        ("encrypted", "encrypted"),
        ("device", "device"),
    ];
    for (member, kind) in members {
        let caller = caller_of(json!({
            "@odata.type": "#microsoft.graph.identitySet",
            member: {
                "id": "id-1",
                "displayName": "Someone",
                "tenantId": "tenant-1",
                "identityProvider": "AAD",
            },
        }));
        let expected = Caller {
            kind: kind.into(),
            id: s("id-1"),
            name: s("Someone"),
            tenant: s("tenant-1"),
            provider: s("AAD"),
            ..Caller::default()
        };
        assert_eq!(caller, expected, "member {member}");
    }
}

#[test]
fn phone_caller_id_and_phone_are_e164() {
    let caller =
        caller_of(json!({ "phone": { "id": "tel:+1 (555) 555-0123", "displayName": "X" } }));
    assert_eq!(caller.kind, "phone");
    assert_eq!(caller.id, s("+15555550123"));
    assert_eq!(caller.phone, s("+15555550123"));
    assert_eq!(caller.name, s("X"));
}

#[test]
fn phone_caller_id_that_does_not_normalise_stays_raw() {
    let caller = caller_of(json!({ "phone": { "id": "sip:someone@example.com" } }));
    assert_eq!(caller.kind, "phone");
    assert_eq!(caller.id, s("sip:someone@example.com"));
    assert_eq!(caller.phone, None);
}

#[test]
fn user_caller_still_reports_its_phone_member() {
    let caller = caller_of(json!({
        "phone": { "id": "+1 555 0100" },
        "user": { "id": "u-1", "tenantId": CONTOSO },
    }));
    assert_eq!(caller.kind, "user");
    assert_eq!(caller.id, s("u-1"));
    assert_eq!(caller.tenant, s(CONTOSO));
    assert_eq!(caller.phone, s("+15550100"));
}

#[test]
fn caller_without_any_id_is_anonymous() {
    let identities = [
        json!({ "phone": { "displayName": "Anonymous" } }),
        json!({ "phone": { "id": "", "displayName": "Anonymous" } }),
        json!({ "phone": { "id": "   ", "displayName": "Anonymous" } }),
        json!({ "phone": { "id": null, "displayName": "Anonymous" } }),
        json!({ "phone": { "id": 15550100, "displayName": "Anonymous" } }),
        json!({ "user": null, "phone": { "displayName": "Anonymous" } }),
    ];
    for identity in identities {
        let caller = caller_of(identity.clone());
        let expected = Caller {
            kind: "anonymous".into(),
            name: s("Anonymous"),
            ..Caller::default()
        };
        assert_eq!(caller, expected, "identity {identity}");
    }
}

#[test]
fn empty_identity_is_anonymous_and_missing_identity_is_unknown() {
    let anonymous = Caller {
        kind: "anonymous".into(),
        ..Caller::default()
    };
    let unknown = Caller {
        kind: "unknown".into(),
        ..Caller::default()
    };
    assert_eq!(caller_of(json!({})), anonymous);
    assert_eq!(
        caller_of(json!({ "@odata.type": "#microsoft.graph.identitySet" })),
        anonymous
    );
    // No identity set at all is not a caller who hid: it must not match "anonymous".
    assert_eq!(caller_of(json!(null)), unknown);
    assert_eq!(caller_of(json!("user")), unknown);
    let no_source = one_invite(invite("c1", json!({})));
    assert_eq!(no_source.caller, unknown);
    let located = one_invite(invite("c1", json!({ "source": { "region": "emea" } })));
    assert_eq!(located.caller.kind, "unknown");
    assert_eq!(located.caller.region, s("emea"));
}

#[test]
fn anonymous_name_follows_member_order() {
    let caller = caller_of(json!({
        "phone": { "displayName": "From phone" },
        "user": { "displayName": "From user" },
    }));
    assert_eq!(caller.kind, "anonymous");
    assert_eq!(caller.name, s("From user"));
    assert_eq!(caller.id, None);
}

#[test]
fn first_member_with_an_id_wins_in_precedence_order() {
    let cases = [
        (
            json!({
                "application": { "id": "a" },
                "phone": { "id": "+1555" },
                "user": { "id": "u" },
            }),
            "user",
            "u",
        ),
        (
            json!({ "guest": { "id": "g" }, "onPremises": { "id": "o" } }),
            "onPremises",
            "o",
        ),
        (
            json!({ "phone": { "id": "+1555" }, "guest": { "id": "g" } }),
            "guest",
            "g",
        ),
        (
            json!({ "applicationInstance": { "id": "ai" }, "phone": { "id": "+1555" } }),
            "phone",
            "+1555",
        ),
        (
            json!({
                "applicationInstance": { "id": "ai" },
                "azureCommunicationServicesUser": { "id": "8:acs:x" },
            }),
            "acsUser",
            "8:acs:x",
        ),
        (
            json!({ "application": { "id": "a" }, "applicationInstance": { "id": "ai" } }),
            "applicationInstance",
            "ai",
        ),
        (
            json!({ "encrypted": { "id": "e" }, "application": { "id": "a" } }),
            "application",
            "a",
        ),
        (
            json!({ "device": { "id": "d" }, "encrypted": { "id": "e" } }),
            "encrypted",
            "e",
        ),
        (
            json!({ "user": { "displayName": "no id" }, "phone": { "id": "+1555" } }),
            "phone",
            "+1555",
        ),
    ];
    for (identity, kind, id) in cases {
        let caller = caller_of(identity.clone());
        assert_eq!(
            (caller.kind.as_str(), caller.id.as_deref()),
            (kind, Some(id)),
            "{identity}"
        );
    }
}

#[test]
fn member_keys_match_in_any_case() {
    let caller = caller_of(json!({ "PHONE": { "id": "+1555" }, "User": { "id": "u" } }));
    assert_eq!(caller.kind, "user");
    assert_eq!(caller.phone, s("+1555"));
    let caller = caller_of(json!({ "AzureCommunicationServicesUser": { "id": "8:acs:y" } }));
    assert_eq!(caller.kind, "acsUser");
}

#[test]
fn unlisted_member_with_an_id_is_not_anonymous() {
    let caller = caller_of(json!({ "conversation": { "id": "conv-1" } }));
    assert_eq!(
        (caller.kind.as_str(), caller.id.as_deref()),
        ("conversation", Some("conv-1"))
    );
    let caller = caller_of(json!({ "futureKind": { "id": "f" }, "device": { "id": "d" } }));
    assert_eq!(caller.kind, "device");
}

#[test]
fn asserted_identity_is_kept_apart_from_the_caller() {
    let caller = caller_of(json!({ "assertedIdentity": { "id": "+1 555 0100" } }));
    assert_eq!(caller.kind, "anonymous");
    assert_eq!(caller.id, None);
    assert_eq!(caller.asserted, s("+15550100"));

    let caller = caller_of(json!({
        "user": { "id": "u-1" },
        "AssertedIdentity": { "id": "presented-user", "displayName": "Presented" },
    }));
    assert_eq!(caller.kind, "user");
    assert_eq!(caller.id, s("u-1"));
    assert_eq!(caller.name, None);
    assert_eq!(caller.asserted, s("presented-user"));
}

#[test]
fn asserted_identity_may_be_an_identity_set() {
    let caller = caller_of(json!({
        "user": { "id": "u-1" },
        "assertedIdentity": { "phone": { "id": "+1-555-0101" } },
    }));
    assert_eq!(caller.asserted, s("+15550101"));
    assert_eq!(caller.phone, None);
    let caller = caller_of(json!({ "assertedIdentity": { "user": { "id": "u-9" } } }));
    assert_eq!(caller.asserted, s("u-9"));
    let caller = caller_of(json!({ "assertedIdentity": { "displayName": "no id" } }));
    assert_eq!(caller.asserted, None);
}

#[test]
fn source_fields_are_trimmed_and_wrong_types_are_absent() {
    let facts = one_invite(invite(
        "c1",
        json!({ "source": {
            "identity": { "user": { "id": "  u-1  ", "displayName": 7 } },
            "region": 5,
            "languageId": "   ",
            "countryCode": " fr ",
            "endpointType": "skypeForBusiness",
        } }),
    ));
    let expected = Caller {
        kind: "user".into(),
        id: s("u-1"),
        country: s("fr"),
        endpoint: s("skypeForBusiness"),
        ..Caller::default()
    };
    assert_eq!(facts.caller, expected);
}

#[test]
fn target_is_the_first_of_targets() {
    let facts = one_invite(invite(
        "c1",
        json!({ "targets": [
            { "identity": { "phone": { "id": "+1 555 0199" } } },
            { "identity": { "application": { "id": BOT_APP } } },
        ] }),
    ));
    assert_eq!(
        facts.target,
        Target {
            id: s("+15550199"),
            kind: s("phone")
        }
    );

    let facts = one_invite(invite("c1", json!({ "targets": [{ "identity": {} }] })));
    assert_eq!(
        facts.target,
        Target {
            id: None,
            kind: s("anonymous")
        }
    );

    for targets in [
        json!([]),
        json!(null),
        json!({ "identity": {} }),
        json!(["x"]),
    ] {
        let facts = one_invite(invite("c1", json!({ "targets": targets })));
        assert_eq!(facts.target, Target::default());
    }
}

#[test]
fn modalities_are_lowercased_strings_in_order() {
    let facts = one_invite(invite(
        "c1",
        json!({ "requestedModalities":
            ["Audio", 3, null, " VIDEO ", "", "videoBasedScreenSharing", "unknownFutureValue"] }),
    ));
    assert_eq!(
        facts.modalities,
        words(&[
            "audio",
            "video",
            "videobasedscreensharing",
            "unknownfuturevalue"
        ])
    );
    let facts = one_invite(invite("c1", json!({ "requestedModalities": "audio" })));
    assert_eq!(facts.modalities, Vec::<String>::new());
}

#[test]
fn meeting_kind_comes_from_the_odata_type() {
    let organizer = json!({ "user": { "id": "org-1", "tenantId": FABRIKAM, "displayName": "O" } });
    let cases = [
        (
            json!({
                "@odata.type": "#microsoft.graph.organizerMeetingInfo",
                "organizer": organizer,
            }),
            "organizer",
        ),
        (
            json!({ "@odata.type": "#Microsoft.Graph.TokenMeetingInfo", "token": "secret-token" }),
            "token",
        ),
        (
            json!({
                "@odata.type": "#microsoft.graph.joinMeetingIdMeetingInfo",
                "joinMeetingId": "123 456 789",
                "passcode": "secret-passcode",
            }),
            "joinMeetingId",
        ),
        // The type decides even when the keys say otherwise.
        (
            json!({ "@odata.type": "#microsoft.graph.tokenMeetingInfo", "organizer": organizer }),
            "token",
        ),
    ];
    for (info, kind) in cases {
        let facts = one_invite(invite("c1", json!({ "meetingInfo": info })));
        assert!(facts.group);
        assert_eq!(facts.meeting.kind, s(kind), "{info}");
    }
}

#[test]
fn meeting_kind_falls_back_to_key_presence() {
    let cases = [
        (
            json!({ "organizer": { "user": { "id": "org-1" } } }),
            Some("organizer"),
        ),
        (json!({ "token": "secret-token" }), Some("token")),
        (
            json!({ "joinMeetingId": "123", "passcode": "secret-passcode" }),
            Some("joinMeetingId"),
        ),
        (
            json!({ "@odata.type": "#microsoft.graph.meetingInfo", "token": "secret-token" }),
            Some("token"),
        ),
        (
            json!({ "@odata.type": 5, "joinMeetingId": "123" }),
            Some("joinMeetingId"),
        ),
        (
            json!({ "token": null, "allowConversationWithoutHost": true }),
            None,
        ),
        (json!({}), None),
    ];
    for (info, kind) in cases {
        let facts = one_invite(invite("c1", json!({ "meetingInfo": info })));
        assert!(facts.group, "{info}");
        assert_eq!(facts.meeting.kind.as_deref(), kind, "{info}");
    }
}

#[test]
fn meeting_organizer_follows_member_precedence() {
    let facts = one_invite(invite(
        "c1",
        json!({ "meetingInfo": {
            "@odata.type": "#microsoft.graph.organizerMeetingInfo",
            "organizer": {
                "application": { "id": "app-1" },
                "user": { "id": "org-1", "tenantId": FABRIKAM },
            },
        } }),
    ));
    let expected = Meeting {
        kind: s("organizer"),
        organizer_id: s("org-1"),
        organizer_tenant: s(FABRIKAM),
    };
    assert_eq!(facts.meeting, expected);
    assert_eq!(facts.chat_thread, None);
}

#[test]
fn meeting_secrets_never_reach_facts() {
    let facts = one_invite(invite(
        "c1",
        json!({ "meetingInfo": {
            "@odata.type": "#microsoft.graph.joinMeetingIdMeetingInfo",
            "joinMeetingId": "123",
            "passcode": "secret-passcode",
            "token": "secret-token",
        } }),
    ));
    let shown = format!("{facts:?} {}", serde_json::to_string(&facts).unwrap());
    assert!(!shown.contains("secret"), "{shown}");
}

#[test]
fn chat_info_alone_makes_a_group_call() {
    let facts = one_invite(invite(
        "c1",
        json!({ "chatInfo": { "threadId": " 19:abc@thread.v2 " } }),
    ));
    assert!(facts.group);
    assert_eq!(facts.chat_thread, s("19:abc@thread.v2"));
    assert_eq!(facts.meeting, Meeting::default());

    for chat in [json!(null), json!("19:abc"), json!([])] {
        let facts = one_invite(invite("c1", json!({ "chatInfo": chat, "meetingInfo": 5 })));
        assert!(!facts.group);
        assert_eq!(facts.chat_thread, None);
    }
}

#[test]
fn incoming_context_gives_transfer_and_delegation() {
    let context = |context: Value| one_invite(invite("c1", json!({ "incomingContext": context })));

    let facts = context(json!({ "transferor": { "user": { "id": "t-1" } } }));
    assert!(facts.transferred);
    assert_eq!(facts.on_behalf_of_id, None);

    let facts = context(json!({ "transferor": { "phone": { "displayName": "withheld" } } }));
    assert!(facts.transferred);

    for transferor in [
        json!({}),
        json!({ "@odata.type": "#microsoft.graph.identitySet" }),
        json!(null),
    ] {
        assert!(!context(json!({ "transferor": transferor })).transferred);
    }

    let facts = context(json!({
        "onBehalfOf": { "phone": { "id": "+1555" }, "user": { "id": "boss-1" } },
        "transferor": { "application": { "id": "app-1" } },
    }));
    assert!(facts.transferred);
    assert_eq!(facts.on_behalf_of_id, s("boss-1"));
}

#[test]
fn enum_values_compare_in_any_case() {
    let mut element = invite(
        "c1",
        json!({
            "@odata.type": "#Microsoft.Graph.Call",
            "state": "Incoming",
            "direction": "INCOMING",
        }),
    );
    element["changeType"] = json!("Created");
    element["resourceUrl"] = json!("/Communications/Calls/c1");
    assert_eq!(one_invite(element).call_id, "c1");
}

#[test]
fn odata_type_and_direction_are_optional() {
    let element = invite("c1", json!({ "@odata.type": null, "direction": null }));
    assert_eq!(one_invite(element).call_id, "c1");
    let element = invite("c1", json!({ "@odata.type": "microsoft.graph.call" }));
    assert_eq!(one_invite(element).call_id, "c1");
}

#[test]
fn resource_path_forms_are_accepted() {
    let paths = [
        "/app/calls/c1",
        "/communications/calls/c1/",
        "communications/calls/c1",
        "https://graph.microsoft.com/v1.0/communications/calls/c1",
        "https://graph.microsoft.com/beta/communications/calls/c1?x=1",
        "/v1.0/communications/calls/c1",
    ];
    for path in paths {
        let mut element = invite("c1", json!({ "id": null }));
        element["resourceUrl"] = json!(path);
        assert_eq!(one_invite(element).call_id, "c1", "{path}");
    }
}

#[test]
fn deprecated_resource_field_is_used_without_resource_url() {
    let mut element = invite("c1", json!({ "id": null }));
    element.as_object_mut().unwrap().remove("resourceUrl");
    element["resource"] = json!("/app/calls/c1");
    assert_eq!(one_invite(element).call_id, "c1");

    // resourceUrl, when present, decides.
    let mut element = invite("c1", json!({}));
    element["resourceUrl"] = json!("/communications/calls/c1/operations/op-1");
    element["resource"] = json!("/app/calls/c1");
    assert_eq!(one_skip(element).why, SkipReason::SubResource);
}

#[test]
fn call_id_falls_back_from_resource_data_to_path_to_odata_id() {
    let mut element = invite(
        "from-data",
        json!({ "@odata.id": "/communications/calls/from-odata" }),
    );
    element["resourceUrl"] = json!("/communications/calls/from-path");
    assert_eq!(one_invite(element).call_id, "from-data");

    let mut element = invite(
        "",
        json!({ "@odata.id": "/communications/calls/from-odata" }),
    );
    element["resourceUrl"] = json!("/communications/calls/from-path");
    assert_eq!(one_invite(element).call_id, "from-path");

    for odata_id in [
        "/communications/calls/from-odata",
        "https://graph.microsoft.com/v1.0/communications/calls/from-odata/",
        "from-odata",
    ] {
        let mut element = invite("x", json!({ "id": "  ", "@odata.id": odata_id }));
        element["resourceUrl"] = json!("/communications/calls/");
        assert_eq!(one_invite(element).call_id, "from-odata", "{odata_id}");
    }
}

#[test]
fn invite_without_any_call_id_is_skipped() {
    let mut element = full_invite("", json!({ "user": { "id": "u-1" } }));
    element["resourceUrl"] = json!("/communications/calls/");
    assert_eq!(
        one_skip(element),
        Skipped {
            index: 0,
            call_id: None,
            change_type: s("created"),
            why: SkipReason::NoCallId
        }
    );
}

#[test]
fn hostile_call_ids_are_kept_verbatim() {
    let ids = [
        "a/b",
        "x?y=1&z=%2F",
        "%2e%2e%2f",
        "..",
        "../../admin",
        "☎️-ünïcødé-呼叫",
        "57DAB8B1894C409AB240BD8BEAE78896",
        "a\"b\\c",
    ];
    for id in ids {
        let mut element = invite(id, json!({}));
        element["resourceUrl"] = json!("/communications/calls/placeholder");
        assert_eq!(one_invite(element).call_id, id);
    }
    let element = invite("  padded  ", json!({}));
    assert_eq!(one_invite(element).call_id, "padded");
}

#[test]
fn non_invites_with_full_callers_are_skipped() {
    let caller =
        || json!({ "user": { "id": "u-1", "displayName": "Caller", "tenantId": CONTOSO } });
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut element = full_invite("c1", caller());
        edit(&mut element);
        element
    };
    let cases: Vec<(Value, Option<&str>, SkipReason)> = vec![
        (
            with(&|e| e["changeType"] = json!("updated")),
            Some("updated"),
            SkipReason::NotCreated,
        ),
        (
            with(&|e| e["changeType"] = json!("Deleted")),
            Some("Deleted"),
            SkipReason::NotCreated,
        ),
        (
            with(&|e| e["changeType"] = json!(null)),
            None,
            SkipReason::NotCreated,
        ),
        (
            with(&|e| e["changeType"] = json!(1)),
            None,
            SkipReason::NotCreated,
        ),
        (
            with(&|e| e["resourceData"]["state"] = json!("established")),
            Some("created"),
            SkipReason::NotIncoming,
        ),
        (
            with(&|e| e["resourceData"]["state"] = json!(null)),
            Some("created"),
            SkipReason::NotIncoming,
        ),
        (
            with(&|e| e["resourceData"]["direction"] = json!("outgoing")),
            Some("created"),
            SkipReason::NotIncoming,
        ),
        (
            with(&|e| {
                e["resourceUrl"] = json!("/communications/calls/c1/participants");
                e["resourceData"] = json!([e["resourceData"].clone()]);
            }),
            Some("created"),
            SkipReason::SubResource,
        ),
        (
            with(&|e| e["resourceUrl"] = json!("/communications/calls/c1/operations/op-1")),
            Some("created"),
            SkipReason::SubResource,
        ),
        (
            with(&|e| {
                e["resourceUrl"] = json!("/communications/calls/c1/contentsharingsessions/s-1");
                e.as_object_mut().unwrap().remove("resourceData");
            }),
            Some("created"),
            SkipReason::SubResource,
        ),
        (
            with(&|e| e["resourceUrl"] = json!("/communications/calls/c1//")),
            Some("created"),
            SkipReason::SubResource,
        ),
        (
            with(&|e| e["resourceUrl"] = json!("/communications/onlineMeetings/c1")),
            Some("created"),
            SkipReason::NotACallResource,
        ),
        (
            with(&|e| e["resourceUrl"] = json!("/communications/callsx/c1")),
            Some("created"),
            SkipReason::NotACallResource,
        ),
        (
            with(&|e| {
                e.as_object_mut().unwrap().remove("resourceUrl");
            }),
            Some("created"),
            SkipReason::NoResource,
        ),
        (
            with(&|e| e["resourceData"]["@odata.type"] = json!("#microsoft.graph.participant")),
            Some("created"),
            SkipReason::NotACall,
        ),
        (
            with(&|e| e["resourceData"] = json!([e["resourceData"].clone()])),
            Some("created"),
            SkipReason::NotACall,
        ),
    ];
    for (element, change_type, why) in cases {
        let skipped = one_skip(element.clone());
        let expected = Skipped {
            index: 0,
            call_id: s("c1"),
            change_type: change_type.map(str::to_owned),
            why,
        };
        assert_eq!(skipped, expected, "{element}");
    }

    let no_data = with(&|e| e["resourceData"] = json!(null));
    assert_eq!(
        one_skip(no_data),
        Skipped {
            index: 0,
            call_id: s("c1"),
            change_type: s("created"),
            why: SkipReason::NoResourceData,
        }
    );
}

#[test]
fn odd_elements_do_not_spoil_the_batch() {
    let wrong_types = invite(
        "c2",
        json!({
            "source": "nobody",
            "targets": { "identity": {} },
            "requestedModalities": "audio",
            "chatInfo": [],
            "meetingInfo": 5,
            "incomingContext": "x",
            "tenantId": 7,
            "callChainId": false,
            "futureField": { "nested": [1, 2, { "deep": true }] },
            "state": "incoming",
        }),
    );
    let mut unknown_fields = full_invite("c1", json!({ "user": { "id": "u-1", "newField": [] } }));
    unknown_fields["futureNotificationField"] = json!({ "x": 1 });
    unknown_fields["resourceData"]["applicationMetadata"] = json!({ "botData": "..." });

    let notifications = batch(&[
        json!(42),
        unknown_fields,
        json!(null),
        json!({}),
        wrong_types,
        json!("created"),
        json!([]),
    ]);

    let ids: Vec<&str> = notifications
        .invites
        .iter()
        .map(|facts| facts.call_id.as_str())
        .collect();
    assert_eq!(ids, ["c1", "c2"]);
    assert_eq!(notifications.invites[0].caller.id, s("u-1"));
    let expected = Facts {
        call_id: "c2".into(),
        caller: Caller {
            kind: "unknown".into(),
            ..Caller::default()
        },
        ..Facts::default()
    };
    assert_eq!(notifications.invites[1], expected);

    let skipped: Vec<(usize, SkipReason)> = notifications
        .skipped
        .iter()
        .map(|skip| (skip.index, skip.why))
        .collect();
    assert_eq!(
        skipped,
        [
            (0, SkipReason::NotAnObject),
            (2, SkipReason::NotAnObject),
            (3, SkipReason::NotCreated),
            (5, SkipReason::NotAnObject),
            (6, SkipReason::NotAnObject),
        ]
    );
}

#[test]
fn mixed_batch_keeps_invites_and_skips_in_order() {
    let mut update = full_invite("c0", json!({ "user": { "id": "u-0" } }));
    update["changeType"] = json!("updated");
    let notifications = batch(&[
        update,
        full_invite("c1", json!({ "phone": { "id": "+15550101" } })),
        json!({ "changeType": "deleted", "resourceUrl": "/communications/calls/c9" }),
        full_invite("c2", json!({ "guest": { "id": "g-2" } })),
    ]);
    let ids: Vec<&str> = notifications
        .invites
        .iter()
        .map(|facts| facts.call_id.as_str())
        .collect();
    assert_eq!(ids, ["c1", "c2"]);
    let skipped: Vec<(usize, Option<&str>)> = notifications
        .skipped
        .iter()
        .map(|skip| (skip.index, skip.call_id.as_deref()))
        .collect();
    assert_eq!(skipped, [(0, Some("c0")), (2, Some("c9"))]);
}

#[test]
fn empty_batch_is_fine() {
    assert_eq!(parse(br#"{"value": []}"#), Ok(Notifications::default()));
}

#[test]
fn byte_order_mark_is_ignored() {
    let body = [
        b"\xEF\xBB\xBF".as_slice(),
        example!("guest-caller.json").as_bytes(),
    ]
    .concat();
    assert_eq!(parse(&body).unwrap().invites.len(), 1);
}

// === refused bodies ===

#[test]
fn malformed_json_reports_only_a_position() {
    let error = error_of(b"{\n  \"value\": [");
    assert_eq!(
        error,
        NotificationError::Malformed(Position {
            line: 2,
            column: 12
        })
    );
    assert_eq!(error.to_string(), "malformed json at line 2 column 12");
    for body in [
        &b""[..],
        b"   ",
        b"{\"value\": []} trailing",
        b"{'value': []}",
        b"nul",
    ] {
        assert!(
            matches!(error_of(body), NotificationError::Malformed(_)),
            "{body:?}"
        );
    }
}

#[test]
fn bytes_that_are_not_utf8_are_malformed() {
    for body in [
        &b"\xff\xfe{}"[..],
        b"{\"value\": [\"\xff\"]}",
        b"{\"value\xc3\x28\": []}",
    ] {
        assert!(
            matches!(error_of(body), NotificationError::Malformed(_)),
            "{body:?}"
        );
    }
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let arrays = vec![b'['; 100_000];
    assert!(matches!(error_of(&arrays), NotificationError::Malformed(_)));

    let objects = "{\"a\":".repeat(100_000);
    assert!(matches!(
        error_of(objects.as_bytes()),
        NotificationError::Malformed(_)
    ));

    let nested_value = format!(
        "{{\"value\": [{}1{}]}}",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    assert!(matches!(
        error_of(nested_value.as_bytes()),
        NotificationError::Malformed(_)
    ));
}

#[test]
fn top_level_must_be_an_object_with_a_value_array() {
    for body in [
        "[]",
        "[{\"value\": []}]",
        "null",
        "42",
        "\"value\"",
        "{}",
        "{\"value\": {}}",
        "{\"value\": null}",
        "{\"value\": \"[]\"}",
        "{\"Value\": []}",
    ] {
        assert_eq!(
            error_of(body.as_bytes()),
            NotificationError::NotNotifications,
            "{body}"
        );
    }
    assert_eq!(
        NotificationError::NotNotifications.to_string(),
        "not a notification batch: expected an object with a `value` array"
    );
}

#[test]
fn legacy_skype_body_is_recognised() {
    let bodies = [
        json!({
            "subscriptionId": "2887a4b5-5e5a-4d4a-9d4c-1c1f3a8b6e44",
            "subscriptionExpirationDateTime": "2026-01-01T00:00:00Z",
            "changeType": "Updated",
            "resource": "/app/calls/48e468c4-72ff-4d06-ad77-d09fb253be39",
            "resourceData": { "state": "Established" },
        }),
        json!({ "resource": "/app/calls/c1" }),
        json!({ "SubscriptionId": "s", "value": null }),
    ];
    for body in bodies {
        assert_eq!(
            error_of(body.to_string().as_bytes()),
            NotificationError::Legacy,
            "{body}"
        );
    }
    assert_eq!(
        NotificationError::Legacy.to_string(),
        "legacy notification format"
    );
    // A Graph batch that also carries the legacy keys is still a Graph batch.
    let both = json!({ "subscriptionId": "s", "value": [invite("c1", json!({}))] });
    assert_eq!(parse(both.to_string().as_bytes()).unwrap().invites.len(), 1);
}

#[test]
fn skip_reasons_have_log_names() {
    let names = [
        (SkipReason::NotAnObject, "not_an_object"),
        (SkipReason::NotCreated, "not_created"),
        (SkipReason::NoResource, "no_resource"),
        (SkipReason::NotACallResource, "not_a_call_resource"),
        (SkipReason::SubResource, "sub_resource"),
        (SkipReason::NoResourceData, "no_resource_data"),
        (SkipReason::NotACall, "not_a_call"),
        (SkipReason::NotIncoming, "not_incoming"),
        (SkipReason::NoCallId, "no_call_id"),
    ];
    for (reason, name) in names {
        assert_eq!(reason.as_str(), name);
        assert_eq!(reason.to_string(), name);
    }
}

#[test]
fn large_batch_parses_every_element() {
    let elements: Vec<Value> = (0..2_000)
        .map(|n| {
            full_invite(
                &format!("call-{n}"),
                json!({ "user": { "id": format!("u-{n}") } }),
            )
        })
        .collect();
    let notifications = batch(&elements);
    assert_eq!(notifications.invites.len(), 2_000);
    assert_eq!(notifications.invites[1_999].call_id, "call-1999");
    assert_eq!(notifications.invites[1_999].caller.id, s("u-1999"));
}
