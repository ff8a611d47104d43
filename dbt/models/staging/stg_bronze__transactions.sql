-- Flatten and cast the transaction events; nothing is filtered here. Values that do not
-- cast are null, and their JSON kinds are kept so that the contracts can say why. The
-- verbatim line stays in bronze (int_transaction_lines): carried through the checked
-- table it would double what is written for the few lines that need it.
with source as (
    select
        *,
        -- JSON functions raise on malformed input: only parsed lines are read as JSON.
        case when _parse_error is null then payload end as json_payload
    from {{ source('bronze', 'transactions') }}
),

{#- (column, JSON path) read from every event, and the paths whose JSON type the type
    contracts check. All paths are read in one call per line: the JSON is parsed once. -#}
{%- set fields = [
    ['transaction_id', '$.transaction_id'],
    ['event_time_text', '$.event_time'],
    ['card_id', '$.card.card_id'],
    ['customer_id_text', '$.card.customer_id'],
    ['terminal_id_text', '$.terminal.terminal_id'],
    ['mcc', '$.terminal.mcc'],
    ['amount_text', '$.amount.value'],
    ['currency', '$.amount.currency'],
    ['channel', '$.channel'],
    ['schema_version_text', '$.schema_version'],
] %}
{%- set typed = [
    ['event_time_kind', '$.event_time'],
    ['customer_id_kind', '$.card.customer_id'],
    ['terminal_id_kind', '$.terminal.terminal_id'],
    ['amount_kind', '$.amount.value'],
] %}

extracted as (
    select
        {{ json_texts('json_payload', fields | map(attribute=1) | list) }} as texts,
        {{ json_types('json_payload', typed | map(attribute=1) | list) }} as types,
        _parse_error as parse_error,
        _source_file as source_file,
        _line_number as line_number,
        _batch_id as batch_id,
        _ingested_at as ingested_at
    from source
),

flattened as (
    select
        {%- for name, path in fields %}
        {{ list_at('texts', loop.index) }} as {{ name }},
        {%- endfor %}
        {%- for name, path in typed %}
        {{ json_kind_of(list_at('types', loop.index)) }} as {{ name }},
        {%- endfor %}
            parse_error,
        source_file,
        line_number,
        batch_id,
        ingested_at
    from extracted
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
    parse_error,
    source_file,
    line_number,
    batch_id,
    ingested_at
from flattened
