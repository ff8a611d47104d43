-- Valid transactions, one row per transaction id: the first arrival (earliest delivery
-- file, then line) wins. Late events are kept and placed by their event time.
with valid as (
    select * from {{ ref('int_transactions_checked') }}
    where failed_rule is null
),

ranked as (
    select
        *,
        row_number() over (
            partition by transaction_id order by source_file, line_number
        ) as arrival
    from valid
)

select
    transaction_id,
    event_time,
    cast(event_time as date) as event_date,
    customer_id,
    card_id,
    terminal_id,
    mcc,
    amount,
    currency,
    channel,
    schema_version,
    source_file,
    line_number,
    batch_id,
    ingested_at
from ranked
where arrival = 1
