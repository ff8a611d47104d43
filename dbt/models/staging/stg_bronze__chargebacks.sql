-- Flatten and cast the chargeback reports; nothing is filtered here.
with source as (
    select
        *,
        -- JSON functions raise on malformed input: only parsed lines are read as JSON.
        case when _parse_error is null then payload end as json_payload
    from {{ source('bronze', 'chargebacks') }}
),

flattened as (
    select
        {{ json_text('json_payload', '$.chargeback_id') }} as chargeback_id,
        {{ json_text('json_payload', '$.transaction_id') }} as transaction_id,
        {{ json_text('json_payload', '$.card_id') }} as card_id,
        {{ json_text('json_payload', '$.reported_at') }} as reported_at_text,
        {{ json_text('json_payload', '$.reason_code') }} as reason_code,
        {{ json_text('json_payload', '$.fraud_pattern') }} as fraud_pattern,
        {{ json_text('json_payload', '$.amount.value') }} as amount_text,
        {{ json_text('json_payload', '$.amount.currency') }} as currency,
        payload as raw_line,
        _parse_error as parse_error,
        _source_file as source_file,
        _line_number as line_number,
        _batch_id as batch_id,
        _ingested_at as ingested_at
    from source
)

select
    chargeback_id,
    transaction_id,
    card_id,
    {{ utc_timestamp('reported_at_text') }} as reported_at,
    reason_code,
    fraud_pattern,
    try_cast(amount_text as decimal(18, 2)) as amount,
    currency,
    reported_at_text,
    raw_line,
    parse_error,
    source_file,
    line_number,
    batch_id,
    ingested_at
from flattened
