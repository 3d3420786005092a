//! Reads a Graph `commsNotifications` webhook body: each new incoming-call invite becomes
//! [`Facts`] for the rule evaluator, every other element of the batch a [`Skipped`] for the log.
//!
//! Graph's payloads are open types that grow new fields and enum values, so one odd element
//! never fails the batch: a value of the wrong type counts as absent, like `null` or `""`.

use std::fmt;

use serde_json::{Map, Value};

use crate::facts::{Caller, Facts, Meeting, Target, normalize_phone};

type Object = Map<String, Value>;

/// What one webhook body held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notifications {
    /// New incoming calls, in batch order.
    pub invites: Vec<Facts>,
    /// The batch position of each invite, parallel to `invites`.
    pub invite_indices: Vec<usize>,
    /// Every other element, in batch order.
    pub skipped: Vec<Skipped>,
    /// The batch elements as received, for forwarding part of a batch.
    pub elements: Vec<Value>,
    /// The top-level object without its `value` array.
    pub envelope: serde_json::Map<String, Value>,
}

/// A batch element that is not a new incoming call, kept for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Position in the batch's `value` array.
    pub index: usize,
    /// Best guess at the call the element is about, when one can be seen.
    pub call_id: Option<String>,
    pub change_type: Option<String>,
    pub why: SkipReason,
}

/// Why a batch element was not screened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// The element is not a JSON object.
    NotAnObject,
    /// `changeType` is missing or not `created`.
    NotCreated,
    /// Neither `resourceUrl` nor `resource` is given.
    NoResource,
    /// The resource is not under `/communications/calls`.
    NotACallResource,
    /// The resource is below a call (participants, operations, content sharing...).
    SubResource,
    /// `resourceData` is missing.
    NoResourceData,
    /// `resourceData` is not an object, or its `@odata.type` is not a call.
    NotACall,
    /// The call's `state` (or `direction`) is not `incoming`.
    NotIncoming,
    /// No call id anywhere, so there is nothing a reject could name.
    NoCallId,
}

impl SkipReason {
    /// A stable snake_case name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NotAnObject => "not_an_object",
            SkipReason::NotCreated => "not_created",
            SkipReason::NoResource => "no_resource",
            SkipReason::NotACallResource => "not_a_call_resource",
            SkipReason::SubResource => "sub_resource",
            SkipReason::NoResourceData => "no_resource_data",
            SkipReason::NotACall => "not_a_call",
            SkipReason::NotIncoming => "not_incoming",
            SkipReason::NoCallId => "no_call_id",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a whole body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    /// Not JSON: bad syntax, bytes that are not UTF-8, or nesting deeper than serde_json's
    /// recursion limit.
    #[error("malformed json at {0}")]
    Malformed(Position),
    /// JSON, but the top level is not an object with a `value` array.
    #[error("not a notification batch: expected an object with a `value` array")]
    NotNotifications,
    /// The old Skype-format notification; answering 204 makes Graph send it again in the
    /// Graph format.
    #[error("legacy notification format")]
    Legacy,
}

/// Where serde_json gave up, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

/// Parses one webhook body.
///
/// Fails only when the body as a whole is unusable (see [`NotificationError`]); inside the
/// batch each element is judged alone and lands in `invites` or `skipped`. A leading UTF-8
/// byte order mark is ignored.
pub fn parse(body: &[u8]) -> Result<Notifications, NotificationError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let root: Value = serde_json::from_slice(body).map_err(|error| {
        NotificationError::Malformed(Position {
            line: error.line(),
            column: error.column(),
        })
    })?;
    let Value::Object(mut root) = root else {
        return Err(NotificationError::NotNotifications);
    };
    let elements = match root.get("value") {
        Some(Value::Array(_)) => match root.remove("value") {
            Some(Value::Array(elements)) => elements,
            _ => unreachable!("checked to be an array just above"),
        },
        Some(Value::Null) | None if is_legacy(&root) => return Err(NotificationError::Legacy),
        _ => return Err(NotificationError::NotNotifications),
    };

    let mut notifications = Notifications::default();
    for (index, element) in elements.iter().enumerate() {
        match read_element(index, element) {
            Ok(facts) => {
                notifications.invites.push(facts);
                notifications.invite_indices.push(index);
            }
            Err(skipped) => notifications.skipped.push(skipped),
        }
    }
    notifications.elements = elements;
    notifications.envelope = root;
    Ok(notifications)
}

/// The Skype format's casing is not documented, hence the case-blind key match.
fn is_legacy(root: &Object) -> bool {
    root.keys().any(|key| {
        key.eq_ignore_ascii_case("subscriptionId") || key.eq_ignore_ascii_case("resource")
    })
}

fn read_element(index: usize, element: &Value) -> Result<Facts, Skipped> {
    let Some(notification) = element.as_object() else {
        return Err(Skipped {
            index,
            call_id: None,
            change_type: None,
            why: SkipReason::NotAnObject,
        });
    };
    let change_type = text(notification.get("changeType"));
    let resource = text(notification.get("resourceUrl"))
        .or_else(|| text(notification.get("resource")))
        .map(CallPath::parse);
    let resource_data = notification.get("resourceData");
    let skip = |why| Skipped {
        index,
        call_id: guess_call_id(resource_data, resource),
        change_type: change_type.map(str::to_owned),
        why,
    };

    if !change_type.is_some_and(|change| change.eq_ignore_ascii_case("created")) {
        return Err(skip(SkipReason::NotCreated));
    }
    let path_id = match resource {
        None => return Err(skip(SkipReason::NoResource)),
        Some(CallPath::Other) => return Err(skip(SkipReason::NotACallResource)),
        Some(CallPath::Below(_)) => return Err(skip(SkipReason::SubResource)),
        Some(CallPath::Call(id)) => id,
    };
    let call = match resource_data {
        None | Some(Value::Null) => return Err(skip(SkipReason::NoResourceData)),
        Some(Value::Object(call)) => call,
        Some(_) => return Err(skip(SkipReason::NotACall)),
    };
    if text(call.get("@odata.type")).is_some_and(|kind| !is_graph_type(kind, "call")) {
        return Err(skip(SkipReason::NotACall));
    }
    let incoming = |key| text(call.get(key)).map(|value| value.eq_ignore_ascii_case("incoming"));
    if incoming("state") != Some(true) || incoming("direction") == Some(false) {
        return Err(skip(SkipReason::NotIncoming));
    }

    let call_id = text(call.get("id"))
        .or_else(|| non_empty(path_id))
        .or_else(|| odata_call_id(call));
    match call_id {
        Some(call_id) => Ok(read_call(call_id, call)),
        None => Err(skip(SkipReason::NoCallId)),
    }
}

/// Names the call in a skip record; a sub-resource path still shows which call it belongs to.
fn guess_call_id(resource_data: Option<&Value>, resource: Option<CallPath<'_>>) -> Option<String> {
    let call = resource_data.and_then(Value::as_object);
    let from_path = match resource {
        Some(CallPath::Call(id) | CallPath::Below(id)) => non_empty(id),
        _ => None,
    };
    call.and_then(|call| text(call.get("id")))
        .or(from_path)
        .or_else(|| call.and_then(odata_call_id))
        .map(str::to_owned)
}

fn odata_call_id(call: &Object) -> Option<&str> {
    let raw = text(call.get("@odata.id"))?;
    match CallPath::parse(raw) {
        CallPath::Call(id) | CallPath::Below(id) => non_empty(id),
        CallPath::Other => url_path(raw).rsplit('/').next().and_then(non_empty),
    }
}

/// Where a resource path points, relative to the calls collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallPath<'a> {
    /// The call itself; the id segment may be empty.
    Call(&'a str),
    /// Something below the call with this id.
    Below(&'a str),
    Other,
}

impl<'a> CallPath<'a> {
    /// Accepts `/communications/calls/{id}`, the deprecated `/app/calls/{id}`, either after a
    /// Graph version segment (as absolute URLs carry), and one trailing `/`.
    fn parse(raw: &'a str) -> CallPath<'a> {
        let path = url_path(raw);
        let mut segments = path.strip_prefix('/').unwrap_or(path).split('/');
        let mut first = segments.next().unwrap_or("");
        if is_version(first) {
            first = segments.next().unwrap_or("");
        }
        let under_calls = (first.eq_ignore_ascii_case("communications")
            || first.eq_ignore_ascii_case("app"))
            && segments
                .next()
                .is_some_and(|s| s.eq_ignore_ascii_case("calls"));
        if !under_calls {
            return CallPath::Other;
        }
        match (segments.next(), segments.next()) {
            (None, _) => CallPath::Call(""),
            (Some(id), None) => CallPath::Call(id),
            (Some(id), Some(_)) => CallPath::Below(id),
        }
    }
}

/// The path of a relative or absolute URL, without query, fragment or one trailing `/`.
fn url_path(raw: &str) -> &str {
    let path = match raw.find("://") {
        Some(scheme_end) if !raw.starts_with('/') => {
            let rest = &raw[scheme_end + 3..];
            rest.find('/').map_or("", |start| &rest[start..])
        }
        _ => raw,
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.strip_suffix('/').unwrap_or(path)
}

fn is_version(segment: &str) -> bool {
    let mut chars = segment.chars();
    segment.eq_ignore_ascii_case("beta")
        || (matches!(chars.next(), Some('v' | 'V'))
            && chars.next().is_some_and(|c| c.is_ascii_digit()))
}

/// `#microsoft.graph.{name}`, in any case; OData also allows the type without its `#`.
fn is_graph_type(odata_type: &str, name: &str) -> bool {
    const NAMESPACE: &str = "microsoft.graph.";
    let odata_type = odata_type.strip_prefix('#').unwrap_or(odata_type);
    odata_type.len() == NAMESPACE.len() + name.len()
        && odata_type
            .get(..NAMESPACE.len())
            .is_some_and(|ns| ns.eq_ignore_ascii_case(NAMESPACE))
        && odata_type
            .get(NAMESPACE.len()..)
            .is_some_and(|rest| rest.eq_ignore_ascii_case(name))
}

fn read_call(call_id: &str, call: &Object) -> Facts {
    let chat = object(call.get("chatInfo"));
    let meeting = object(call.get("meetingInfo"));
    let context = object(call.get("incomingContext"));
    let modalities = call
        .get("requestedModalities")
        .and_then(Value::as_array)
        .map(|modalities| {
            modalities
                .iter()
                .filter_map(|modality| text(Some(modality)))
                .map(str::to_lowercase)
                .collect()
        })
        .unwrap_or_default();

    Facts {
        call_id: call_id.to_owned(),
        caller: read_caller(object(call.get("source"))),
        target: read_target(call),
        tenant: owned(call.get("tenantId")),
        modalities,
        group: chat.is_some() || meeting.is_some(),
        meeting: meeting.map(read_meeting).unwrap_or_default(),
        chat_thread: chat.and_then(|chat| owned(chat.get("threadId"))),
        transferred: context
            .and_then(|context| object(context.get("transferor")))
            .is_some_and(|set| members(set).next().is_some()),
        on_behalf_of_id: context
            .and_then(|context| object(context.get("onBehalfOf")))
            .and_then(primary)
            .map(|member| member.id()),
        call_chain_id: owned(call.get("callChainId")),
    }
}

fn read_caller(source: Option<&Object>) -> Caller {
    let identity = source.and_then(|source| object(source.get("identity")));
    let from_source = |key| source.and_then(|source| owned(source.get(key)));
    let mut caller = Caller {
        kind: ANONYMOUS.to_owned(),
        region: from_source("region"),
        language: from_source("languageId"),
        country: from_source("countryCode"),
        endpoint: from_source("endpointType"),
        ..Caller::default()
    };
    // No identity at all is a shape we do not know, not a caller who hid: calling it
    // anonymous would let a schema change make a no-anonymous rule reject every call.
    let Some(identity) = identity else {
        caller.kind = UNKNOWN.to_owned();
        return caller;
    };

    match primary(identity) {
        Some(member) => {
            caller.kind = member.kind.to_owned();
            caller.id = Some(member.id());
            caller.name = owned(member.fields.get("displayName"));
            caller.tenant = owned(member.fields.get("tenantId"));
            caller.provider = owned(member.fields.get("identityProvider"));
        }
        None => caller.name = anonymous_name(identity),
    }
    caller.phone = members(identity)
        .filter(|(kind, _)| kind.eq_ignore_ascii_case("phone"))
        .find_map(|(_, fields)| text(fields.get("id")))
        .and_then(normalize_phone);
    caller.asserted = asserted(identity);
    caller
}

/// The name a caller without any id shows, taken in the usual member order.
fn anonymous_name(identity: &Object) -> Option<String> {
    members(identity)
        .filter_map(|(key, fields)| Some((rank(key), text(fields.get("displayName"))?)))
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, name)| name.to_owned())
}

/// `assertedIdentity` is documented as an identity but also seen as an identity set.
fn asserted(identity: &Object) -> Option<String> {
    let asserted = identity
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(ASSERTED))
        .and_then(|(_, value)| value.as_object())?;
    let id = match text(asserted.get("id")) {
        Some(id) => id,
        None => return primary(asserted).map(|member| member.id()),
    };
    if id.starts_with('+') {
        return Some(normalize_phone(id).unwrap_or_else(|| id.to_owned()));
    }
    Some(id.to_owned())
}

fn read_target(call: &Object) -> Target {
    let identity = call
        .get("targets")
        .and_then(Value::as_array)
        .and_then(|targets| targets.first())
        .and_then(Value::as_object)
        .and_then(|target| object(target.get("identity")));
    let Some(identity) = identity else {
        return Target::default();
    };
    match primary(identity) {
        Some(member) => Target {
            id: Some(member.id()),
            kind: Some(member.kind.to_owned()),
        },
        None => Target {
            id: None,
            kind: Some(ANONYMOUS.to_owned()),
        },
    }
}

/// meetingInfo variants, as (`@odata.type` name, key only that variant has, kind for rules).
const MEETING_KINDS: [(&str, &str, &str); 3] = [
    ("organizerMeetingInfo", "organizer", "organizer"),
    ("tokenMeetingInfo", "token", "token"),
    ("joinMeetingIdMeetingInfo", "joinMeetingId", "joinMeetingId"),
];

/// Reads only the variant and organizer: `token` and `passcode` are meeting secrets and must
/// not reach facts, logs or the audit trail.
fn read_meeting(info: &Object) -> Meeting {
    let by_type = text(info.get("@odata.type")).and_then(|odata_type| {
        MEETING_KINDS
            .iter()
            .find(|(type_name, _, _)| is_graph_type(odata_type, type_name))
    });
    let kind = by_type.or_else(|| {
        MEETING_KINDS
            .iter()
            .find(|(_, key, _)| info.get(*key).is_some_and(|value| !value.is_null()))
    });
    let organizer = object(info.get("organizer")).and_then(primary);
    Meeting {
        kind: kind.map(|(_, _, kind)| (*kind).to_owned()),
        organizer_id: organizer.as_ref().map(Member::id),
        organizer_tenant: organizer.and_then(|member| owned(member.fields.get("tenantId"))),
    }
}

const ANONYMOUS: &str = "anonymous";
const UNKNOWN: &str = "unknown";
const ASSERTED: &str = "assertedIdentity";

/// identitySet members in the order that decides who a party is, with the kind name rules use.
const KINDS: [(&str, &str); 9] = [
    ("user", "user"),
    ("onPremises", "onPremises"),
    ("guest", "guest"),
    ("phone", "phone"),
    ("azureCommunicationServicesUser", "acsUser"),
    ("applicationInstance", "applicationInstance"),
    ("application", "application"),
    ("encrypted", "encrypted"),
    ("device", "device"),
];

/// Members outside the list rank after all of it.
fn rank(key: &str) -> usize {
    KINDS
        .iter()
        .position(|(member, _)| key.eq_ignore_ascii_case(member))
        .unwrap_or(KINDS.len())
}

/// The identities in a set: object-valued keys other than annotations and `assertedIdentity`.
fn members(set: &Object) -> impl Iterator<Item = (&str, &Object)> {
    set.iter().filter_map(|(key, value)| {
        let fields = value.as_object()?;
        let identity = !key.starts_with('@') && !key.eq_ignore_ascii_case(ASSERTED);
        identity.then_some((key.as_str(), fields))
    })
}

/// One identity of a set with a non-empty id.
struct Member<'a> {
    kind: &'a str,
    id: &'a str,
    fields: &'a Object,
}

impl Member<'_> {
    /// Phone ids in E.164 so rules compare numbers, not formatting; the raw id when the
    /// number does not normalise.
    fn id(&self) -> String {
        if self.kind == "phone" {
            normalize_phone(self.id).unwrap_or_else(|| self.id.to_owned())
        } else {
            self.id.to_owned()
        }
    }
}

/// The member that says who the party is: the best-ranked one with an id. A member Graph
/// adds later still identifies the party, under its own key, rather than making it anonymous.
fn primary(set: &Object) -> Option<Member<'_>> {
    let mut best: Option<(usize, Member<'_>)> = None;
    for (key, fields) in members(set) {
        let Some(id) = text(fields.get("id")) else {
            continue;
        };
        let rank = rank(key);
        if best
            .as_ref()
            .is_some_and(|(best_rank, _)| *best_rank <= rank)
        {
            continue;
        }
        let kind = KINDS.get(rank).map_or(key, |(_, kind)| kind);
        best = Some((rank, Member { kind, id, fields }));
    }
    best.map(|(_, member)| member)
}

fn object(value: Option<&Value>) -> Option<&Object> {
    value?.as_object()
}

/// A trimmed, non-empty string; anything else counts as absent.
fn text(value: Option<&Value>) -> Option<&str> {
    non_empty(value?.as_str()?)
}

fn owned(value: Option<&Value>) -> Option<String> {
    text(value).map(str::to_owned)
}

fn non_empty(value: &str) -> Option<&str> {
    let value = value.trim();
    (!value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests;
