//! The lake's `events` columns the export reads, and one row of them as borrowed values.

use anyhow::{anyhow, Context};
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{
    Array, ArrayRef, BooleanArray, ListArray, MapArray, PrimitiveArray, RecordBatch,
    StringViewArray,
};
use arrow_schema::DataType;
use authtrail_model::{Event, Kind, Micros, Outcome, PrincipalType, Text as Value};

/// The columns of `events` the export selects: the contract's fields, and where and when
/// each event was read (not the partition columns, nor the offsets, which OCSF has no
/// place for).
pub fn columns() -> Vec<&'static str> {
    authtrail_model::CONTRACT_FIELDS
        .into_iter()
        .chain(["ingest_topic", "ingest_time"])
        .collect()
}

type Timestamps = PrimitiveArray<TimestampMicrosecondType>;

/// A text list column (`token_audience`, `token_scopes`, `required_scopes`): offsets and the
/// values as text.
struct TextList {
    lists: ListArray,
    values: StringViewArray,
}

impl TextList {
    /// The texts of row `row`, `None` where the list is null.
    fn row(&self, row: usize) -> Option<Vec<&str>> {
        if self.lists.is_null(row) {
            return None;
        }
        let offsets = self.lists.value_offsets();
        let range = offsets[row] as usize..offsets[row + 1] as usize;
        Some(range.map(|at| self.values.value(at)).collect())
    }

    /// [`row`](Self::row) as an event's list.
    fn event_list(&self, row: usize) -> Option<Vec<Value<'_>>> {
        if self.lists.is_null(row) {
            return None;
        }
        let offsets = self.lists.value_offsets();
        let range = offsets[row] as usize..offsets[row + 1] as usize;
        Some(
            range
                .map(|at| Value::Borrowed(self.values.value(at)))
                .collect(),
        )
    }
}

/// The `attributes` map column: offsets, keys and values as text.
struct TextMap {
    map: MapArray,
    keys: StringViewArray,
    values: StringViewArray,
}

/// One batch of the selected columns, typed. DataFusion reads the lake's strings as view
/// types; any other string type is cast, so the export does not depend on that choice.
/// Only `id`, `time`, `kind` and `principal` must be selected: a column left out reads
/// as null (a replay for rules that do not read it need not decode it).
pub struct Columns {
    texts: Vec<Option<StringViewArray>>,
    time: Timestamps,
    token_expires: Option<Timestamps>,
    ingest_time: Option<Timestamps>,
    token_audience: Option<TextList>,
    token_scopes: Option<TextList>,
    required_scopes: Option<TextList>,
    mfa: Option<BooleanArray>,
    attributes: Option<TextMap>,
}

/// Columns every event has, which a batch must hold.
const REQUIRED_COLUMNS: [&str; 4] = ["id", "time", "kind", "principal"];

/// The text columns, in [`Text`] order.
const TEXT_COLUMNS: [&str; 20] = [
    "id",
    "kind",
    "principal",
    "principal_type",
    "service",
    "outcome",
    "reason",
    "source_ip",
    "source_service",
    "target_service",
    "resource",
    "action",
    "token_id",
    "token_issuer",
    "client_id",
    "auth_method",
    "user_agent",
    "session_id",
    "trace_id",
    "ingest_topic",
];

/// A text column, as its index into [`TEXT_COLUMNS`] and [`Columns::texts`].
#[derive(Clone, Copy)]
enum Text {
    Id,
    Kind,
    Principal,
    PrincipalType,
    Service,
    Outcome,
    Reason,
    SourceIp,
    SourceService,
    TargetService,
    Resource,
    Action,
    TokenId,
    TokenIssuer,
    ClientId,
    AuthMethod,
    UserAgent,
    SessionId,
    TraceId,
    IngestTopic,
}

fn column(batch: &RecordBatch, name: &str) -> anyhow::Result<ArrayRef> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| anyhow!("the lake's `events` have no column `{name}`"))
}

fn as_text(array: &ArrayRef, name: &str) -> anyhow::Result<StringViewArray> {
    let array = arrow_cast::cast(array, &DataType::Utf8View)
        .with_context(|| format!("reading column `{name}` as text"))?;
    Ok(array.as_string_view().clone())
}

fn as_timestamps(array: &ArrayRef, name: &str) -> anyhow::Result<Timestamps> {
    array
        .as_primitive_opt::<TimestampMicrosecondType>()
        .cloned()
        .ok_or_else(|| anyhow!("column `{name}` is not a microsecond timestamp"))
}

fn as_text_list(array: &ArrayRef, name: &str) -> anyhow::Result<TextList> {
    let lists = array
        .as_list_opt::<i32>()
        .ok_or_else(|| anyhow!("column `{name}` is not a list"))?
        .clone();
    let values = as_text(lists.values(), name)?;
    Ok(TextList { lists, values })
}

fn as_text_map(array: &ArrayRef, name: &str) -> anyhow::Result<TextMap> {
    let map = array
        .as_map_opt()
        .ok_or_else(|| anyhow!("column `{name}` is not a map"))?
        .clone();
    let keys = as_text(map.keys(), name)?;
    let values = as_text(map.values(), name)?;
    Ok(TextMap { map, keys, values })
}

impl Columns {
    /// The typed columns of a batch selected with [`columns`], or with fewer (see
    /// [`Columns`]).
    pub fn new(batch: &RecordBatch) -> anyhow::Result<Columns> {
        for name in REQUIRED_COLUMNS {
            column(batch, name)?;
        }
        let optional = |name: &str| batch.column_by_name(name);
        let texts = TEXT_COLUMNS
            .iter()
            .map(|name| optional(name).map(|array| as_text(array, name)).transpose())
            .collect::<anyhow::Result<_>>()?;
        let timestamps = |name: &str| optional(name).map(|a| as_timestamps(a, name)).transpose();
        let list = |name: &str| optional(name).map(|a| as_text_list(a, name)).transpose();
        Ok(Columns {
            texts,
            time: as_timestamps(&column(batch, "time")?, "time")?,
            token_expires: timestamps("token_expires")?,
            ingest_time: timestamps("ingest_time")?,
            token_audience: list("token_audience")?,
            token_scopes: list("token_scopes")?,
            required_scopes: list("required_scopes")?,
            mfa: optional("mfa")
                .map(|mfa| {
                    mfa.as_boolean_opt()
                        .cloned()
                        .ok_or_else(|| anyhow!("column `mfa` is not a boolean"))
                })
                .transpose()?,
            attributes: optional("attributes")
                .map(|a| as_text_map(a, "attributes"))
                .transpose()?,
        })
    }

    fn text(&self, column: Text, row: usize) -> Option<&str> {
        let array = self.texts[column as usize].as_ref()?;
        array.is_valid(row).then(|| array.value(row))
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    /// Row `row`'s event time.
    pub fn time(&self, row: usize) -> Micros {
        self.time.value(row)
    }

    /// Row `row`'s event id.
    pub fn id(&self, row: usize) -> &str {
        self.text(Text::Id, row).unwrap_or_default()
    }

    fn timestamp(column: &Option<Timestamps>, row: usize) -> Option<i64> {
        column
            .as_ref()
            .filter(|array| array.is_valid(row))
            .map(|array| array.value(row))
    }

    fn mfa(&self, row: usize) -> Option<bool> {
        self.mfa
            .as_ref()
            .filter(|array| array.is_valid(row))
            .map(|array| array.value(row))
    }

    /// The (key, value) entries of row `row`'s attributes.
    fn attributes(&self, row: usize) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.attributes.iter().flat_map(move |map| {
            let offsets = map.map.value_offsets();
            let entries = offsets[row] as usize..offsets[row + 1] as usize;
            entries.map(|at| {
                let values = &map.values;
                (
                    map.keys.value(at),
                    values.is_valid(at).then(|| values.value(at)),
                )
            })
        })
    }

    /// Row `row` as the event it was stored from, its values borrowed from the batch
    /// (for a replay, which builds millions: no [`Row`] in between); `None` if it is no
    /// event of the contract (an unknown kind).
    pub fn event(&self, row: usize) -> Option<Event<'_>> {
        let text = |column| self.text(column, row).map(Value::Borrowed);
        let principal = self.text(Text::Principal, row).unwrap_or_default();
        Some(Event {
            id: Value::Borrowed(self.id(row)),
            time: self.time(row),
            kind: Kind::parse(self.text(Text::Kind, row).unwrap_or_default())?,
            principal: Value::Borrowed(principal),
            principal_type: self
                .text(Text::PrincipalType, row)
                .and_then(PrincipalType::parse)
                .unwrap_or_else(|| PrincipalType::infer(principal)),
            service: text(Text::Service),
            outcome: self.text(Text::Outcome, row).and_then(Outcome::parse),
            reason: text(Text::Reason),
            source_ip: self
                .text(Text::SourceIp, row)
                .and_then(|ip| ip.parse().ok()),
            source_service: text(Text::SourceService),
            target_service: text(Text::TargetService),
            resource: text(Text::Resource),
            action: text(Text::Action),
            token_id: text(Text::TokenId),
            token_issuer: text(Text::TokenIssuer),
            token_audience: self
                .token_audience
                .as_ref()
                .and_then(|list| list.event_list(row)),
            token_scopes: self
                .token_scopes
                .as_ref()
                .and_then(|list| list.event_list(row)),
            required_scopes: self
                .required_scopes
                .as_ref()
                .and_then(|list| list.event_list(row)),
            token_expires: Columns::timestamp(&self.token_expires, row),
            client_id: text(Text::ClientId),
            auth_method: text(Text::AuthMethod),
            mfa: self.mfa(row),
            user_agent: text(Text::UserAgent),
            session_id: text(Text::SessionId),
            trace_id: text(Text::TraceId),
            attributes: self
                .attributes(row)
                .filter_map(|(key, value)| Some((Value::Borrowed(key), Value::Borrowed(value?))))
                .collect(),
        })
    }

    /// Row `row` of the batch.
    pub fn row(&self, row: usize) -> Row<'_> {
        let text = |column| self.text(column, row);
        let attributes = self.attributes(row).collect();
        Row {
            id: text(Text::Id).unwrap_or_default(),
            time: self.time.value(row),
            kind: text(Text::Kind).unwrap_or_default(),
            principal: text(Text::Principal).unwrap_or_default(),
            principal_type: text(Text::PrincipalType),
            service: text(Text::Service),
            outcome: text(Text::Outcome),
            reason: text(Text::Reason),
            source_ip: text(Text::SourceIp),
            source_service: text(Text::SourceService),
            target_service: text(Text::TargetService),
            resource: text(Text::Resource),
            action: text(Text::Action),
            token_id: text(Text::TokenId),
            token_issuer: text(Text::TokenIssuer),
            token_audience: self.token_audience.as_ref().and_then(|list| list.row(row)),
            token_scopes: self.token_scopes.as_ref().and_then(|list| list.row(row)),
            required_scopes: self.required_scopes.as_ref().and_then(|list| list.row(row)),
            token_expires: Columns::timestamp(&self.token_expires, row),
            client_id: text(Text::ClientId),
            auth_method: text(Text::AuthMethod),
            mfa: self.mfa(row),
            user_agent: text(Text::UserAgent),
            session_id: text(Text::SessionId),
            trace_id: text(Text::TraceId),
            attributes,
            ingest_topic: text(Text::IngestTopic),
            ingest_time: Columns::timestamp(&self.ingest_time, row),
        }
    }
}

/// One event of the lake, its values borrowed from the batch. Times are microseconds.
#[derive(Debug, Default)]
pub struct Row<'a> {
    pub id: &'a str,
    pub time: i64,
    pub kind: &'a str,
    pub principal: &'a str,
    pub principal_type: Option<&'a str>,
    pub service: Option<&'a str>,
    pub outcome: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub source_ip: Option<&'a str>,
    pub source_service: Option<&'a str>,
    pub target_service: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub action: Option<&'a str>,
    pub token_id: Option<&'a str>,
    pub token_issuer: Option<&'a str>,
    pub token_audience: Option<Vec<&'a str>>,
    pub token_scopes: Option<Vec<&'a str>>,
    pub required_scopes: Option<Vec<&'a str>>,
    pub token_expires: Option<i64>,
    pub client_id: Option<&'a str>,
    pub auth_method: Option<&'a str>,
    pub mfa: Option<bool>,
    pub user_agent: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub trace_id: Option<&'a str>,
    pub attributes: Vec<(&'a str, Option<&'a str>)>,
    pub ingest_topic: Option<&'a str>,
    pub ingest_time: Option<i64>,
}
