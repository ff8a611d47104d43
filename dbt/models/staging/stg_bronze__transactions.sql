-- Flatten and cast the transaction events; nothing is filtered here. Values that do not
-- cast are null, and their JSON kinds are kept so that the contracts can say why.
with source as (
    select
        *,
        -- JSON functions raise on malformed input: only parsed lines are read as JSON.
        case when _parse_error is null then payload end as json_payload
    from {{ source('bronze', 'transactions') }}
),

flattened as (
    select
        {{ json_text('json_payload', '$.transaction_id') }} as transaction_id,
        {{ json_text('json_payload', '$.event_time') }} as event_time_text,
        {{ json_text('json_payload', '$.card.card_id') }} as card_id,
        {{ json_text('json_payload', '$.card.customer_id') }} as customer_id_text,
        {{ json_text('json_payload', '$.terminal.terminal_id') }} as terminal_id_text,
        {{ json_text('json_payload', '$.terminal.mcc') }} as mcc,
        {{ json_text('json_payload', '$.amount.value') }} as amount_text,
        {{ json_text('json_payload', '$.amount.currency') }} as currency,
        {{ json_text('json_payload', '$.channel') }} as channel,
        {{ json_text('json_payload', '$.schema_version') }} as schema_version_text,
        {{ json_kind('json_payload', '$.event_time') }} as event_time_kind,
        {{ json_kind('json_payload', '$.card.customer_id') }} as customer_id_kind,
        {{ json_kind('json_payload', '$.terminal.terminal_id') }} as terminal_id_kind,
        {{ json_kind('json_payload', '$.amount.value') }} as amount_kind,
        payload as raw_line,
        _parse_error as parse_error,
        _source_file as source_file,
        _line_number as line_number,
        _batch_id as batch_id,
        _ingested_at as ingested_at
    from source
)

select
    transaction_id,
    {{ utc_timestamp('event_time_text') }} as event_time,
    card_id,
    try_cast(customer_id_text as bigint) as customer_id,
    try_cast(terminal_id_text as bigint) as terminal_id,
    mcc,
    try_cast(amount_text as decimal(18, 2)) as amount,
    currency,
    channel,
    coalesce(try_cast(schema_version_text as integer), 1) as schema_version,
    event_time_text,
    event_time_kind,
    customer_id_kind,
    terminal_id_kind,
    amount_kind,
    raw_line,
    parse_error,
    source_file,
    line_number,
    batch_id,
    ingested_at
from flattened
